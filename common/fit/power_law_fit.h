// PowerLawFit: loss against training compute, L(C) = E + A * C^(-alpha) (system.md section 9).
//
// Fitted per variant to the lower envelope of its runs (scaling_analysis.h chooses the points): E
// is the loss no amount of compute removes, alpha how fast the rest falls. The fit minimises the
// Huber loss of log residuals with multi-start L-BFGS (log_sum_exp_fit.h); intervals come from a
// case bootstrap (bootstrap.h).
#pragma once

#include <cstddef>
#include <vector>

#include "common/fit/bootstrap.h"
#include "common/fit/fit_options.h"
#include "common/status.h"

namespace isoflop {

struct PowerLaw {
  double E = 0;
  double A = 0;
  double alpha = 0;

  double Loss(double flops) const;
  // The compute at which the law reaches `loss`: (A / (loss - E))^(1/alpha); +inf when loss <= E,
  // a loss this law never reaches.
  double FlopsFor(double loss) const;
};

struct ComputePoint {
  double flops = 0;  // C > 0
  double loss = 0;   // L > 0
};

struct PowerLawFit {
  PowerLaw law;
  Interval E, A, alpha;
  // One law per bootstrap resample, in resample order; NaN fields where a resample could not be
  // refitted. Two fits made with the same BootstrapOptions pair up draw by draw, which is how an
  // interval of a quantity that depends on both (a compute multiplier) is formed.
  std::vector<PowerLaw> draws;
  size_t points = 0;
  double huber_cost = 0;  // mean Huber_delta / delta of the log residuals at the fit
};

// Needs at least 3 points at 3 distinct compute values (3 parameters); InvalidArgument for a
// non-positive or non-finite value, FailedPrecondition for too few points or when no start
// converges. A resample needs 3 distinct compute values too, else it is left out of the intervals.
Result<PowerLawFit> FitPowerLaw(const std::vector<ComputePoint>& points,
                                const FitOptions& options = {});

}  // namespace isoflop
