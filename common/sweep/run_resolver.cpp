#include "common/sweep/run_resolver.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <limits>

namespace isoflop::sweep {

namespace fs = std::filesystem;

namespace {

// A run that plans more tokens than this is a unit mistake (FLOPs given as tokens, a missing
// exponent sign); beyond it the solver's integer step arithmetic would also overflow.
constexpr double kMaxPlannedTokens = 1e15;

constexpr std::string_view kSlurm = "resources.slurm";

bool IsSection(std::string_view key) {
  return key == "train" || key == "eval" || key == "resources" || key == "data";
}

std::string FormatValue(double value) {
  return std::isnan(value) ? std::string("nan") : fmt::format("{:.5g}", value);
}

// Free-form YAML (resources.slurm) as JSON, with YAML's scalar typing: quoted text stays text.
nlohmann::json ToJson(const YamlNode& node) {
  switch (node.kind) {
    case YamlNode::Kind::kNull:
      return nullptr;
    case YamlNode::Kind::kList: {
      nlohmann::json list = nlohmann::json::array();
      for (const YamlNode& item : node.items) list.push_back(ToJson(item));
      return list;
    }
    case YamlNode::Kind::kMap: {
      nlohmann::json map = nlohmann::json::object();
      for (const YamlNode::Entry& entry : node.entries) map[entry.key.text] = ToJson(entry.value);
      return map;
    }
    case YamlNode::Kind::kScalar:
      break;
  }
  if (!node.quoted) {
    if (const std::optional<bool> b = AsBool(node)) return *b;
    if (const std::optional<int64_t> i = AsInteger(node);
        i && node.text.find_first_of(".eE") == std::string::npos) {
      return *i;
    }
    if (const std::optional<double> d = AsNumber(node)) return *d;
  }
  return node.text;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// FieldMap

void FieldMap::Erase(const std::string& canonical) {
  leaves_.erase(canonical);
  const std::string prefix = canonical + ".";
  auto it = leaves_.lower_bound(prefix);
  while (it != leaves_.end() && it->first.compare(0, prefix.size(), prefix) == 0) {
    it = leaves_.erase(it);
  }
}

void FieldMap::Add(const YamlNode& node, const std::string& canonical, const std::string& shown,
                   Layer layer) {
  if (node.is_null()) return;  // an empty entry changes nothing
  if (node.is_map()) {
    leaves_.erase(canonical);  // a map replaces a scalar that stood here and merges with a map
    for (const YamlNode::Entry& entry : node.entries) {
      Add(entry.value, canonical + "." + entry.key.text, JoinPath(shown, entry.key.text), layer);
    }
    return;
  }
  if (canonical == "model.ffn") {
    // `ffn: lowrank` is {type: lowrank}, and like any scalar it replaces the whole map below it.
    Erase(canonical);
    leaves_[canonical + ".type"] = FieldSource{&node, shown, layer};
    return;
  }
  Erase(canonical);
  leaves_[canonical] = FieldSource{&node, shown, layer};
}

void FieldMap::AddEntry(const YamlNode& entry, const std::string& shown, Layer layer) {
  for (const YamlNode::Entry& e : entry.entries) {
    const std::string& key = e.key.text;
    Add(e.value, IsSection(key) ? key : "model." + key, JoinPath(shown, key), layer);
  }
}

const FieldSource* FieldMap::Find(std::string_view canonical) const {
  auto it = leaves_.find(canonical);
  return it == leaves_.end() ? nullptr : &it->second;
}

const Result<Expression>& ExpressionCache::Get(const std::string& text) {
  auto it = compiled_.find(text);
  if (it == compiled_.end()) {
    it = compiled_.emplace(text, std::make_unique<Result<Expression>>(Expression::Compile(text)))
             .first;
  }
  return *it->second;
}

std::string LayerContext(Layer layer, const CombinationLabel& label) {
  switch (layer) {
    case Layer::kSize:
      return "";
    case Layer::kVariant:
      return fmt::format(" (size {})", label.size);
    case Layer::kShared:
    case Layer::kZip:
    case Layer::kRandom:
      break;
  }
  return fmt::format(" (variant {}, size {})", label.variant, label.size);
}

// ---------------------------------------------------------------------------------------------------
// RunResolver

RunResolver::RunResolver(const SchemaValidator& schema, std::string base_dir,
                         Diagnostics* diagnostics)
    : schema_(schema), base_dir_(std::move(base_dir)), diagnostics_(diagnostics) {
  for (const RunField& field : RunFields()) {
    field_schemas_[&field] = schema_.Find(schema_.root(), SplitPath(field.path)).schema;
  }
}

std::string RunResolver::ResolvePath(const std::string& value, const YamlNode& node) const {
  const fs::path path(value);
  if (path.is_absolute()) return path.lexically_normal().string();
  const fs::path base = !base_dir_.empty()   ? fs::path(base_dir_)
                        : node.location.file ? fs::path(node.location.file->path).parent_path()
                                             : fs::path();
  std::error_code ec;
  return fs::absolute(base / path, ec).lexically_normal().string();
}

bool RunResolver::Compile(const RunField& field, const FieldSource& source,
                          const std::string& context, const Expression** expression) {
  *expression = nullptr;
  const YamlNode& node = *source.node;
  if (!node.is_scalar() || AsNumber(node)) return true;
  const Result<Expression>& compiled = expressions_.Get(node.text);
  if (!compiled.ok()) {
    diagnostics_->Add(node.location, source.path, compiled.status().message() + context);
    return false;
  }
  const VariableSet allowed = AllowedVariables(field.phase);
  const VariableSet extra = compiled->used() & ~allowed;
  if (extra != 0) {
    Variable first = Variable::kCount;
    for (int i = 0; i < kVariableCount; ++i) {
      if (extra & (VariableSet{1} << i)) {
        first = static_cast<Variable>(i);
        break;
      }
    }
    std::string message;
    if (field.phase == Phase::kBatch) {
      message = fmt::format(
          "{} is not known when train.batch_tokens is resolved: the tokens D follow from the "
          "number "
          "of steps, which follows from batch_tokens (it may use {})",
          VariableName(first), DescribeVariables(allowed));
    } else {
      message = fmt::format("{} is not known when model fields are resolved (they may use {})",
                            VariableName(first), DescribeVariables(allowed));
    }
    diagnostics_->Add(node.location, source.path, message + context);
    return false;
  }
  *expression = &*compiled;
  return true;
}

std::optional<double> RunResolver::Evaluate(const RunField& field, const FieldSource& source,
                                            const Expression* expression,
                                            const VariableValues& variables,
                                            const std::string& context) {
  const YamlNode& node = *source.node;
  if (expression == nullptr) {
    // Literals passed the schema, bounds included.
    std::optional<double> value = AsNumber(node);
    if (field.kind == FieldKind::kInteger) {
      const std::optional<int64_t> integer = AsInteger(node);
      value = integer ? std::optional<double>(static_cast<double>(*integer)) : std::nullopt;
    }
    if (!value) {
      diagnostics_->Add(node.location, source.path,
                        fmt::format("expected a number, got {}{}", Describe(node), context));
    }
    return value;
  }
  const double value = expression->Evaluate(variables);
  auto fail = [&](const std::string& what) {
    diagnostics_->Add(
        node.location, source.path,
        fmt::format("\"{}\" = {}, {}{}", expression->text(), FormatValue(value), what, context));
    return std::nullopt;
  };
  if (std::isinf(value)) return fail("expected a finite number (a division by zero?)");
  if (std::isnan(value)) {
    return fail("expected a number (0/0, or the root or logarithm of a negative number?)");
  }
  const bool integer = field.kind == FieldKind::kInteger;
  if (integer && std::fabs(value - std::round(value)) > 1e-9 * std::max(1.0, std::fabs(value))) {
    return fail("expected an integer (round it with round(...), floor(...) or ceil(...))");
  }
  const double rounded = integer ? std::round(value) : value;
  if (const nlohmann::ordered_json* schema = field_schemas_[&field]) {
    if (std::string bound = schema_.CheckBounds(*schema, rounded); !bound.empty()) {
      return fail(bound);
    }
  }
  return rounded;
}

namespace {

void Store(const RunField& field, double value, RunConfig* config) {
  if (field.kind == FieldKind::kInteger) {
    field.integer(*config) = static_cast<int64_t>(std::llround(value));
  } else {
    field.number(*config) = value;
  }
}

}  // namespace

bool RunResolver::ResolveShape(const FieldMap& fields, const CombinationLabel& label,
                               RunConfig* config, VariableValues* variables) {
  // expression.h lists the shape variables first, d_ff last among them.
  constexpr int kShapeCount = static_cast<int>(Variable::kDFf) + 1;
  std::array<const RunField*, kShapeCount> shape_fields{};
  for (const RunField& field : RunFields()) {
    if (field.phase == Phase::kShape) shape_fields[static_cast<int>(field.variable)] = &field;
  }
  enum class State { kTodo, kActive, kDone, kFailed };
  std::array<State, kShapeCount> state{};
  state.fill(State::kTodo);
  std::vector<Variable> active;  // the chain being resolved, for cycle messages

  auto visit = [&](auto&& self, Variable v) -> bool {
    const int i = static_cast<int>(v);
    if (state[i] == State::kDone) return true;
    if (state[i] == State::kFailed) return false;
    const RunField& field = *shape_fields[i];
    const FieldSource* source = fields.Find(field.path);
    state[i] = State::kActive;
    active.push_back(v);
    auto finish = [&](bool ok) {
      active.pop_back();
      state[i] = ok ? State::kDone : State::kFailed;
      return ok;
    };
    double value = 0;
    if (source == nullptr) {
      if (v == Variable::kVocabSize) {
        value = static_cast<double>(config->model.vocab_size);
      } else if (v == Variable::kDFf) {
        value = 0;
      } else {
        const std::string name(field.path.substr(std::string_view("model.").size()));
        diagnostics_->Add(label.size_key->location, JoinPath("sizes." + label.size, name),
                          "not set (give it in this size, under model, or in every variant)");
        return finish(false);
      }
    } else {
      const std::string context = LayerContext(source->layer, label);
      const Expression* expression = nullptr;
      if (!Compile(field, *source, context, &expression)) return finish(false);
      if (expression != nullptr) {
        for (int u = 0; u < kShapeCount; ++u) {
          if (!(expression->used() & (VariableSet{1} << u))) continue;
          if (state[u] == State::kActive) {
            std::string cycle;
            auto from = std::find(active.begin(), active.end(), static_cast<Variable>(u));
            for (auto it = from; it != active.end(); ++it) {
              cycle += std::string(VariableName(*it)) + " -> ";
            }
            cycle += VariableName(static_cast<Variable>(u));
            diagnostics_->Add(
                source->node->location, source->path,
                fmt::format("\"{}\" depends on itself: {}{}", expression->text(), cycle, context));
            return finish(false);
          }
          if (!self(self, static_cast<Variable>(u))) return finish(false);
        }
      }
      const std::optional<double> evaluated =
          Evaluate(field, *source, expression, *variables, context);
      if (!evaluated) return finish(false);
      value = *evaluated;
    }
    Store(field, value, config);
    if (v == Variable::kDFf && value == 0) {
      // Unset d_ff means 4 * d_model (ModelSpec::ffn_hidden), and that is what d_ff reads as.
      if (!self(self, Variable::kDModel)) return finish(false);
      value = 4 * (*variables)[static_cast<int>(Variable::kDModel)];
    }
    (*variables)[i] = value;
    return finish(true);
  };
  bool ok = true;
  for (int i = 0; i < kShapeCount; ++i) ok = visit(visit, static_cast<Variable>(i)) && ok;
  return ok;
}

bool RunResolver::ApplyField(const RunField& field, const FieldSource& source,
                             const VariableValues& variables, const std::string& context,
                             ResolvedCombination* combination) {
  RunConfig& config = combination->config;
  const YamlNode& node = *source.node;
  switch (field.kind) {
    case FieldKind::kBool:
      field.boolean(config) = AsBool(node).value_or(false);
      return true;
    case FieldKind::kEnum:
      if (!field.parse_enum(node.text, &config)) {
        // The schema's enum and the C++ Parse() disagree: a bug, but say which field.
        diagnostics_->Add(
            node.location, source.path,
            fmt::format("\"{}\" is in the schema but not known to the planner", node.text));
        return false;
      }
      return true;
    case FieldKind::kString:
      field.text(config) = node.text;
      return true;
    case FieldKind::kPath:
      field.text(config) = ResolvePath(node.text, node);
      return true;
    case FieldKind::kBetas:
      config.train.optimizer.beta1 = AsNumber(node.items.at(0)).value_or(0);
      config.train.optimizer.beta2 = AsNumber(node.items.at(1)).value_or(0);
      return true;
    case FieldKind::kBenchmarks:
      config.eval.benchmarks.clear();
      for (const YamlNode& item : node.items) {
        BenchmarkSpec benchmark;
        benchmark.name = item.Find("name")->text;
        const YamlNode* path = item.Find("path");
        benchmark.path = ResolvePath(path->text, *path);
        if (const YamlNode* limit = item.Find("limit"))
          benchmark.limit = AsInteger(*limit).value_or(0);
        config.eval.benchmarks.push_back(std::move(benchmark));
      }
      return true;
    case FieldKind::kFreeForm:
      return true;  // ResolveCombination sets the JSON; it knows the key path below the field
    case FieldKind::kInteger:
    case FieldKind::kNumber:
      break;
  }
  const Expression* expression = nullptr;
  if (!Compile(field, source, context, &expression)) return false;
  const VariableSet per_budget = Bit(Variable::kC) | Bit(Variable::kD);
  if (expression != nullptr && (expression->used() & per_budget) != 0) {
    const DeferredField deferred{&field, &source, expression};
    if (field.phase == Phase::kBatch) {
      combination->batch_tokens = deferred;
    } else {
      combination->deferred.push_back(deferred);
    }
    return true;
  }
  const std::optional<double> value = Evaluate(field, source, expression, variables, context);
  if (!value) return false;
  Store(field, *value, &config);
  return true;
}

void RunResolver::ReportModelError(const Status& status, const FieldMap& fields,
                                   const CombinationLabel& label) {
  // ModelSpec::Validate starts its message with the field at fault ("n_head: 5 does not divide
  // d_model 256"); point at whoever set that field for this combination.
  const std::string& message = status.message();
  const size_t colon = message.find(": ");
  const std::string field = colon == std::string::npos ? "" : message.substr(0, colon);
  const bool is_field = !field.empty() && field.find_first_not_of("abcdefghijklmnopqrstuvwxyz_.") ==
                                              std::string::npos;
  if (is_field) {
    if (const FieldSource* source = fields.Find("model." + field)) {
      diagnostics_->Add(source->node->location, source->path,
                        message.substr(colon + 2) + LayerContext(source->layer, label));
      return;
    }
    // Nobody set the field (its default is what fails): the variant is where it can be set.
    diagnostics_->Add(label.variant_key->location, JoinPath("variants." + label.variant, field),
                      fmt::format("{} (size {})", message.substr(colon + 2), label.size));
    return;
  }
  diagnostics_->Add(label.variant_key->location, "variants." + label.variant,
                    fmt::format("{} (size {})", message, label.size));
}

std::optional<ResolvedCombination> RunResolver::ResolveCombination(FieldMap fields,
                                                                   CombinationLabel label) {
  ResolvedCombination combination;
  combination.fields = std::move(fields);
  combination.label = std::move(label);
  const FieldMap& map = combination.fields;
  const CombinationLabel& names = combination.label;
  RunConfig& config = combination.config;
  VariableValues& variables = combination.variables;
  variables.fill(std::numeric_limits<double>::quiet_NaN());

  if (!ResolveShape(map, names, &config, &variables)) return std::nullopt;
  bool ok = true;
  for (const auto& [path, source] : map.leaves()) {
    if (path.compare(0, 6, "model.") != 0) continue;
    const RunField* field = FindRunField(path);
    if (field == nullptr) {
      diagnostics_->Add(source.node->location, source.path,
                        "the schema allows this field but the planner does not read it");
      ok = false;
      continue;
    }
    if (field->phase == Phase::kShape) continue;
    ok = ApplyField(*field, source, variables, LayerContext(source.layer, names), &combination) &&
         ok;
  }
  if (!ok) return std::nullopt;
  if (Status valid = config.model.Validate(); !valid.ok()) {
    ReportModelError(valid, map, names);
    return std::nullopt;
  }

  combination.params = Accountant::Params(config.model);
  const FlopCount flops = Accountant::Flops(config.model);
  combination.cost = Accountant::Training(config.model);
  config.accounting.params = combination.params.total;
  config.accounting.params_nonemb = combination.params.non_embedding();
  config.accounting.forward_flops = flops.forward;
  config.accounting.train_flops = flops.train();
  variables[static_cast<int>(Variable::kN)] = static_cast<double>(combination.params.total);
  variables[static_cast<int>(Variable::kNNonemb)] =
      static_cast<double>(combination.params.non_embedding());
  variables[static_cast<int>(Variable::kF)] = static_cast<double>(flops.train());

  for (const auto& [path, source] : map.leaves()) {
    if (path.compare(0, 6, "model.") == 0) continue;
    if (path.compare(0, kSlurm.size(), kSlurm) == 0) {
      // Free-form: resources.slurm.partition -> {"partition": ...}; maps merged key by key.
      std::string pointer;
      for (const std::string& key : SplitPath(std::string_view(path).substr(kSlurm.size()))) {
        if (!key.empty()) pointer += "/" + key;
      }
      if (pointer.empty()) continue;
      config.resources.slurm[nlohmann::json::json_pointer(pointer)] = ToJson(*source.node);
      continue;
    }
    const RunField* field = FindRunField(path);
    if (field == nullptr) {
      diagnostics_->Add(source.node->location, source.path,
                        "the schema allows this field but the planner does not read it");
      ok = false;
      continue;
    }
    ok = ApplyField(*field, source, variables, LayerContext(source.layer, names), &combination) &&
         ok;
  }
  if (!ok) return std::nullopt;
  return combination;
}

std::optional<ResolvedRun> RunResolver::ResolveRun(const ResolvedCombination& combination,
                                                   const BudgetPoint& budget,
                                                   const TokensPerParam& bounds,
                                                   const std::string& run) {
  ResolvedRun out;
  out.config = combination.config;
  RunConfig& config = out.config;
  VariableValues variables = combination.variables;
  const std::string context = fmt::format(" (run {})", run);
  const double per_token = combination.cost.flops_per_unique_token;

  // batch_tokens may read C: for a token budget that is what the requested tokens cost.
  variables[static_cast<int>(Variable::kC)] =
      budget.is_flops ? budget.value : per_token * budget.value;
  if (const std::optional<DeferredField>& batch = combination.batch_tokens) {
    const std::optional<double> value =
        Evaluate(*batch->field, *batch->source, batch->expression, variables, context);
    if (!value) return std::nullopt;
    Store(*batch->field, *value, &config);
  }

  const double tokens = budget.is_flops ? budget.value / per_token : budget.value;
  if (!(tokens <= kMaxPlannedTokens)) {
    diagnostics_->Add(budget.node->location, budget.path,
                      fmt::format("{} buys {:.3g} tokens, more than the {:.0e} a run can plan{}",
                                  budget.node->text, tokens, kMaxPlannedTokens, context));
    return std::nullopt;
  }
  BudgetRequest request;
  (budget.is_flops ? request.flops : request.tokens) = budget.value;
  request.batch_tokens = config.train.batch_tokens;
  request.min_tokens_per_param = bounds.min;
  request.max_tokens_per_param = bounds.max;
  Result<BudgetOutcome> outcome =
      BudgetSolver::Solve(combination.params, combination.cost, request);
  if (!outcome.ok()) {
    diagnostics_->Add(budget.node->location, budget.path, outcome.status().message() + context);
    return std::nullopt;
  }
  config.budget = outcome->plan;
  out.rounding = outcome->rounding;
  if (outcome->dropped) {
    out.dropped = outcome->dropped;
    return out;
  }

  variables[static_cast<int>(Variable::kC)] = config.budget.flops;
  variables[static_cast<int>(Variable::kD)] = static_cast<double>(config.budget.tokens);
  for (const DeferredField& deferred : combination.deferred) {
    const std::optional<double> value =
        Evaluate(*deferred.field, *deferred.source, deferred.expression, variables, context);
    if (!value) return std::nullopt;
    Store(*deferred.field, *value, &config);
  }

  // A step is whole sequences on every GPU, and micro-batches split a GPU's share evenly: the
  // worker cannot run anything else, so say so now rather than after the run waited in the queue.
  const int64_t seq_len = config.model.seq_len;
  const int64_t unit = seq_len * config.resources.gpus;
  const FieldSource* batch_source = combination.fields.Find("train.batch_tokens");
  const FieldSource* place = batch_source ? batch_source : combination.fields.Find("model.seq_len");
  if (config.train.batch_tokens % unit != 0) {
    diagnostics_->Add(
        place->node->location, place->path,
        batch_source ? fmt::format("{} is not a multiple of seq_len x gpus = {} x {} (each step is "
                                   "whole sequences on every GPU){}",
                                   config.train.batch_tokens, seq_len, config.resources.gpus,
                                   LayerContext(place->layer, combination.label))
                     : fmt::format("seq_len x gpus = {} x {} does not divide the default "
                                   "train.batch_tokens {} (each step is whole sequences on every "
                                   "GPU){}",
                                   seq_len, config.resources.gpus, config.train.batch_tokens,
                                   LayerContext(place->layer, combination.label)));
    return std::nullopt;
  }
  const int64_t micro_batch = config.train.micro_batch;
  if (micro_batch > 0 && (config.train.batch_tokens / unit) % micro_batch != 0) {
    const FieldSource* micro = combination.fields.Find("train.micro_batch");
    diagnostics_->Add(micro->node->location, micro->path,
                      fmt::format("{} does not divide the {} sequences each GPU runs per step{}",
                                  micro_batch, config.train.batch_tokens / unit,
                                  LayerContext(micro->layer, combination.label)));
    return std::nullopt;
  }
  return out;
}

}  // namespace isoflop::sweep
