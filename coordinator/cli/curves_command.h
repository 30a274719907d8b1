// `isoflop curves SWEEP`: scaling laws fitted to a sweep's finished runs, the compute-optimal size
// at each budget, the compute multipliers between variants, and the figure (system.md section 9).
//
// Reads the results database read-only (RunStore::RunOutcomes): each COMPLETED run contributes
// its planned training FLOPs C, its parameters N and tokens D, and the last value of the metric;
// runs in any other state, or without the metric, are left out and counted. The fits are
// common/fit/scaling_analysis.h; the figure common/fit/scaling_plot.h.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/daemon/state_dir.h"

namespace isoflop {

struct CurvesFlags {
  std::string sweep;  // name (its latest version) or number
  std::string metric = "val_loss";
  std::string params = "total";    // N: "total" (as Chinchilla counts) or "nonemb"
  std::vector<std::string> plots;  // figure files, .png or .svg
  std::string format = "table";    // table or json
  int bootstrap = 300;             // resamples behind each interval; 0: none
  double confidence = 0.95;
  uint64_t seed = 0;  // of the bootstrap: the same seed, the same intervals
};

// Registers `curves` on the top-level app.
CLI::App* AddCurvesCommand(CLI::App* app, CurvesFlags* flags);
// Prints the report on stdout and warnings on stderr, writes the plots; 0 on success, 1 with a
// message on stderr otherwise.
int RunCurves(const StateDir& state, const CurvesFlags& flags);

}  // namespace isoflop
