// SweepLoader: a sweep YAML file -> the list of fully resolved runs (RunConfig), or the first
// errors.
//
// Pipeline (system.md section 3): read YAML (yaml-cpp) and its `include`s into a located tree ->
// validate against schemas/sweep.schema.json (unknown keys get a did-you-mean) -> expand sizes x
// variants x budgets x seeds, `zip` groups and `random` samples, with per-size and per-variant
// overrides -> resolve derived expressions (muParser) -> account (N, F) -> solve budgets (D, steps)
// -> validate each run. Every error names file:line:column, the field path and what was expected.
// Loading never writes anything; the caller stores the result only when it is OK, so an invalid
// file changes nothing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/run_config.h"
#include "common/status.h"

namespace isoflop {

struct DroppedRun {
  std::string name;    // as RunConfig::name would have been
  std::string reason;  // e.g. "312 tokens per parameter is above the sweep's maximum 200"
};

struct ExpandedSweep {
  std::string name;
  std::string path;    // the file as given
  std::string source;  // YAML text of the file, includes appended with a "# include: F" line
  std::vector<RunConfig> runs;  // in a stable order: zip/grid order, then seeds
  // Runs left out: outside the tokens-per-parameter bounds, or a random sample identical to an
  // earlier one.
  std::vector<DroppedRun> dropped;
  std::vector<std::string> warnings;
};

struct SweepLoadOptions {
  // Directory that relative data and benchmark paths are resolved against; default: the directory
  // of the file that names the path (the sweep file, or the include that set it).
  std::string base_dir;
  // At most this many errors are collected before loading stops (all are in the returned message,
  // one per line, in file order).
  int max_errors = 20;
  // `include:` is refused when false (the fuzzer must not read arbitrary files).
  bool allow_includes = true;
  // A sweep that expands to more runs than this is an error: a stray zero in `random.count` or a
  // huge grid should fail at once, not plan for minutes (and the fuzzer must stay fast).
  int64_t max_runs = 100000;
};

Result<ExpandedSweep> LoadSweep(const std::string& path, const SweepLoadOptions& options = {});
// The same from text; `virtual_path` names it in messages and resolves includes.
Result<ExpandedSweep> LoadSweepFromString(const std::string& yaml, const std::string& virtual_path,
                                          const SweepLoadOptions& options = {});

}  // namespace isoflop
