#include "common/fit/chinchilla_fit.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <set>
#include <utility>

#include "common/fit/log_sum_exp_fit.h"

namespace isoflop {
namespace {

using fit_internal::LogSumExpParams;
using fit_internal::LogSumExpSample;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// log L = LSE(e, a - alpha * log(N / N0), b - beta * log(D / D0)):
// E = exp(e), A = exp(a) * N0^alpha, B = exp(b) * D0^beta.
ChinchillaLaw ToLaw(const LogSumExpParams<2>& p, double log_n0, double log_d0) {
  return {std::exp(p.e), std::exp(p.a[0] + p.alpha[0] * log_n0),
          std::exp(p.a[1] + p.alpha[1] * log_d0), p.alpha[0], p.alpha[1]};
}

}  // namespace

double ChinchillaLaw::Loss(double params, double tokens) const {
  return E + A * std::pow(params, -alpha) + B * std::pow(tokens, -beta);
}

ComputeAllocation ChinchillaLaw::ComputeOptimal(double flops, double flops_per_param_token) const {
  const double g = std::pow(alpha * A / (beta * B), 1 / (alpha + beta));
  const double params = g * std::pow(flops / flops_per_param_token, ParamsExponent());
  const double tokens = flops / (flops_per_param_token * params);
  return {params, tokens, Loss(params, tokens)};
}

Result<ChinchillaFit> FitChinchilla(const std::vector<ModelPoint>& points,
                                    const FitOptions& options) {
  std::set<double> sizes, token_counts;
  std::set<std::pair<double, double>> designs;
  double log_n0 = 0, log_d0 = 0;
  for (const ModelPoint& p : points) {
    if (!(p.params > 0 && p.tokens > 0 && p.loss > 0 && std::isfinite(p.params) &&
          std::isfinite(p.tokens) && std::isfinite(p.loss))) {
      return Status::InvalidArgument(
          fmt::format("L(N, D) fit: N {}, D {} and loss {} must be positive and finite", p.params,
                      p.tokens, p.loss));
    }
    sizes.insert(p.params);
    token_counts.insert(p.tokens);
    designs.emplace(p.params, p.tokens);
    log_n0 += std::log(p.params) / static_cast<double>(points.size());
    log_d0 += std::log(p.tokens) / static_cast<double>(points.size());
  }
  if (designs.size() < 5 || sizes.size() < 2 || token_counts.size() < 2) {
    return Status::FailedPrecondition(fmt::format(
        "L(N, D) fit needs runs at 5 or more distinct (N, D), spanning 2 or more sizes and token "
        "counts; got {} ({} sizes, {} token counts)",
        designs.size(), sizes.size(), token_counts.size()));
  }

  std::vector<LogSumExpSample<2>> samples;
  for (const ModelPoint& p : points) {
    samples.push_back(
        {{std::log(p.params) - log_n0, std::log(p.tokens) - log_d0}, std::log(p.loss)});
  }
  auto minimum = fit_internal::MinimizeHuberMultiStart(samples, options.huber_delta);
  if (!minimum) return Status::FailedPrecondition("L(N, D) fit: no start converged");

  ChinchillaFit fit;
  fit.law = ToLaw(minimum->params, log_n0, log_d0);
  fit.points = points.size();
  fit.huber_cost = minimum->cost;
  const auto refits = fit_internal::BootstrapRefits(samples, minimum->params, options.huber_delta,
                                                    options.bootstrap, 5);
  std::vector<double> E, A, B, alpha, beta, exponent;
  for (const auto& refit : refits) {
    fit.draws.push_back(refit ? ToLaw(*refit, log_n0, log_d0)
                              : ChinchillaLaw{kNaN, kNaN, kNaN, kNaN, kNaN});
    const ChinchillaLaw& draw = fit.draws.back();
    E.push_back(draw.E);
    A.push_back(draw.A);
    B.push_back(draw.B);
    alpha.push_back(draw.alpha);
    beta.push_back(draw.beta);
    exponent.push_back(draw.ParamsExponent());
  }
  const double confidence = options.bootstrap.confidence;
  fit.E = RefitInterval(E, confidence);
  fit.A = RefitInterval(A, confidence);
  fit.B = RefitInterval(B, confidence);
  fit.alpha = RefitInterval(alpha, confidence);
  fit.beta = RefitInterval(beta, confidence);
  fit.params_exponent = RefitInterval(exponent, confidence);
  return fit;
}

}  // namespace isoflop
