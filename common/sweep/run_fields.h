// RunFields: every field a sweep file can set, by its path, bound to where it lives in RunConfig.
//
// The schema says which fields exist and what values they take; this table says what each one
// does. The two must name exactly the same leaves (tests/sweep_schema_test.cpp checks it both
// ways), so a field added to the schema but not here, or here but not in the schema, fails a test
// instead of being silently ignored.
//
// Paths are canonical: the section, then the keys, e.g. "model.ffn.rank", "train.optimizer.lr".
// Model fields appear bare inside sizes and variants (`ffn: {rank: 64}`); the expander adds
// "model." before looking them up.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/run_config.h"
#include "common/sweep/expression.h"

namespace isoflop::sweep {

// When a field's value is known, which decides the variables its expression may read.
enum class Phase {
  kShape,  // the model fields that are themselves variables (d_model, ...): each other's only
  kModel,  // other model fields: the shape variables
  kBatch,  // train.batch_tokens: shape, N, N_nonemb, F and C, not D (D follows from the steps)
  kRun,    // train / eval / resources numbers: every variable
  kFixed,  // booleans, names, paths, lists: no expressions
};

// The variables an expression in a field of this phase may read.
VariableSet AllowedVariables(Phase phase);

enum class FieldKind {
  kInteger,
  kNumber,
  kBool,
  kEnum,
  kString,
  kPath,        // a string naming a file, made absolute against the sweep's directory
  kBetas,       // train.optimizer.betas: [beta1, beta2]
  kBenchmarks,  // eval.benchmarks: a list of {name, path, limit}
  kFreeForm,    // resources.slurm: any map, kept as JSON
};

struct RunField {
  std::string_view path;
  FieldKind kind;
  Phase phase;
  // The accessor for the field's kind; the others are null. kBetas, kBenchmarks and kFreeForm are
  // single fields that the expander writes itself.
  int64_t& (*integer)(RunConfig&) = nullptr;
  double& (*number)(RunConfig&) = nullptr;
  bool& (*boolean)(RunConfig&) = nullptr;
  std::string& (*text)(RunConfig&) = nullptr;  // kString, kPath
  bool (*parse_enum)(const std::string&, RunConfig*) = nullptr;
  const char* (*enum_name)(const RunConfig&) = nullptr;
  Variable variable = Variable::kCount;  // kShape: the variable this field defines
};

// Every field, in schema order.
const std::vector<RunField>& RunFields();
// The field at a canonical path, or nullptr.
const RunField* FindRunField(std::string_view path);

}  // namespace isoflop::sweep
