// The accountant walks the model in the order the worker builds it and adds up, per component,
// the tensor elements it allocates and the multiply-accumulates (MACs) one token costs. Forward
// FLOPs are then 2 * MACs + the attention-score FLOPs (system.md section 6). Conventions, each
// pinned by a published figure in tests/accountant_test.cpp:
//   - lm_head has no bias and its matmul is always paid; tied, it shares wte's elements. So the
//     structured-FFN paper's "model size" (tied, RoPE) is blocks + ln_f + V*d, and its FLOPs
//     include the V*d head.
//   - Biases and norm weights are parameters but cost no FLOPs (the paper's get_flops omits them).
//   - A structured FFN linear costs its factor MACs; its dense guide costs in*out more when used.
//   - ParamCount::ffn counts FFN weight matrices only, as the paper's "FFN size" does.
#include "common/accountant.h"

#include <algorithm>

namespace isoflop {

namespace {

// Running totals of one walk through the model.
struct Tally {
  int64_t params = 0;            // every element the worker allocates, guides excluded
  int64_t embedding = 0;         // the part of `params` in wte, wpe and an untied lm_head
  int64_t ffn = 0;               // the part of `params` in FFN weight matrices (biases excluded)
  int64_t guide = 0;             // dense guide elements, allocated only for self-guided training
  int64_t macs = 0;              // multiply-accumulates per token of every matrix product
  int64_t attention_scores = 0;  // FLOPs per token of QK^T and AV
  int64_t guide_macs = 0;        // MACs per token the guides would add if every one were used
};

// y = x W + b with W (in x out): in*out weights and in*out MACs per token. The bias is free.
void AddLinear(Tally& t, int64_t in, int64_t out, bool bias) {
  t.params += in * out + (bias ? out : 0);
  t.macs += in * out;
}

// LayerNorm(width): a weight, plus a bias when spec.bias (nanoGPT's LayerNorm(ndim, bias)).
void AddLayerNorm(Tally& t, const ModelSpec& spec, int64_t width) {
  t.params += spec.bias ? 2 * width : width;
}

// softmax(Q K^T) V at full context: Q K^T is T*a MACs per token and the weighted sum of values
// another T*a, so 2 * 2 * T * a FLOPs (PaLM appendix B; the structured-FFN paper's get_flops has
// 2 B T^2 a per layer). No causal halving, so budgets compare with the figures published this way.
void AddAttentionScores(Tally& t, const ModelSpec& spec, int64_t attn_width) {
  t.attention_scores += 4 * spec.seq_len * attn_width;
}

// Weights of one structured FFN linear, in = N, out = M (papers.md 3.1; params = MACs):
//   LowRank(R)       U (M x R) V (R x N)                        (N + M) R
//   BlockShuffle(B)  two block-diagonal stages, B blocks each   min(N, M) (N + M) / B
//   BlockDense(R,B)  B blocks N/B -> R/B, then dense M x R      R (M + N / B)
int64_t StructuredWeights(const FfnSpec& ffn, int64_t in, int64_t out) {
  switch (ffn.type) {
    case FfnType::kDense:
      return in * out;
    case FfnType::kLowRank:
      return (in + out) * ffn.rank;
    case FfnType::kBlockShuffle:
      return std::min(in, out) * (in + out) / ffn.blocks;
    case FfnType::kBlockDense:
      return ffn.rank * (out + in / ffn.blocks);
  }
  return in * out;
}

// One FFN linear in -> out, bias `out` when spec.bias. A structured one also has a dense guide W
// (out x in, no bias) in self-guided training (papers.md 3.4); guide_macs counts it whether or not
// it is trained, because fixedflop's solve needs its cost either way.
void AddFfnLinear(Tally& t, const ModelSpec& spec, int64_t in, int64_t out, bool structured) {
  const int64_t weights = structured ? StructuredWeights(spec.ffn, in, out) : in * out;
  t.params += weights + (spec.bias ? out : 0);
  t.ffn += weights;
  t.macs += weights;
  if (!structured) return;
  t.guide_macs += in * out;
  if (spec.self_guided.mode != SelfGuidedMode::kOff) t.guide += in * out;
}

// FFN: fc1 d -> f' (SwiGLU stacks gate and up: f' = 2f), activation, fc2 f -> d.
void AddFfn(Tally& t, const ModelSpec& spec, const ModelSpec::BlockShape& b) {
  const int64_t fc1_out = spec.activation == Activation::kSwiglu ? 2 * b.ffn_hidden : b.ffn_hidden;
  AddFfnLinear(t, spec, b.width, fc1_out, b.structured_ffn);       // (B, T, d) -> (B, T, f')
  AddFfnLinear(t, spec, b.ffn_hidden, b.width, b.structured_ffn);  // (B, T, f) -> (B, T, d)
}

// Causal self-attention: q d -> a, k and v d -> e (e < a for GQA/MQA), o a -> d; then the scores.
void AddAttention(Tally& t, const ModelSpec& spec, const ModelSpec::BlockShape& b) {
  AddLinear(t, b.width, b.attn_width, spec.bias);  // q: (B, T, d) -> (B, T, a)
  AddLinear(t, b.width, b.kv_width, spec.bias);    // k: (B, T, d) -> (B, T, e)
  AddLinear(t, b.width, b.kv_width, spec.bias);    // v: (B, T, d) -> (B, T, e)
  AddLinear(t, b.attn_width, b.width, spec.bias);  // o: (B, T, a) -> (B, T, d)
  AddAttentionScores(t, spec, b.attn_width);
}

// Pre-LN block (papers.md 1.2): x = x + attn(ln_1(x)); x = x + ffn(ln_2(x)).
void AddPreLnBlock(Tally& t, const ModelSpec& spec, const ModelSpec::BlockShape& b) {
  AddLayerNorm(t, spec, b.width);
  AddAttention(t, spec, b);
  AddLayerNorm(t, spec, b.width);
  AddFfn(t, spec, b);
}

// Skipless block (papers.md 2.1), no norms and no residuals.
//   serial:   x -> Q, K, V -> MHA -> P -> M -> act -> O
//   parallel: attention (Q, K, V, P) and FFN (M, act, O) read the same x; their outputs are summed
// A removed projection takes its bias with it (b_Q folds into the previous b_O, b_P into b_M).
// Every removal drops 2d^2 per block, except parallel `q`, the exact conversion, which keeps P (as
// P Q_next) and drops d^2.
void AddSkiplessBlock(Tally& t, const ModelSpec& spec, const ModelSpec::BlockShape& b) {
  const SkiplessRemoval removed = spec.skipless.removed;
  const bool keeps_q = removed == SkiplessRemoval::kNone || removed == SkiplessRemoval::kKP ||
                       removed == SkiplessRemoval::kVP;
  const bool keeps_p = removed == SkiplessRemoval::kNone || removed == SkiplessRemoval::kQ;
  const bool keeps_k = removed != SkiplessRemoval::kKP;
  const bool keeps_v = removed != SkiplessRemoval::kVP;
  const int64_t d = b.width;  // Validate() makes the query width d

  if (keeps_q) AddLinear(t, d, d, spec.bias);           // Q: d x d
  if (keeps_k) AddLinear(t, d, b.kv_width, spec.bias);  // K: d x e
  if (keeps_v) AddLinear(t, d, b.kv_width, spec.bias);  // V: d x e
  AddAttentionScores(t, spec, d);
  if (keeps_p) AddLinear(t, d, d, spec.bias);  // P: d x d
  AddFfn(t, spec, b);                          // M: d x f', O: f x d
}

// wte (V x d) and, with learned positions, wpe (T x d). The lookups are free.
void AddEmbeddings(Tally& t, const ModelSpec& spec) {
  const int64_t elements =
      spec.vocab_size * spec.d_model +
      (spec.positions == Positions::kLearned ? spec.seq_len * spec.d_model : 0);
  t.params += elements;
  t.embedding += elements;
}

// ln_f, then lm_head (final width -> V, no bias as in nanoGPT). Its matmul is paid even when tied;
// its elements are new only when untied.
void AddHead(Tally& t, const ModelSpec& spec) {
  const int64_t width = spec.final_width();
  AddLayerNorm(t, spec, width);
  t.macs += width * spec.vocab_size;
  if (spec.tied_embeddings) return;
  t.params += width * spec.vocab_size;
  t.embedding += width * spec.vocab_size;
}

// pgpt (papers.md 1.3): each path p gets x_p = Adapter_p(x0), Linear(d, d) with bias, and runs its
// own stack of n_layer / paths blocks; y = s x_1 + (1 - s) x_2 with s = sigmoid(w), one scalar w
// for two paths, one weight per path when there are more. The mix is elementwise: no FLOPs.
void AddParallelPaths(Tally& t, const ModelSpec& spec) {
  const int64_t blocks_per_path = spec.n_layer / spec.paths;
  for (int64_t p = 0; p < spec.paths; ++p) {
    AddLinear(t, spec.d_model, spec.d_model, /*bias=*/true);
    for (int64_t j = 0; j < blocks_per_path; ++j) {
      AddPreLnBlock(t, spec, spec.block(p * blocks_per_path + j));
    }
  }
  t.params += spec.paths == 2 ? 1 : spec.paths;
}

// lgpt/cgpt halving map after a stage, d_s -> d_s / 2 with bias. lgpt: Linear(d_s, d_s / 2).
// cgpt: causal Conv1d(d_s, d_s / 2, k), per output position a Linear(k d_s, d_s / 2), so
// k d_s (d_s / 2) + d_s / 2 parameters and k d_s (d_s / 2) MACs per token.
void AddHalvingMap(Tally& t, const ModelSpec& spec, int64_t width) {
  const int64_t kernel = spec.arch == Arch::kCgpt ? spec.conv_kernel : 1;
  AddLinear(t, kernel * width, width / 2, /*bias=*/true);
}

Tally Walk(const ModelSpec& spec) {
  Tally t;
  AddEmbeddings(t, spec);
  switch (spec.arch) {
    case Arch::kGpt:
      for (int64_t i = 0; i < spec.n_layer; ++i) AddPreLnBlock(t, spec, spec.block(i));
      break;
    case Arch::kPgpt:
      AddParallelPaths(t, spec);
      break;
    case Arch::kLgpt:
    case Arch::kCgpt:
      for (int64_t i = 0; i < spec.n_layer; ++i) {
        const ModelSpec::BlockShape b = spec.block(i);
        AddPreLnBlock(t, spec, b);
        if ((i + 1) % spec.blocks_per_stage == 0) AddHalvingMap(t, spec, b.width);
      }
      break;
    case Arch::kSkipless:
      // The stack has no norms, but AddHead keeps ln_f: the removal transforms never touch the
      // unembedding (papers.md 2.2), so it leaves the equivalence intact while it bounds the
      // logits of a norm-free stack trained from scratch.
      for (int64_t i = 0; i < spec.n_layer; ++i) AddSkiplessBlock(t, spec, spec.block(i));
      break;
  }
  AddHead(t, spec);
  return t;
}

}  // namespace

ParamCount Accountant::Params(const ModelSpec& spec) {
  const Tally t = Walk(spec);
  ParamCount p;
  p.total = t.params;
  p.embedding = t.embedding;
  p.ffn = t.ffn;
  p.guide = t.guide;
  return p;
}

FlopCount Accountant::Flops(const ModelSpec& spec) {
  const Tally t = Walk(spec);
  FlopCount f;
  f.forward = 2 * t.macs + t.attention_scores;
  f.attention_scores = t.attention_scores;
  f.guide_forward = 2 * t.guide_macs;
  return f;
}

ModelSpec Accountant::DenseCounterpart(const ModelSpec& spec) {
  ModelSpec dense = spec;
  dense.ffn = FfnSpec{};
  dense.self_guided = SelfGuidedSpec{};
  return dense;
}

// Self-guided training (papers.md 3.4). A guided step always computes the structured path and,
// with reduce_flop, the guide with probability alpha: an expected extra mean(alpha) * F_guide,
// where the cosine and linear decays from 1 to 0 both average 0.5. Without reduce_flop every
// guided step pays the whole guide.
TrainingCost Accountant::Training(const ModelSpec& spec) {
  const FlopCount flops = Flops(spec);
  const SelfGuidedSpec& sg = spec.self_guided;
  TrainingCost cost;
  const double forward = static_cast<double>(flops.forward);
  if (sg.mode == SelfGuidedMode::kOff) {
    cost.flops_per_unique_token = 3 * forward;
    return cost;
  }
  cost.mean_alpha = sg.reduce_flop ? 0.5 : 1.0;
  const double guide = cost.mean_alpha * static_cast<double>(flops.guide_forward);
  if (sg.mode == SelfGuidedMode::kFixedStep) {
    // G = ratio * M guided steps within the run's M steps: no extra data, the guide paid on G.
    cost.ratio = sg.ratio > 0 ? sg.ratio : 0.5;
    cost.guided_fraction = cost.ratio;
    cost.flops_per_unique_token = 3 * forward + cost.ratio * 3 * guide;
    return cost;
  }
  // fixedflop: M + G steps, the last G repeating the first G steps' data; the total matches the
  // dense model's 3 F_dense M when 3 F_struct (M + G) + 3 mean_alpha F_guide G = 3 F_dense M, i.e.
  //   rho = G / M = (F_dense - F_struct) / (F_struct + mean_alpha F_guide).
  if (sg.ratio > 0) {
    cost.ratio = sg.ratio;
  } else {
    const double dense = static_cast<double>(Flops(DenseCounterpart(spec)).forward);
    cost.ratio = (dense - forward) / (forward + guide);
  }
  cost.processed_per_unique = 1 + cost.ratio;
  cost.guided_fraction = cost.ratio / (1 + cost.ratio);
  cost.flops_per_unique_token = 3 * forward * (1 + cost.ratio) + 3 * guide * cost.ratio;
  return cost;
}

}  // namespace isoflop
