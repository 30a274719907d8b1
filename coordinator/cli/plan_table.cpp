#include "coordinator/cli/plan_table.h"

#include <fmt/format.h>

namespace isoflop {

std::string ThroughputModel::Describe() const {
  return fmt::format("GPU-hours assume {:.0f}% MFU of {:.0f} TFLOP/s per GPU (set --mfu, --peak-tflops)",
                     mfu * 100, peak_flops / 1e12);
}

QueryResult PlanRows(const ExpandedSweep& sweep, const ThroughputModel& model) {
  QueryResult out;
  out.columns = {"run",   "variant", "size",          "budget", "N",         "F",
                 "tokens", "steps",  "tokens_per_param", "planned_flops", "six_nd", "gpu_hours"};
  for (const RunConfig& r : sweep.runs) {
    const double tpp =
        static_cast<double>(r.budget.tokens) / static_cast<double>(r.accounting.params);
    out.rows.push_back({r.name, r.variant, r.size, r.budget.flops, r.accounting.params,
                        r.budget.flops_per_token, r.budget.tokens, r.budget.steps, tpp,
                        r.budget.planned_flops, r.budget.six_nd,
                        model.GpuHours(r.budget.planned_flops) * static_cast<double>(r.resources.gpus)});
  }
  return out;
}

std::string PlanSummary(const ExpandedSweep& sweep, const ThroughputModel& model) {
  double flops = 0, gpu_hours = 0;
  for (const RunConfig& r : sweep.runs) {
    flops += r.budget.planned_flops;
    gpu_hours += model.GpuHours(r.budget.planned_flops) * static_cast<double>(r.resources.gpus);
  }
  std::string s;
  for (const DroppedRun& d : sweep.dropped) s += fmt::format("dropped {}: {}\n", d.name, d.reason);
  for (const std::string& w : sweep.warnings) s += fmt::format("warning: {}\n", w);
  s += fmt::format("sweep {}: {} runs, {} dropped, {:.3g} FLOPs, {:.3g} GPU-hours\n", sweep.name,
                   sweep.runs.size(), sweep.dropped.size(), flops, gpu_hours);
  s += model.Describe() + "\n";
  return s;
}

}  // namespace isoflop
