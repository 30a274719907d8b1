// PlanTable: the dry-run view of an expanded sweep (`isoflop plan`, `isoflop submit --dry-run`).
//
// One row per run: name, variant, size, budget C, N, F (training FLOPs per token), tokens D, steps,
// tokens per parameter, planned FLOPs, 6ND and estimated GPU-hours. GPU-hours follow a stated throughput
// model, planned FLOPs / (mfu * peak), printed with the table so nobody mistakes it for a measurement.
#pragma once

#include <string>

#include "common/store/run_store.h"
#include "common/sweep/sweep_loader.h"

namespace isoflop {

struct ThroughputModel {
  double peak_flops = 989e12;  // H100 SXM dense bf16
  double mfu = 0.40;           // nanoGPT with torch.compile reached 41% at GPT-2 124M on the H100 here
  double GpuHours(double flops) const { return flops / (peak_flops * mfu) / 3600.0; }
  std::string Describe() const;
};

QueryResult PlanRows(const ExpandedSweep& sweep, const ThroughputModel& model);
// Dropped runs, warnings, totals and the throughput model, as lines for stderr (table format) or as
// fields of the JSON document.
std::string PlanSummary(const ExpandedSweep& sweep, const ThroughputModel& model);

}  // namespace isoflop
