// BudgetSolver: from a compute budget (or a token count) to the tokens and optimizer steps of one run.
//
//   D = C / F_eff                  (F_eff: training FLOPs per unique token, self-guidance included)
//   steps = round(D * processed_per_unique / batch_tokens), at least one step
// Steps are whole, so the run spends slightly more or less than C; the plan records both the budget and
// the FLOPs actually planned, and `rounding` says by how much they differ. Runs whose D/N falls outside the
// sweep's tokens_per_param bounds are not errors: they are dropped with the reason returned here.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "common/accountant.h"
#include "common/run_config.h"

namespace isoflop {

struct BudgetRequest {
  double flops = 0;   // C > 0, or
  double tokens = 0;  // D > 0 (exactly one of the two)
  int64_t batch_tokens = 0;
  double min_tokens_per_param = 0;
  double max_tokens_per_param = std::numeric_limits<double>::infinity();
};

struct BudgetOutcome {
  BudgetPlan plan;
  double rounding = 0;                 // planned_flops / budget - 1 (0 for token budgets)
  std::optional<std::string> dropped;  // why the run is left out of the sweep, if it is
};

class BudgetSolver {
 public:
  // Fails (InvalidArgument) only for impossible requests: a budget below one optimizer step, a non-positive
  // budget or batch. Out-of-bounds tokens per parameter is a drop, not a failure.
  static Result<BudgetOutcome> Solve(const ParamCount& params, const TrainingCost& cost,
                                     const BudgetRequest& request);
};

}  // namespace isoflop
