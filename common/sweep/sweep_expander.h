// SweepExpander: a validated sweep document -> its runs, in a stable order.
//
// The grid is variants x sizes x budgets x seeds. `zip` replaces the axes it names by its entries
// (entry i pairs the i-th value of every list) and may carry field overrides; `random` crosses the
// grid with `count` samples of its space. Loop order, outermost first: zip entry, variant, size,
// budget, random sample, seed. Names: "<variant>/<size>/C<budget %.3g>/s<seed>" (D<tokens> for
// token budgets), then "/z<i>" for a zip entry with overrides and "/r<i>" for a random sample.
//
// Random samples are drawn from std::mt19937_64 (its output is fixed by the C++ standard) through
// arithmetic of our own, and rounded to 8 significant digits, so a seed gives the same runs, and
// the same run ids, on every machine and standard library.
//
// What is an error and what is not: runs outside budgets.tokens_per_param are dropped with the
// reason; two runs with the same name or the same resolved configuration are errors (except random
// samples that happen to coincide, which are dropped: a choice-only space repeats itself); so is a
// sweep whose every run was dropped.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/sweep/diagnostics.h"
#include "common/sweep/located_yaml.h"
#include "common/sweep/schema_validator.h"
#include "common/sweep/sweep_loader.h"

namespace isoflop::sweep {

struct ExpandOptions {
  // Where relative data and benchmark paths resolve; empty: the directory of the file that wrote
  // each path.
  std::string base_dir;
  int64_t max_runs = 100000;
};

// `root` is the merged document and already satisfies `schema`. Fills name, runs, dropped and
// warnings (not path and source); nullopt after reporting errors.
std::optional<ExpandedSweep> ExpandSweep(const YamlNode& root, const SchemaValidator& schema,
                                         const ExpandOptions& options, Diagnostics* diagnostics);

}  // namespace isoflop::sweep
