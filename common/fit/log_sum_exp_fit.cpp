#include "common/fit/log_sum_exp_fit.h"

#include <ceres/autodiff_first_order_function.h>
#include <ceres/gradient_problem.h>
#include <ceres/gradient_problem_solver.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <thread>

namespace isoflop::fit_internal {
namespace {

// Huber_delta(r) / delta: quadratic within delta, |r| - delta/2 beyond. Dividing by delta keeps the
// cost near the mean absolute log residual, a scale on which L-BFGS's tolerances mean something.
template <typename T>
T ScaledHuber(const T& r, double delta) {
  using std::abs;
  const T magnitude = abs(r);
  if (magnitude <= delta) return r * r / (2 * delta);
  return magnitude - delta / 2;
}

// Parameters as one vector for the solver: [e, a_1..a_k, alpha_1..alpha_k].
template <int kTerms>
constexpr int kParamCount = 1 + 2 * kTerms;

template <int kTerms, typename T>
T PredictLogLoss(const T* p, const LogSumExpSample<kTerms>& sample) {
  using std::exp;
  using std::log;
  // log(exp(z_0) + ... + exp(z_k)) = m + log(sum exp(z_i - m)): no overflow for any parameters.
  std::array<T, kTerms + 1> z;
  z[0] = p[0];
  for (int j = 0; j < kTerms; ++j) z[j + 1] = p[1 + j] - p[1 + kTerms + j] * sample.x[j];
  T m = z[0];
  for (int j = 1; j <= kTerms; ++j) m = z[j] > m ? z[j] : m;
  T sum(0.0);
  for (const T& zi : z) sum += exp(zi - m);
  return m + log(sum);
}

template <int kTerms>
class HuberObjective {
 public:
  HuberObjective(const std::vector<LogSumExpSample<kTerms>>* samples, double delta)
      : samples_(samples), delta_(delta) {}

  template <typename T>
  bool operator()(const T* p, T* cost) const {
    T total(0.0);
    for (const LogSumExpSample<kTerms>& s : *samples_) {
      total += ScaledHuber(PredictLogLoss<kTerms>(p, s) - s.log_loss, delta_);
    }
    *cost = total / static_cast<double>(samples_->size());
    return true;
  }

 private:
  const std::vector<LogSumExpSample<kTerms>>* samples_;
  double delta_;
};

template <int kTerms>
std::array<double, kParamCount<kTerms>> Pack(const LogSumExpParams<kTerms>& params) {
  std::array<double, kParamCount<kTerms>> x;
  x[0] = params.e;
  for (int j = 0; j < kTerms; ++j) {
    x[1 + j] = params.a[j];
    x[1 + kTerms + j] = params.alpha[j];
  }
  return x;
}

template <int kTerms>
LogSumExpParams<kTerms> Unpack(const double* x) {
  LogSumExpParams<kTerms> params;
  params.e = x[0];
  for (int j = 0; j < kTerms; ++j) {
    params.a[j] = x[1 + j];
    params.alpha[j] = x[1 + kTerms + j];
  }
  return params;
}

}  // namespace

template <int kTerms>
double HuberCost(const std::vector<LogSumExpSample<kTerms>>& samples,
                 const LogSumExpParams<kTerms>& params, double delta) {
  const auto x = Pack(params);
  double cost = 0;
  HuberObjective<kTerms>(&samples, delta)(x.data(), &cost);
  return cost;
}

template <int kTerms>
std::optional<LogSumExpMinimum<kTerms>> MinimizeHuber(
    const std::vector<LogSumExpSample<kTerms>>& samples,
    const std::vector<LogSumExpParams<kTerms>>& starts, double delta) {
  constexpr int kParams = kParamCount<kTerms>;
  // The problem owns its function, and the function its objective; the objective only points at
  // `samples`, which outlives the solve.
  ceres::GradientProblem problem(
      new ceres::AutoDiffFirstOrderFunction<HuberObjective<kTerms>, kParams>(
          new HuberObjective<kTerms>(&samples, delta)));
  ceres::GradientProblemSolver::Options options;
  options.line_search_direction_type = ceres::LBFGS;
  options.logging_type = ceres::SILENT;
  options.max_num_iterations = 1000;
  // The cost is a mean absolute log residual (about 1e-2 for seed noise); stop when a step gains
  // less than a part in 1e10 of it, far below what moves a fitted exponent in its third digit.
  options.function_tolerance = 1e-10;
  options.gradient_tolerance = 1e-12;
  options.parameter_tolerance = 1e-10;

  std::optional<LogSumExpMinimum<kTerms>> best;
  for (const LogSumExpParams<kTerms>& start : starts) {
    auto x = Pack(start);
    ceres::GradientProblemSolver::Summary summary;
    ceres::Solve(options, problem, x.data(), &summary);
    // A line search that stops early still leaves x at its best point so far: keep it if finite.
    const double cost = HuberCost(samples, Unpack<kTerms>(x.data()), delta);
    if (!std::isfinite(cost)) continue;
    if (std::any_of(x.begin(), x.end(), [](double v) { return !std::isfinite(v); })) continue;
    if (!best || cost < best->cost) best = LogSumExpMinimum<kTerms>{Unpack<kTerms>(x.data()), cost};
  }
  return best;
}

template <int kTerms>
std::optional<LogSumExpMinimum<kTerms>> MinimizeHuberMultiStart(
    const std::vector<LogSumExpSample<kTerms>>& samples, double delta, int keep) {
  if (samples.empty()) return std::nullopt;
  double log_min_loss = std::numeric_limits<double>::infinity();
  for (const auto& s : samples) log_min_loss = std::min(log_min_loss, s.log_loss);

  // Hoffmann et al. start from a fixed grid in (e, a, b, alpha, beta); scaling it to the smallest
  // observed loss makes the same grid fit byte-level losses near 1 and BPE losses near 4.
  constexpr double kIrreducibleShare[] = {0.1, 0.4, 0.7, 0.9};
  constexpr double kTermShare[] = {0.03, 0.1, 0.3, 1, 3};
  constexpr double kExponent[] = {0.05, 0.15, 0.3, 0.6, 1.0};
  constexpr int kPerTerm = std::size(kTermShare) * std::size(kExponent);

  std::vector<std::pair<double, LogSumExpParams<kTerms>>> grid;
  for (double share : kIrreducibleShare) {
    int combinations = 1;
    for (int j = 0; j < kTerms; ++j) combinations *= kPerTerm;
    for (int combination = 0; combination < combinations; ++combination) {
      LogSumExpParams<kTerms> start;
      start.e = log_min_loss + std::log(share);
      int rest = combination;
      for (int j = 0; j < kTerms; ++j) {
        const int pick = rest % kPerTerm;
        rest /= kPerTerm;
        start.a[j] = log_min_loss + std::log(kTermShare[pick % std::size(kTermShare)]);
        start.alpha[j] = kExponent[pick / std::size(kTermShare)];
      }
      const double cost = HuberCost(samples, start, delta);
      if (std::isfinite(cost)) grid.emplace_back(cost, start);
    }
  }
  const size_t kept = std::min(grid.size(), static_cast<size_t>(std::max(keep, 1)));
  std::partial_sort(grid.begin(), grid.begin() + kept, grid.end(),
                    [](const auto& l, const auto& r) { return l.first < r.first; });
  std::vector<LogSumExpParams<kTerms>> starts;
  for (size_t i = 0; i < kept; ++i) starts.push_back(grid[i].second);
  return MinimizeHuber(samples, starts, delta);
}

template <int kTerms>
std::vector<std::optional<LogSumExpParams<kTerms>>> BootstrapRefits(
    const std::vector<LogSumExpSample<kTerms>>& samples, const LogSumExpParams<kTerms>& fitted,
    double delta, const BootstrapOptions& options, size_t min_distinct) {
  const int resamples = std::max(options.resamples, 0);
  std::vector<std::optional<LogSumExpParams<kTerms>>> refits(resamples);
  auto refit = [&](int r, std::vector<LogSumExpSample<kTerms>>& resampled) {
    const std::vector<size_t> indices = ResampleIndices(samples.size(), options.seed, r);
    std::vector<std::array<double, kTerms>> designs;
    for (size_t i = 0; i < indices.size(); ++i) {
      resampled[i] = samples[indices[i]];
      designs.push_back(resampled[i].x);
    }
    std::sort(designs.begin(), designs.end());
    const size_t distinct = std::unique(designs.begin(), designs.end()) - designs.begin();
    if (distinct < min_distinct) return;
    auto minimum = MinimizeHuber(resampled, {fitted}, delta);
    if (minimum) refits[r] = minimum->params;
  };
  // Resample r always draws the same indices and writes only refits[r], so the result does not
  // depend on how many threads share the work.
  const int threads =
      std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, std::max(resamples, 1));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::vector<LogSumExpSample<kTerms>> resampled(samples.size());
      for (int r = t; r < resamples; r += threads) refit(r, resampled);
    });
  }
  for (std::thread& worker : workers) worker.join();
  return refits;
}

// The two laws isoflop fits: L(C) (one term) and L(N, D) (two terms).
template double HuberCost<1>(const std::vector<LogSumExpSample<1>>&, const LogSumExpParams<1>&,
                             double);
template double HuberCost<2>(const std::vector<LogSumExpSample<2>>&, const LogSumExpParams<2>&,
                             double);
template std::optional<LogSumExpMinimum<1>> MinimizeHuber<1>(const std::vector<LogSumExpSample<1>>&,
                                                             const std::vector<LogSumExpParams<1>>&,
                                                             double);
template std::optional<LogSumExpMinimum<2>> MinimizeHuber<2>(const std::vector<LogSumExpSample<2>>&,
                                                             const std::vector<LogSumExpParams<2>>&,
                                                             double);
template std::vector<std::optional<LogSumExpParams<1>>> BootstrapRefits<1>(
    const std::vector<LogSumExpSample<1>>&, const LogSumExpParams<1>&, double,
    const BootstrapOptions&, size_t);
template std::vector<std::optional<LogSumExpParams<2>>> BootstrapRefits<2>(
    const std::vector<LogSumExpSample<2>>&, const LogSumExpParams<2>&, double,
    const BootstrapOptions&, size_t);
template std::optional<LogSumExpMinimum<1>> MinimizeHuberMultiStart<1>(
    const std::vector<LogSumExpSample<1>>&, double, int);
template std::optional<LogSumExpMinimum<2>> MinimizeHuberMultiStart<2>(
    const std::vector<LogSumExpSample<2>>&, double, int);

}  // namespace isoflop::fit_internal
