// ChinchillaFit: loss against model size and data, L(N, D) = E + A / N^alpha + B / D^beta
// (Hoffmann et al. 2022, approach 3; system.md section 9).
//
// Fitted per variant to every completed run: N parameters, D training tokens. E is the loss of an
// infinite model trained on infinite data; the two terms are what finite size and finite data cost.
// Minimises the Huber loss (delta 1e-3) of log residuals with multi-start L-BFGS, as the paper
// does (log_sum_exp_fit.h); intervals from a case bootstrap over runs (bootstrap.h).
#pragma once

#include <cstddef>
#include <vector>

#include "common/fit/bootstrap.h"
#include "common/fit/fit_options.h"
#include "common/status.h"

namespace isoflop {

struct ComputeAllocation {
  double params = 0;  // N
  double tokens = 0;  // D
  double loss = 0;    // L(N, D)
};

struct ChinchillaLaw {
  double E = 0;
  double A = 0;
  double B = 0;
  double alpha = 0;
  double beta = 0;

  double Loss(double params, double tokens) const;
  // The N and D that minimise L for compute C = k * N * D (k: training FLOPs per parameter and
  // token; 6 in the 6ND convention, a little more with attention counted, as isoflop counts it):
  //   N_opt = G * (C / k)^(beta / (alpha + beta)),  G = (alpha A / (beta B))^(1 / (alpha + beta))
  //   D_opt = C / (k * N_opt)                         (Hoffmann et al., equation 4)
  ComputeAllocation ComputeOptimal(double flops, double flops_per_param_token) const;
  // a = beta / (alpha + beta): N_opt grows as C^a, D_opt as C^(1 - a).
  double ParamsExponent() const { return beta / (alpha + beta); }
};

struct ModelPoint {
  double params = 0;  // N > 0
  double tokens = 0;  // D > 0
  double loss = 0;    // L > 0
};

struct ChinchillaFit {
  ChinchillaLaw law;
  Interval E, A, B, alpha, beta;
  Interval params_exponent;  // of ParamsExponent()
  // One law per bootstrap resample, in resample order; NaN fields where a resample could not be
  // refitted (as PowerLawFit::draws).
  std::vector<ChinchillaLaw> draws;
  size_t points = 0;
  double huber_cost = 0;  // mean Huber_delta / delta of the log residuals at the fit
};

// Needs at least 5 points at 5 distinct (N, D) with 2 or more distinct N and D (5 parameters);
// InvalidArgument for a non-positive or non-finite value, FailedPrecondition for too few points or
// when no start converges.
Result<ChinchillaFit> FitChinchilla(const std::vector<ModelPoint>& points,
                                    const FitOptions& options = {});

}  // namespace isoflop
