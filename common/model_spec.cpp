#include "common/model_spec.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <utility>

#include "common/accountant.h"

namespace isoflop {

// -------------------------------------------------------------------------------------------------
// Enum names. One table per enum serves both directions, so a name cannot be printable but
// unparsable.

namespace {

template <typename E>
struct Name {
  E value;
  const char* name;
};

constexpr Name<Arch> kArchNames[] = {{Arch::kGpt, "gpt"},
                                     {Arch::kPgpt, "pgpt"},
                                     {Arch::kLgpt, "lgpt"},
                                     {Arch::kCgpt, "cgpt"},
                                     {Arch::kSkipless, "skipless"}};
constexpr Name<Positions> kPositionsNames[] = {{Positions::kLearned, "learned"},
                                               {Positions::kRotary, "rotary"}};
constexpr Name<Activation> kActivationNames[] = {{Activation::kGelu, "gelu"},
                                                 {Activation::kGeluTanh, "gelu_tanh"},
                                                 {Activation::kSwiglu, "swiglu"}};
constexpr Name<FfnType> kFfnTypeNames[] = {{FfnType::kDense, "dense"},
                                           {FfnType::kLowRank, "lowrank"},
                                           {FfnType::kBlockShuffle, "blockshuffle"},
                                           {FfnType::kBlockDense, "blockdense"}};
constexpr Name<SelfGuidedMode> kSelfGuidedModeNames[] = {{SelfGuidedMode::kOff, "off"},
                                                         {SelfGuidedMode::kFixedStep, "fixedstep"},
                                                         {SelfGuidedMode::kFixedFlop, "fixedflop"}};
constexpr Name<AlphaSchedule> kAlphaScheduleNames[] = {{AlphaSchedule::kCosine, "cosine"},
                                                       {AlphaSchedule::kLinear, "linear"}};
constexpr Name<SkiplessRemoval> kSkiplessRemovalNames[] = {{SkiplessRemoval::kNone, "none"},
                                                           {SkiplessRemoval::kQ, "q"},
                                                           {SkiplessRemoval::kQP, "qp"},
                                                           {SkiplessRemoval::kKP, "kp"},
                                                           {SkiplessRemoval::kVP, "vp"}};

template <typename E, std::size_t N>
const char* NameOf(const Name<E> (&table)[N], E value) {
  for (const Name<E>& entry : table) {
    if (entry.value == value) return entry.name;
  }
  return "?";  // only reachable through a value cast from an out-of-range integer
}

template <typename E, std::size_t N>
bool ValueOf(const Name<E> (&table)[N], const std::string& s, E* out) {
  for (const Name<E>& entry : table) {
    if (s == entry.name) {
      *out = entry.value;
      return true;
    }
  }
  return false;
}

}  // namespace

const char* ToString(Arch v) {
  return NameOf(kArchNames, v);
}
const char* ToString(Positions v) {
  return NameOf(kPositionsNames, v);
}
const char* ToString(Activation v) {
  return NameOf(kActivationNames, v);
}
const char* ToString(FfnType v) {
  return NameOf(kFfnTypeNames, v);
}
const char* ToString(SelfGuidedMode v) {
  return NameOf(kSelfGuidedModeNames, v);
}
const char* ToString(AlphaSchedule v) {
  return NameOf(kAlphaScheduleNames, v);
}
const char* ToString(SkiplessRemoval v) {
  return NameOf(kSkiplessRemovalNames, v);
}
bool Parse(const std::string& s, Arch* out) {
  return ValueOf(kArchNames, s, out);
}
bool Parse(const std::string& s, Positions* out) {
  return ValueOf(kPositionsNames, s, out);
}
bool Parse(const std::string& s, Activation* out) {
  return ValueOf(kActivationNames, s, out);
}
bool Parse(const std::string& s, FfnType* out) {
  return ValueOf(kFfnTypeNames, s, out);
}
bool Parse(const std::string& s, SelfGuidedMode* out) {
  return ValueOf(kSelfGuidedModeNames, s, out);
}
bool Parse(const std::string& s, AlphaSchedule* out) {
  return ValueOf(kAlphaScheduleNames, s, out);
}
bool Parse(const std::string& s, SkiplessRemoval* out) {
  return ValueOf(kSkiplessRemovalNames, s, out);
}

// -------------------------------------------------------------------------------------------------
// Block shapes.

namespace {

bool Narrows(Arch arch) {
  return arch == Arch::kLgpt || arch == Arch::kCgpt;
}

// lgpt/cgpt halve the width after every stage, the last one included (papers.md 1.3).
int64_t StageCount(const ModelSpec& spec) {
  return Narrows(spec.arch) ? spec.n_layer / spec.blocks_per_stage : 0;
}

}  // namespace

ModelSpec::BlockShape ModelSpec::block(int64_t i) const {
  BlockShape b;
  const int64_t halvings = Narrows(arch) ? i / blocks_per_stage : 0;
  b.width = d_model >> halvings;
  // lgpt keeps n_head and lets head_dim shrink with the width (64 -> 32 -> 16 -> 8 for d 512, H 8).
  b.attn_width = Narrows(arch) ? b.width : attn_width();
  b.kv_width = kv_heads() * (b.attn_width / n_head);
  b.ffn_hidden = ffn_hidden() >> halvings;  // f_s = f * d_s / d: 4 d_s by default
  b.structured_ffn = ffn.type != FfnType::kDense && !(i == 0 && ffn.first_layer_dense);
  return b;
}

int64_t ModelSpec::final_width() const {
  return d_model >> StageCount(*this);
}

// -------------------------------------------------------------------------------------------------
// Validation. Each message starts with the field as the sweep file spells it, then says what is
// wrong with it and, where it is not obvious, which rule of the paper it breaks.

namespace {

template <typename... Args>
Status FieldError(const char* field, fmt::format_string<Args...> format, Args&&... args) {
  return Status::InvalidArgument(
      fmt::format("{}: {}", field, fmt::format(format, std::forward<Args>(args)...)));
}

Status RequirePositive(const char* field, int64_t value) {
  if (value > 0) return Status::OK();
  return FieldError(field, "must be positive, got {}", value);
}

Status RequireDefaultOrPositive(const char* field, int64_t value) {
  if (value >= 0) return Status::OK();
  return FieldError(field, "must be 0 (the default) or positive, got {}", value);
}

Status ValidateSizes(const ModelSpec& s) {
  ISOFLOP_RETURN_IF_ERROR(RequirePositive("n_layer", s.n_layer));
  ISOFLOP_RETURN_IF_ERROR(RequirePositive("d_model", s.d_model));
  ISOFLOP_RETURN_IF_ERROR(RequirePositive("n_head", s.n_head));
  ISOFLOP_RETURN_IF_ERROR(RequirePositive("vocab_size", s.vocab_size));
  ISOFLOP_RETURN_IF_ERROR(RequirePositive("seq_len", s.seq_len));
  ISOFLOP_RETURN_IF_ERROR(RequireDefaultOrPositive("n_kv_head", s.n_kv_head));
  ISOFLOP_RETURN_IF_ERROR(RequireDefaultOrPositive("attn_dim", s.attn_dim));
  ISOFLOP_RETURN_IF_ERROR(RequireDefaultOrPositive("d_ff", s.d_ff));
  if (s.positions == Positions::kRotary && !(s.rope_base > 0)) {
    return FieldError("rope_base", "must be positive, got {}", s.rope_base);
  }
  return Status::OK();
}

// Variants whose blocks fix the query width themselves: lgpt uses each block's width, and skipless
// removal replaces Q by the block input, which needs a d x d Q (papers.md 2.2).
Status RequireDefaultAttnDim(const ModelSpec& s) {
  if (s.attn_dim == 0 || s.attn_dim == s.d_model) return Status::OK();
  return FieldError("attn_dim", "{} must equal d_model {} (or be left unset) for arch {}",
                    s.attn_dim, s.d_model, ToString(s.arch));
}

Status ValidateParallelPaths(const ModelSpec& s) {
  if (s.paths < 2) return FieldError("paths", "pgpt needs at least 2 paths, got {}", s.paths);
  if (s.n_layer % s.paths != 0) {
    return FieldError("n_layer",
                      "{} is not divisible by paths {} "
                      "(each path is a stack of n_layer / paths blocks)",
                      s.n_layer, s.paths);
  }
  return Status::OK();
}

// lgpt/cgpt (papers.md 1.3): n_layer / blocks_per_stage stages, each ending in a halving map.
Status ValidateStages(const ModelSpec& s) {
  ISOFLOP_RETURN_IF_ERROR(RequirePositive("blocks_per_stage", s.blocks_per_stage));
  if (s.n_layer % s.blocks_per_stage != 0) {
    return FieldError("n_layer", "{} is not divisible by blocks_per_stage {}", s.n_layer,
                      s.blocks_per_stage);
  }
  const int64_t stages = s.n_layer / s.blocks_per_stage;
  if (stages >= 62 || s.d_model % (int64_t{1} << stages) != 0) {
    return FieldError("d_model",
                      "{} cannot be halved {} times "
                      "(once after each of the n_layer / blocks_per_stage stages)",
                      s.d_model, stages);
  }
  const int64_t last_stage_divisor = int64_t{1} << (stages - 1);
  if (s.ffn_hidden() % last_stage_divisor != 0) {
    return FieldError("d_ff",
                      "{} is not divisible by {}, "
                      "so it cannot halve with the width at every stage",
                      s.ffn_hidden(), last_stage_divisor);
  }
  ISOFLOP_RETURN_IF_ERROR(RequireDefaultAttnDim(s));
  if (s.tied_embeddings) {
    return FieldError("tied_embeddings",
                      "{}'s lm_head works at the final width {}, not d_model {}, "
                      "so it cannot share wte",
                      ToString(s.arch), s.final_width(), s.d_model);
  }
  if (s.arch == Arch::kCgpt) ISOFLOP_RETURN_IF_ERROR(RequirePositive("conv_kernel", s.conv_kernel));
  return Status::OK();
}

// Which projections a skipless block may drop (papers.md 2.2, 2.4). Serial: Q with P (P folds into
// M, Q into the previous O), or K / V with P when e == d. Parallel: Q alone is the exact conversion
// (P stays as P Q_next); Q with P is Fig. 3a, an architecture trained from scratch.
Status ValidateSkipless(const ModelSpec& s) {
  ISOFLOP_RETURN_IF_ERROR(RequireDefaultAttnDim(s));
  const SkiplessRemoval r = s.skipless.removed;
  if (!std::isfinite(s.skipless.identity_init) || s.skipless.identity_init < 0) {
    return FieldError("skipless.identity_init", "must be finite and non-negative, got {}",
                      s.skipless.identity_init);
  }
  if (s.skipless.parallel && (r == SkiplessRemoval::kKP || r == SkiplessRemoval::kVP)) {
    return FieldError("skipless.removed",
                      "{} applies to serial blocks; parallel blocks remove q or qp", ToString(r));
  }
  if (!s.skipless.parallel && r == SkiplessRemoval::kQ) {
    return FieldError("skipless.removed",
                      "q applies to parallel blocks; serial blocks remove qp, kp or vp");
  }
  if ((r == SkiplessRemoval::kKP || r == SkiplessRemoval::kVP) && s.kv_heads() != s.n_head) {
    return FieldError("skipless.removed",
                      "{} needs multi-head attention "
                      "(e == d, so the removed projection is square and invertible), "
                      "but n_kv_head {} < n_head {}",
                      ToString(r), s.kv_heads(), s.n_head);
  }
  if (r != SkiplessRemoval::kNone && s.tied_embeddings) {
    return FieldError("tied_embeddings",
                      "removing {} folds a projection into the embedding (E* = E Q), "
                      "so it can no longer be tied to lm_head",
                      ToString(r));
  }
  return Status::OK();
}

Status ValidateArch(const ModelSpec& s) {
  switch (s.arch) {
    case Arch::kGpt:
      return Status::OK();
    case Arch::kPgpt:
      return ValidateParallelPaths(s);
    case Arch::kLgpt:
    case Arch::kCgpt:
      return ValidateStages(s);
    case Arch::kSkipless:
      return ValidateSkipless(s);
  }
  return FieldError("arch", "unknown value {}", static_cast<int>(s.arch));
}

// Every block's heads: lgpt's narrow stages are where a head count stops dividing the width.
Status ValidateAttention(const ModelSpec& s) {
  if (s.n_kv_head > s.n_head) {
    return FieldError("n_kv_head", "{} exceeds n_head {}", s.n_kv_head, s.n_head);
  }
  if (s.n_head % s.kv_heads() != 0) {
    return FieldError("n_kv_head",
                      "{} does not divide n_head {} "
                      "(each key/value head serves a whole group of query heads)",
                      s.kv_heads(), s.n_head);
  }
  for (int64_t i = 0; i < s.n_layer; ++i) {
    const ModelSpec::BlockShape b = s.block(i);
    if (b.attn_width % s.n_head != 0) {
      if (Narrows(s.arch)) {
        return FieldError("n_head",
                          "{} does not divide the width {} of block {} "
                          "({} halves the width after every blocks_per_stage blocks)",
                          s.n_head, b.attn_width, i, ToString(s.arch));
      }
      return FieldError("n_head", "{} does not divide {} {}", s.n_head,
                        s.attn_dim > 0 ? "attn_dim" : "d_model", b.attn_width);
    }
    if (s.positions == Positions::kRotary && (b.attn_width / s.n_head) % 2 != 0) {
      return FieldError("positions",
                        "rotary embeddings rotate pairs of channels, "
                        "but block {} has an odd head_dim {}",
                        i, b.attn_width / s.n_head);
    }
  }
  return Status::OK();
}

// One structured FFN linear, in -> out (papers.md 3.1): its factors must tile the layer exactly.
Status ValidateStructuredLinear(const FfnSpec& ffn, int64_t in, int64_t out) {
  const int64_t narrow = std::min(in, out);
  const bool ranked = ffn.type == FfnType::kLowRank || ffn.type == FfnType::kBlockDense;
  const bool blocked = ffn.type == FfnType::kBlockShuffle || ffn.type == FfnType::kBlockDense;
  if (ranked) {
    ISOFLOP_RETURN_IF_ERROR(RequirePositive("ffn.rank", ffn.rank));
    if (ffn.rank > narrow) {
      return FieldError("ffn.rank", "{} exceeds the layer width {} (of the {} -> {} linear)",
                        ffn.rank, narrow, in, out);
    }
  }
  if (blocked) ISOFLOP_RETURN_IF_ERROR(RequirePositive("ffn.blocks", ffn.blocks));
  if (ffn.type == FfnType::kBlockShuffle && (in % ffn.blocks != 0 || out % ffn.blocks != 0)) {
    return FieldError("ffn.blocks", "{} does not divide the layer widths {} and {}", ffn.blocks, in,
                      out);
  }
  if (ffn.type == FfnType::kBlockDense) {
    if (in % ffn.blocks != 0) {
      return FieldError("ffn.blocks", "{} does not divide the layer input width {}", ffn.blocks,
                        in);
    }
    if (ffn.rank % ffn.blocks != 0) {
      return FieldError("ffn.rank",
                        "{} is not divisible by ffn.blocks {} (each block maps in/B -> R/B)",
                        ffn.rank, ffn.blocks);
    }
  }
  return Status::OK();
}

Status ValidateFfn(const ModelSpec& s) {
  const int64_t gate_factor = s.activation == Activation::kSwiglu ? 2 : 1;
  for (int64_t i = 0; i < s.n_layer; ++i) {
    const ModelSpec::BlockShape b = s.block(i);
    if (!b.structured_ffn) continue;
    ISOFLOP_RETURN_IF_ERROR(ValidateStructuredLinear(s.ffn, b.width, gate_factor * b.ffn_hidden));
    ISOFLOP_RETURN_IF_ERROR(ValidateStructuredLinear(s.ffn, b.ffn_hidden, b.width));
  }
  return Status::OK();
}

bool HasStructuredFfn(const ModelSpec& s) {
  for (int64_t i = 0; i < s.n_layer; ++i) {
    if (s.block(i).structured_ffn) return true;
  }
  return false;
}

Status ValidateSelfGuided(const ModelSpec& s) {
  const SelfGuidedSpec& sg = s.self_guided;
  if (sg.mode == SelfGuidedMode::kOff) return Status::OK();
  if (!HasStructuredFfn(s)) {
    return FieldError("self_guided.mode",
                      "{} guides structured FFN layers, "
                      "but this model has none (ffn.type {}, n_layer {})",
                      ToString(sg.mode), ToString(s.ffn.type), s.n_layer);
  }
  // G = ratio * M guided steps cannot outnumber the run's M steps, and fixedflop repeats the data
  // of the first G steps, which must exist.
  if (!(sg.ratio >= 0 && sg.ratio <= 1)) {
    return FieldError("self_guided.ratio", "{} must lie in [0, 1] (0: the mode's default)",
                      sg.ratio);
  }
  if (sg.mode == SelfGuidedMode::kFixedFlop && sg.ratio == 0) {
    const double solved = Accountant::Training(s).ratio;
    if (!(solved > 0 && solved <= 1)) {
      return FieldError("self_guided.ratio",
                        "matching the dense model's FLOPs needs rho = {:.3f}, "
                        "outside (0, 1]; give the ratio explicitly",
                        solved);
    }
  }
  return Status::OK();
}

}  // namespace

Status ModelSpec::Validate() const {
  ISOFLOP_RETURN_IF_ERROR(ValidateSizes(*this));
  ISOFLOP_RETURN_IF_ERROR(ValidateArch(*this));
  ISOFLOP_RETURN_IF_ERROR(ValidateAttention(*this));
  ISOFLOP_RETURN_IF_ERROR(ValidateFfn(*this));
  return ValidateSelfGuided(*this);
}

}  // namespace isoflop
