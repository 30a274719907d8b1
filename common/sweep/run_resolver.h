// RunResolver: the field values of one size x variant combination -> a resolved RunConfig per
// budget.
//
// A run's fields come from layers, later ones overriding earlier ones:
//   model / train / eval / resources / data  <  sizes.S  <  variants.V  <  zip entry  <  random
//   sample
// FieldMap flattens the layers into one value per field, remembering where each value was written,
// so every later error points at the line that set it.
//
// Resolution runs in the order the values become known:
//   1. shape: d_model, n_layer, n_head, seq_len, vocab_size, d_ff (expressions over each other;
//      cycles are errors), then the other model fields over the shape;
//   2. ModelSpec::Validate, then the accountant: N, N_nonemb, F;
//   3. per budget: train.batch_tokens (may read C, not D), the budget solver (D, steps), then every
//      other train / eval / resources expression (may read C and D).
// Steps 1-2 and every expression not reading C or D run once per combination (ResolveCombination);
// step 3 runs once per budget (ResolveRun), evaluating only the expressions left for it, so a sweep
// of 10,000 runs compiles each expression once and evaluates a few bytecodes per run.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/accountant.h"
#include "common/budget_solver.h"
#include "common/run_config.h"
#include "common/sweep/diagnostics.h"
#include "common/sweep/expression.h"
#include "common/sweep/located_yaml.h"
#include "common/sweep/run_fields.h"
#include "common/sweep/schema_validator.h"

namespace isoflop::sweep {

// Which layer set a value: decides how much context an error about it needs.
enum class Layer { kShared, kSize, kVariant, kZip, kRandom };

struct FieldSource {
  const YamlNode* node = nullptr;  // the value as written (a scalar, or a list for list fields)
  std::string path;                // as the user wrote it: "variants.lowrank.ffn.rank"
  Layer layer = Layer::kShared;
};

class FieldMap {
 public:
  // Adds the leaves of `node` as the field `canonical` ("model", "train.optimizer",
  // "model.ffn.rank"), shown in messages as `shown`. Maps merge into what is there; lists and
  // scalars replace it.
  void Add(const YamlNode& node, const std::string& canonical, const std::string& shown,
           Layer layer);
  // A size's or a variant's entry: its model fields under "model", its sections under their names.
  void AddEntry(const YamlNode& entry, const std::string& shown, Layer layer);

  const FieldSource* Find(std::string_view canonical) const;
  const std::map<std::string, FieldSource, std::less<>>& leaves() const { return leaves_; }

 private:
  void Erase(const std::string& canonical);
  std::map<std::string, FieldSource, std::less<>> leaves_;
};

// Compiles each distinct expression text once per sweep; failures are remembered as well.
class ExpressionCache {
 public:
  const Result<Expression>& Get(const std::string& text);

 private:
  std::unordered_map<std::string, std::unique_ptr<Result<Expression>>> compiled_;
};

// Names of the combination, for messages and for the fallback location of model errors.
struct CombinationLabel {
  std::string size;
  std::string variant;
  const YamlNode* variant_key = nullptr;
  const YamlNode* size_key = nullptr;
};

// A numeric field whose expression reads C or D: evaluated per budget.
struct DeferredField {
  const RunField* field = nullptr;
  const FieldSource* source = nullptr;
  const Expression* expression = nullptr;
};

struct ResolvedCombination {
  RunConfig config;  // everything but the budget, the names and the deferred fields
  ParamCount params;
  TrainingCost cost;
  VariableValues variables{};                 // shape, N, N_nonemb, F
  std::optional<DeferredField> batch_tokens;  // when it reads C
  std::vector<DeferredField> deferred;        // the rest, in field order
  FieldMap fields;                            // owns the sources the deferred fields point at
  CombinationLabel label;
};

struct BudgetPoint {
  bool is_flops = true;  // C, else D
  double value = 0;
  const YamlNode* node = nullptr;
  std::string path;  // "budgets.flops[1]"
};

struct TokensPerParam {
  double min = 0;
  double max = 0;  // +inf when unbounded
};

struct ResolvedRun {
  RunConfig config;                    // names left for the expander
  std::optional<std::string> dropped;  // outside tokens_per_param: why
  double rounding = 0;                 // planned / budget - 1
};

class RunResolver {
 public:
  // `base_dir`: where relative data and benchmark paths resolve; empty: the directory of the file
  // that wrote each path.
  RunResolver(const SchemaValidator& schema, std::string base_dir, Diagnostics* diagnostics);

  // Steps 1-2 and the budget-independent part of step 3; nullopt after reporting errors.
  std::optional<ResolvedCombination> ResolveCombination(FieldMap fields, CombinationLabel label);

  // Step 3 for one budget; nullopt after reporting errors. `run` names the run in messages.
  std::optional<ResolvedRun> ResolveRun(const ResolvedCombination& combination,
                                        const BudgetPoint& budget, const TokensPerParam& bounds,
                                        const std::string& run);

 private:
  struct Context;
  bool ResolveShape(const FieldMap& fields, const CombinationLabel& label, RunConfig* config,
                    VariableValues* variables);
  bool ApplyField(const RunField& field, const FieldSource& source, const VariableValues& variables,
                  const std::string& context, ResolvedCombination* combination);
  std::optional<double> Evaluate(const RunField& field, const FieldSource& source,
                                 const Expression* expression, const VariableValues& variables,
                                 const std::string& context);
  // Compiles a numeric field's expression and checks its phase may read its variables; sets
  // *expression to null for a literal. False after reporting an error.
  bool Compile(const RunField& field, const FieldSource& source, const std::string& context,
               const Expression** expression);
  void ReportModelError(const Status& status, const FieldMap& fields,
                        const CombinationLabel& label);
  std::string ResolvePath(const std::string& value, const YamlNode& node) const;

  const SchemaValidator& schema_;
  std::string base_dir_;
  Diagnostics* diagnostics_;
  ExpressionCache expressions_;
  std::unordered_map<const RunField*, const nlohmann::ordered_json*> field_schemas_;
};

// The context an error about a value from `layer` needs: " (size s)" for a variant's value, and so
// on; a size's own value needs none.
std::string LayerContext(Layer layer, const CombinationLabel& label);

}  // namespace isoflop::sweep
