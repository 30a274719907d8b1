#include "common/fit/power_law_fit.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "common/fit/log_sum_exp_fit.h"

namespace isoflop {
namespace {

using fit_internal::LogSumExpParams;
using fit_internal::LogSumExpSample;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// log L = LSE(e, a - alpha * log(C / C0)): E = exp(e), A = exp(a) * C0^alpha.
PowerLaw ToLaw(const LogSumExpParams<1>& p, double log_reference) {
  return {std::exp(p.e), std::exp(p.a[0] + p.alpha[0] * log_reference), p.alpha[0]};
}

}  // namespace

double PowerLaw::Loss(double flops) const {
  return E + A * std::pow(flops, -alpha);
}

double PowerLaw::FlopsFor(double loss) const {
  if (!(loss > E)) return std::numeric_limits<double>::infinity();
  return std::pow(A / (loss - E), 1 / alpha);
}

Result<PowerLawFit> FitPowerLaw(const std::vector<ComputePoint>& points,
                                const FitOptions& options) {
  std::set<double> distinct;
  double log_reference = 0;
  for (const ComputePoint& p : points) {
    if (!(p.flops > 0 && p.loss > 0 && std::isfinite(p.flops) && std::isfinite(p.loss))) {
      return Status::InvalidArgument(fmt::format(
          "power law fit: compute {} and loss {} must be positive and finite", p.flops, p.loss));
    }
    distinct.insert(p.flops);
    log_reference += std::log(p.flops) / static_cast<double>(points.size());
  }
  if (distinct.size() < 3) {
    return Status::FailedPrecondition(fmt::format(
        "power law fit needs runs at 3 or more compute budgets, got {}", distinct.size()));
  }

  std::vector<LogSumExpSample<1>> samples;
  for (const ComputePoint& p : points) {
    samples.push_back({{std::log(p.flops) - log_reference}, std::log(p.loss)});
  }
  auto minimum = fit_internal::MinimizeHuberMultiStart(samples, options.huber_delta);
  if (!minimum) return Status::FailedPrecondition("power law fit: no start converged");

  PowerLawFit fit;
  fit.law = ToLaw(minimum->params, log_reference);
  fit.points = points.size();
  fit.huber_cost = minimum->cost;
  const auto refits = fit_internal::BootstrapRefits(samples, minimum->params, options.huber_delta,
                                                    options.bootstrap, 3);
  std::vector<double> E, A, alpha;
  for (const auto& refit : refits) {
    fit.draws.push_back(refit ? ToLaw(*refit, log_reference) : PowerLaw{kNaN, kNaN, kNaN});
    E.push_back(fit.draws.back().E);
    A.push_back(fit.draws.back().A);
    alpha.push_back(fit.draws.back().alpha);
  }
  const double confidence = options.bootstrap.confidence;
  fit.E = RefitInterval(E, confidence);
  fit.A = RefitInterval(A, confidence);
  fit.alpha = RefitInterval(alpha, confidence);
  return fit;
}

}  // namespace isoflop
