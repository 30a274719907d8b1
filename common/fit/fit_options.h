// Options shared by the scaling-law fits (PowerLawFit, ChinchillaFit).
#pragma once

#include "common/fit/bootstrap.h"

namespace isoflop {

struct FitOptions {
  // Huber loss threshold on log-loss residuals; 1e-3 as in Hoffmann et al. (2022), approach 3.
  double huber_delta = 1e-3;
  BootstrapOptions bootstrap;
};

}  // namespace isoflop
