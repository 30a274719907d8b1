// ScalingAnalysis: a sweep's finished runs -> per-variant scaling laws, compute-optimal sizes, and
// how much compute one variant needs to match another (system.md section 9). It is what
// `isoflop curves` prints and plots; it knows nothing of the database.
//
// Per variant:
//   - the runs of each (size, budget) over seeds make one point with an error bar (ConfigSummary);
//   - L(C) = E + A * C^(-alpha) is fitted to the lower envelope: at each budget, the size with the
//     lowest mean loss, all its seeds (PowerLawFit);
//   - L(N, D) = E + A / N^alpha + B / D^beta to every run (ChinchillaFit), giving the
//     compute-optimal N and D at each budget;
//   - at each budget with 3 or more sizes, a parabola in ln N (IsoflopParabola) gives them too,
//     and a warning when its minimum sits on the edge of the grid.
// Per pair of variants: the compute multiplier (ComputeMultiplier).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/fit/bootstrap.h"
#include "common/fit/chinchilla_fit.h"
#include "common/fit/fit_options.h"
#include "common/fit/isoflop_parabola.h"
#include "common/fit/power_law_fit.h"

namespace isoflop {

// One finished run: where it sat in the grid and where it ended.
struct RunObservation {
  std::string variant;
  std::string size;
  double budget = 0;  // C it was planned for: runs with equal budgets are compared at equal compute
  int64_t seed = 0;
  double params = 0;  // N (total or non-embedding: the caller's choice, used throughout)
  double tokens = 0;  // D
  double flops = 0;   // training FLOPs it spent
  double loss = 0;    // final value of the metric
};

// The seeds of one (variant, size, budget): a plotted point with its error bar.
struct ConfigSummary {
  std::string size;
  double budget = 0;
  double params = 0;
  double tokens = 0;
  double flops = 0;  // mean over seeds
  double loss_mean = 0;
  double loss_stddev = 0;  // sample standard deviation over seeds; 0 with one seed
  int seeds = 0;
  bool on_envelope = false;  // the lowest mean loss at its budget: its seeds enter the L(C) fit
};

struct BudgetOptimum {
  double budget = 0;
  // Approach 2, when the budget has 3 or more sizes.
  std::optional<IsoflopParabola> parabola;
  // Approach 3: ChinchillaLaw::ComputeOptimal(budget, flops_per_param_token), when L(N, D) fitted.
  std::optional<ComputeAllocation> fitted;
};

struct VariantScaling {
  std::string variant;
  std::vector<ConfigSummary> configs;  // by budget, then N
  // k in C = k N D: the median over the variant's runs of C / (N D). 6 in the 6ND convention; the
  // exact accounting adds attention, so k is measured rather than assumed.
  double flops_per_param_token = 0;
  std::optional<PowerLawFit> power_law;
  std::string power_law_missing;  // why there is no power law fit, when there is none
  std::optional<ChinchillaFit> chinchilla;
  std::string chinchilla_missing;
  std::vector<BudgetOptimum> optima;  // one per budget, ascending
  // Approach 2's frontier: the slope of ln N_opt against ln C through the parabola minima that are
  // not on a grid edge, when there are 2 or more.
  std::optional<double> isoflop_params_exponent;
};

// How much compute `other` needs for the loss `baseline` reaches with a given compute, over that
// compute: C_other(L) / C_baseline(L), by their L(C) fits. Above 1, `other` needs more. The loss
// compared at is the one the weaker of the two reaches at the largest compute both were run at, so
// that the stronger reaches it inside its own runs too and neither law is extrapolated (with a
// multiplier of m, comparing at the stronger one's loss would read the weaker one's law m times
// beyond its data). Infinite when a law never reaches that loss (its E lies above it).
struct ComputeMultiplier {
  std::string baseline;
  std::string other;
  double reference_flops = 0;  // the largest compute both variants' envelopes reach
  double reference_loss = 0;   // the weaker variant's fitted loss there
  double multiplier = 0;
  Interval interval;  // over bootstrap resamples of both fits, paired draw by draw
};

struct ScalingReport {
  std::vector<VariantScaling> variants;        // in order of first appearance among the runs
  std::vector<ComputeMultiplier> multipliers;  // every pair, the earlier variant as the baseline
  std::vector<std::string> warnings;           // minima on grid edges, fits that could not be made
};

// Runs with a non-finite or non-positive loss, N, D or C are the caller's to drop; any here are
// ignored with a warning.
ScalingReport AnalyzeScaling(const std::vector<RunObservation>& runs,
                             const FitOptions& options = {});

}  // namespace isoflop
