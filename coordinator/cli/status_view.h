// StatusView: `isoflop status` and the live line of `isoflop run` (system.md section 1).
//
// Reads the results database read-only and directly (no daemon round trip), a few indexed queries
// per call, so a status of 10,000 runs over 10 million metric rows stays under 100 ms (the
// last_metrics table holds each run's newest record; see schemas/migrations/0001_init.sql).
//
//   sweeps:  per sweep, runs by state, FLOPs done of planned, progress and ETA
//   a sweep: per run, state, progress bar, step, loss, tokens/s, heartbeat age, attempts
//   a run:   the same in full, with its attempts and its latest events
// ETA assumes the sweep's current aggregate throughput (FLOP/s of its running runs) holds for the
// FLOPs it has left.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/status.h"
#include "common/store/run_store.h"

namespace isoflop {

// Every sweep, newest last. `json`: a JSON array of objects instead of a table.
Result<std::string> RenderSweeps(const RunStore& store, bool json);
// One sweep version: its summary line and a row per run.
Result<std::string> RenderSweep(const RunStore& store, int64_t sweep_id, bool json);
// One run in detail.
Result<std::string> RenderRun(const RunStore& store, const std::string& run_id, bool json);

struct SweepProgress {
  std::string name;
  int64_t runs = 0;
  int64_t waiting = 0;  // PLANNED, QUEUED, RETRY_WAIT
  int64_t running = 0;  // LAUNCHING, RUNNING
  int64_t completed = 0;
  int64_t failed = 0;  // FAILED and LOST
  int64_t cancelled = 0;
  double progress = 0;  // fraction of planned FLOPs spent
  double planned_flops = 0;
  std::optional<double> eta_s;
  bool finished() const { return waiting == 0 && running == 0; }
};
Result<SweepProgress> ReadSweepProgress(const RunStore& store, int64_t sweep_id);
// "smoke #3: 5/8 done, 2 running, 1 waiting  [##########..........]  52%  ETA 1m05s"
std::string ProgressLine(const SweepProgress& progress, int64_t sweep_id);

// "[#####.....]" `width` cells wide.
std::string ProgressBar(double fraction, int width);
// 75 -> "1m15s", 3700 -> "1h01m"; negative or absent -> "-".
std::string FormatDuration(std::optional<double> seconds);

}  // namespace isoflop
