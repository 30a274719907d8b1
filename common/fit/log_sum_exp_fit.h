// The optimiser behind PowerLawFit and ChinchillaFit (internal to isoflop_fit).
//
// Both laws are a constant plus decaying power terms, L = E + sum_j A_j * exp(-alpha_j * x_j) with
// x_j the log of a scale (compute C; parameters N, tokens D) over a reference scale. Hoffmann et
// al. (2022, appendix D.2, approach 3) fit such laws in log space, where every parameter is free of
// sign constraints and the terms are summed stably:
//
//   log L = LSE(e, a_1 - alpha_1 x_1, ..., a_k - alpha_k x_k),    E = exp(e), A_j = exp(a_j)
//
// minimising the Huber loss (delta 1e-3) of the log residuals with L-BFGS from a grid of starts.
// With noise well above delta the Huber loss is close to the absolute error: one diverged or
// mis-logged run moves the fit far less than it would under least squares. Measuring x_j from a
// reference scale (the data's geometric mean) keeps a_j and alpha_j nearly uncorrelated, which
// L-BFGS needs on data spanning five decades.
#pragma once

#include <array>
#include <optional>
#include <vector>

#include "common/fit/bootstrap.h"

namespace isoflop::fit_internal {

template <int kTerms>
struct LogSumExpSample {
  std::array<double, kTerms> x{};  // log(scale_j / reference_j)
  double log_loss = 0;
};

template <int kTerms>
struct LogSumExpParams {
  double e = 0;
  std::array<double, kTerms> a{};
  std::array<double, kTerms> alpha{};
};

template <int kTerms>
struct LogSumExpMinimum {
  LogSumExpParams<kTerms> params;
  double cost = 0;  // mean Huber loss / delta at the minimum
};

// Mean over samples of Huber_delta(predicted log L - observed log L) / delta at `params`.
template <int kTerms>
double HuberCost(const std::vector<LogSumExpSample<kTerms>>& samples,
                 const LogSumExpParams<kTerms>& params, double delta);

// L-BFGS (Ceres GradientProblemSolver, derivatives by automatic differentiation) from each start;
// the lowest finite minimum, or nullopt when every start diverged.
template <int kTerms>
std::optional<LogSumExpMinimum<kTerms>> MinimizeHuber(
    const std::vector<LogSumExpSample<kTerms>>& samples,
    const std::vector<LogSumExpParams<kTerms>>& starts, double delta);

// Multi-start: evaluates the cost on a grid of starts scaled to the data (E a fraction of the
// smallest loss, each A_j a fraction of it at the reference scale, exponents from 0.05 to 1) and
// runs L-BFGS from the `keep` best of them.
template <int kTerms>
std::optional<LogSumExpMinimum<kTerms>> MinimizeHuberMultiStart(
    const std::vector<LogSumExpSample<kTerms>>& samples, double delta, int keep = 8);

// One refit per bootstrap resample (ResampleIndices order), each started from `fitted`, the fit to
// all samples: a resample is a perturbation of the data, so its minimum lies near that one. A
// resample with fewer than `min_distinct` distinct designs (x vectors) cannot pin the law down, and
// neither can a refit that diverges: both give nullopt rather than a number that would widen or
// narrow an interval for no reason in the data.
template <int kTerms>
std::vector<std::optional<LogSumExpParams<kTerms>>> BootstrapRefits(
    const std::vector<LogSumExpSample<kTerms>>& samples, const LogSumExpParams<kTerms>& fitted,
    double delta, const BootstrapOptions& options, size_t min_distinct);

}  // namespace isoflop::fit_internal
