#include "common/sweep/run_fields.h"

#include <unordered_map>

namespace isoflop::sweep {

namespace {

RunField Integer(std::string_view path, Phase phase, int64_t& (*get)(RunConfig&)) {
  return RunField{.path = path, .kind = FieldKind::kInteger, .phase = phase, .integer = get};
}

RunField Shape(std::string_view path, Variable variable, int64_t& (*get)(RunConfig&)) {
  return RunField{.path = path,
                  .kind = FieldKind::kInteger,
                  .phase = Phase::kShape,
                  .integer = get,
                  .variable = variable};
}

RunField Number(std::string_view path, Phase phase, double& (*get)(RunConfig&)) {
  return RunField{.path = path, .kind = FieldKind::kNumber, .phase = phase, .number = get};
}

RunField Bool(std::string_view path, bool& (*get)(RunConfig&)) {
  return RunField{.path = path, .kind = FieldKind::kBool, .phase = Phase::kFixed, .boolean = get};
}

RunField Text(std::string_view path, FieldKind kind, std::string& (*get)(RunConfig&)) {
  return RunField{.path = path, .kind = kind, .phase = Phase::kFixed, .text = get};
}

RunField Special(std::string_view path, FieldKind kind) {
  return RunField{.path = path, .kind = kind, .phase = Phase::kFixed};
}

// Enums go through the Parse / ToString pair of their header, the names run.json uses too.
#define ISOFLOP_ENUM_FIELD(field_path, member)                                             \
  RunField {                                                                               \
    .path = field_path, .kind = FieldKind::kEnum, .phase = Phase::kFixed,                  \
    .parse_enum = [](const std::string& s, RunConfig* r) { return Parse(s, &r->member); }, \
    .enum_name = [](const RunConfig& r) { return ToString(r.member); }                     \
  }

std::vector<RunField> MakeRunFields() {
  using R = RunConfig&;
  return {
      ISOFLOP_ENUM_FIELD("model.arch", model.arch),
      Shape("model.n_layer", Variable::kNLayer, [](R r) -> int64_t& { return r.model.n_layer; }),
      Shape("model.d_model", Variable::kDModel, [](R r) -> int64_t& { return r.model.d_model; }),
      Shape("model.n_head", Variable::kNHead, [](R r) -> int64_t& { return r.model.n_head; }),
      Integer("model.n_kv_head", Phase::kModel, [](R r) -> int64_t& { return r.model.n_kv_head; }),
      Integer("model.attn_dim", Phase::kModel, [](R r) -> int64_t& { return r.model.attn_dim; }),
      Shape("model.d_ff", Variable::kDFf, [](R r) -> int64_t& { return r.model.d_ff; }),
      Shape("model.vocab_size", Variable::kVocabSize,
            [](R r) -> int64_t& { return r.model.vocab_size; }),
      Shape("model.seq_len", Variable::kSeqLen, [](R r) -> int64_t& { return r.model.seq_len; }),
      ISOFLOP_ENUM_FIELD("model.positions", model.positions),
      Number("model.rope_base", Phase::kModel, [](R r) -> double& { return r.model.rope_base; }),
      Bool("model.tied_embeddings", [](R r) -> bool& { return r.model.tied_embeddings; }),
      ISOFLOP_ENUM_FIELD("model.activation", model.activation),
      Bool("model.bias", [](R r) -> bool& { return r.model.bias; }),
      ISOFLOP_ENUM_FIELD("model.ffn.type", model.ffn.type),
      Integer("model.ffn.rank", Phase::kModel, [](R r) -> int64_t& { return r.model.ffn.rank; }),
      Integer("model.ffn.blocks", Phase::kModel,
              [](R r) -> int64_t& { return r.model.ffn.blocks; }),
      Bool("model.ffn.first_layer_dense",
           [](R r) -> bool& { return r.model.ffn.first_layer_dense; }),
      ISOFLOP_ENUM_FIELD("model.self_guided.mode", model.self_guided.mode),
      Number("model.self_guided.ratio", Phase::kModel,
             [](R r) -> double& { return r.model.self_guided.ratio; }),
      Bool("model.self_guided.reduce_flop",
           [](R r) -> bool& { return r.model.self_guided.reduce_flop; }),
      ISOFLOP_ENUM_FIELD("model.self_guided.schedule", model.self_guided.schedule),
      Integer("model.paths", Phase::kModel, [](R r) -> int64_t& { return r.model.paths; }),
      Integer("model.blocks_per_stage", Phase::kModel,
              [](R r) -> int64_t& { return r.model.blocks_per_stage; }),
      Integer("model.conv_kernel", Phase::kModel,
              [](R r) -> int64_t& { return r.model.conv_kernel; }),
      Bool("model.skipless.parallel", [](R r) -> bool& { return r.model.skipless.parallel; }),
      ISOFLOP_ENUM_FIELD("model.skipless.removed", model.skipless.removed),
      Number("model.skipless.identity_init", Phase::kModel,
             [](R r) -> double& { return r.model.skipless.identity_init; }),

      Integer("train.batch_tokens", Phase::kBatch,
              [](R r) -> int64_t& { return r.train.batch_tokens; }),
      Integer("train.micro_batch", Phase::kRun,
              [](R r) -> int64_t& { return r.train.micro_batch; }),
      Text("train.optimizer.name", FieldKind::kString,
           [](R r) -> std::string& { return r.train.optimizer.name; }),
      Number("train.optimizer.lr", Phase::kRun,
             [](R r) -> double& { return r.train.optimizer.lr; }),
      Special("train.optimizer.betas", FieldKind::kBetas),
      Number("train.optimizer.eps", Phase::kRun,
             [](R r) -> double& { return r.train.optimizer.eps; }),
      Number("train.optimizer.weight_decay", Phase::kRun,
             [](R r) -> double& { return r.train.optimizer.weight_decay; }),
      Bool("train.optimizer.decay_all", [](R r) -> bool& { return r.train.optimizer.decay_all; }),
      Number("train.schedule.warmup", Phase::kRun,
             [](R r) -> double& { return r.train.schedule.warmup; }),
      ISOFLOP_ENUM_FIELD("train.schedule.decay", train.schedule.decay),
      Number("train.schedule.min_lr", Phase::kRun,
             [](R r) -> double& { return r.train.schedule.min_lr; }),
      Number("train.schedule.decay_fraction", Phase::kRun,
             [](R r) -> double& { return r.train.schedule.decay_fraction; }),
      ISOFLOP_ENUM_FIELD("train.precision", train.precision),
      Number("train.grad_clip", Phase::kRun, [](R r) -> double& { return r.train.grad_clip; }),
      Integer("train.log_every", Phase::kRun, [](R r) -> int64_t& { return r.train.log_every; }),
      Number("train.checkpoint_every_tokens", Phase::kRun,
             [](R r) -> double& { return r.train.checkpoint_every_tokens; }),

      Number("eval.every_tokens", Phase::kRun, [](R r) -> double& { return r.eval.every_tokens; }),
      Integer("eval.val_tokens", Phase::kRun, [](R r) -> int64_t& { return r.eval.val_tokens; }),
      Special("eval.benchmarks", FieldKind::kBenchmarks),

      Integer("resources.gpus", Phase::kRun, [](R r) -> int64_t& { return r.resources.gpus; }),
      ISOFLOP_ENUM_FIELD("resources.launcher", resources.launcher),
      Integer("resources.max_retries", Phase::kRun,
              [](R r) -> int64_t& { return r.resources.max_retries; }),
      Integer("resources.priority", Phase::kRun,
              [](R r) -> int64_t& { return r.resources.priority; }),
      Special("resources.slurm", FieldKind::kFreeForm),

      Text("data.train", FieldKind::kPath, [](R r) -> std::string& { return r.data.train; }),
      Text("data.val", FieldKind::kPath, [](R r) -> std::string& { return r.data.val; }),
      ISOFLOP_ENUM_FIELD("data.order", data.order),
      Text("data.tokenizer", FieldKind::kString,
           [](R r) -> std::string& { return r.data.tokenizer; }),
  };
}

#undef ISOFLOP_ENUM_FIELD

}  // namespace

VariableSet AllowedVariables(Phase phase) {
  const VariableSet shape = Bit(Variable::kDModel) | Bit(Variable::kNLayer) |
                            Bit(Variable::kNHead) | Bit(Variable::kSeqLen) |
                            Bit(Variable::kVocabSize) | Bit(Variable::kDFf);
  const VariableSet accounting = Bit(Variable::kN) | Bit(Variable::kNNonemb) | Bit(Variable::kF);
  switch (phase) {
    case Phase::kShape:
    case Phase::kModel:
      return shape;
    case Phase::kBatch:
      return shape | accounting | Bit(Variable::kC);
    case Phase::kRun:
      return shape | accounting | Bit(Variable::kC) | Bit(Variable::kD);
    case Phase::kFixed:
      break;
  }
  return 0;
}

const std::vector<RunField>& RunFields() {
  static const std::vector<RunField> kFields = MakeRunFields();
  return kFields;
}

const RunField* FindRunField(std::string_view path) {
  static const std::unordered_map<std::string_view, const RunField*> kByPath = [] {
    std::unordered_map<std::string_view, const RunField*> by_path;
    for (const RunField& field : RunFields()) by_path.emplace(field.path, &field);
    return by_path;
  }();
  auto it = kByPath.find(path);
  return it == kByPath.end() ? nullptr : it->second;
}

}  // namespace isoflop::sweep
