#include "common/budget_solver.h"

#include <cmath>

#include <fmt/format.h>

namespace isoflop {

Result<BudgetOutcome> BudgetSolver::Solve(const ParamCount& params, const TrainingCost& cost,
                                          const BudgetRequest& request) {
  if (request.batch_tokens <= 0) {
    return Status::InvalidArgument(fmt::format("batch_tokens must be positive, got {}", request.batch_tokens));
  }
  const bool by_flops = request.flops > 0;
  if (by_flops == (request.tokens > 0)) {
    return Status::InvalidArgument("exactly one of a FLOP budget and a token budget must be positive");
  }
  const double per_token = cost.flops_per_unique_token;
  const double target_unique = by_flops ? request.flops / per_token : request.tokens;
  const double target_processed = target_unique * cost.processed_per_unique;
  const double exact_steps = target_processed / static_cast<double>(request.batch_tokens);
  if (exact_steps < 0.5) {
    return Status::InvalidArgument(fmt::format(
        "budget {:.3g} {} buys {:.3g} tokens, less than one optimizer step of {} tokens",
        by_flops ? request.flops : request.tokens, by_flops ? "FLOPs" : "tokens", target_processed,
        request.batch_tokens));
  }

  BudgetOutcome out;
  BudgetPlan& p = out.plan;
  p.steps = std::llround(exact_steps);
  p.tokens_processed = p.steps * request.batch_tokens;
  p.tokens = std::llround(static_cast<double>(p.tokens_processed) / cost.processed_per_unique);
  p.flops_per_token = per_token;
  p.planned_flops = per_token * static_cast<double>(p.tokens);
  p.flops = by_flops ? request.flops : p.planned_flops;
  p.six_nd = 6.0 * static_cast<double>(params.total) * static_cast<double>(p.tokens);
  out.rounding = by_flops ? p.planned_flops / request.flops - 1.0 : 0.0;

  const double tpp = static_cast<double>(p.tokens) / static_cast<double>(params.total);
  if (tpp < request.min_tokens_per_param) {
    out.dropped = fmt::format("{:.3g} tokens per parameter is below the sweep's minimum {:g}", tpp,
                              request.min_tokens_per_param);
  } else if (tpp > request.max_tokens_per_param) {
    out.dropped = fmt::format("{:.3g} tokens per parameter is above the sweep's maximum {:g}", tpp,
                              request.max_tokens_per_param);
  }
  return out;
}

}  // namespace isoflop
