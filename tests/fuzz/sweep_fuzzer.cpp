// libFuzzer target for the sweep loader: any bytes must come back as a Status or an expansion,
// never as a crash, a hang, unbounded memory or a sanitizer report. Includes are disabled (the
// loader must not read files a fuzzer names) and the run count is capped, so every input stays
// fast.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/sweep/sweep_loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  isoflop::SweepLoadOptions options;
  options.allow_includes = false;
  options.max_errors = 5;
  options.max_runs = 2000;
  options.base_dir = "/nonexistent-isoflop-fuzz";  // data fingerprints look for nothing real
  const std::string yaml(reinterpret_cast<const char*>(data), size);
  isoflop::Result<isoflop::ExpandedSweep> sweep =
      isoflop::LoadSweepFromString(yaml, "fuzz.yaml", options);
  // Errors are located ("fuzz.yaml:L:C: ..."), successes have runs: anything else is a bug.
  if (!sweep.ok() && sweep.status().message().rfind("fuzz.yaml:", 0) != 0) __builtin_trap();
  if (sweep.ok() && sweep->runs.empty()) __builtin_trap();
  return 0;
}
