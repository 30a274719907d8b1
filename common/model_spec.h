// ModelSpec: the architecture of one run, as the sweep file resolves it and the worker builds it.
//
// One struct serves every variant of the three seed papers (../shared/spec/papers.md). Fields a variant
// does not use keep their defaults and are ignored by it. The accountant (accountant.h) and the worker's
// model registry both read exactly this struct, so a parameter counted here is a tensor element there.
// Validate() states every structural rule; the sweep parser calls it and reports its message against the
// file position of the variant.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace isoflop {

enum class Arch {
  kGpt,       // pre-LN transformer (nanoGPT shape), papers.md 1.2
  kPgpt,      // ParallelGPT: `paths` parallel stacks with input adapters and sigmoid mixing, papers.md 1.3
  kLgpt,      // LinearGPT: width halves after every `blocks_per_stage` blocks via Linear(d, d/2)
  kCgpt,      // ConvGPT: as lgpt, the halving map is a causal Conv1d(d, d/2, conv_kernel)
  kSkipless,  // no residuals and no norms inside blocks (He et al. 2023), papers.md section 2
};

enum class Positions { kLearned, kRotary };

// kGelu is the exact (erf) GELU of nanoGPT; kGeluTanh the tanh approximation of the structured-FFN code;
// kSwiglu doubles the first FFN layer's output (gate and up stacked, f' = 2f, papers.md 2.1).
enum class Activation { kGelu, kGeluTanh, kSwiglu };

enum class FfnType { kDense, kLowRank, kBlockShuffle, kBlockDense };

// Structured feed-forward layers, papers.md 3.1-3.2. Both FFN linears (d->f' and f->d) use the same
// rank/blocks. Parameters = MACs per token: dense N*M; lowrank (N+M)*R; blockshuffle min(N,M)*(N+M)/B;
// blockdense R*(M + N/B).
struct FfnSpec {
  FfnType type = FfnType::kDense;
  int64_t rank = 0;    // lowrank, blockdense: R
  int64_t blocks = 0;  // blockshuffle, blockdense: B
  bool first_layer_dense = true;  // the paper keeps block 0's FFN dense (Table 1 caption)
};

// Self-guided training (papers.md 3.4): each structured linear carries a dense guide W (out x in) that is
// blended in with weight alpha, decaying 1 -> 0 over the guided steps G.
enum class SelfGuidedMode { kOff, kFixedStep, kFixedFlop };
enum class AlphaSchedule { kCosine, kLinear };
struct SelfGuidedSpec {
  SelfGuidedMode mode = SelfGuidedMode::kOff;
  // G / M. fixedstep: 0.5 unless given. fixedflop: 0 means "solve for equal FLOPs with the dense model"
  // (rho = (F_dense - F_struct) / (F_struct + mean_alpha * F_guide)), else the given value.
  double ratio = 0.0;
  bool reduce_flop = true;  // draw u~U(0,1) per call and skip the guide when u >= alpha
  AlphaSchedule schedule = AlphaSchedule::kCosine;
};

// Weight removal for skipless blocks (papers.md 2.2 and 2.4). "merged" architectures are the smaller model
// the transform produces; they can also be trained from scratch.
//   serial:   kNone, kQP (Q folded into the previous O, P into M), kKP / kVP (MHA only: e == d).
//   parallel: kNone, kQ (exact conversion: Q folded, P kept as P*Q_next), kQP (papers.md Fig 3a, from scratch).
enum class SkiplessRemoval { kNone, kQ, kQP, kKP, kVP };
struct SkiplessSpec {
  bool parallel = false;  // attention and FFN read the same input and their outputs are summed
  SkiplessRemoval removed = SkiplessRemoval::kNone;
  // Value/identity-biased init (He et al. 2023): attention starts close to the identity so signal propagates.
  double identity_init = 1.0;
};

struct ModelSpec {
  Arch arch = Arch::kGpt;
  int64_t n_layer = 0;
  int64_t d_model = 0;
  int64_t n_head = 0;
  int64_t n_kv_head = 0;   // 0: = n_head (MHA); 1: MQA; otherwise GQA
  int64_t attn_dim = 0;    // 0: = d_model. Query width (n_head * head_dim); may differ from d_model
  int64_t d_ff = 0;        // 0: 4 * d_model (f; with SwiGLU the first layer outputs 2f)
  int64_t vocab_size = 50304;
  int64_t seq_len = 0;     // T: context length; attention FLOPs count the full T (no causal halving)
  Positions positions = Positions::kLearned;
  double rope_base = 10000.0;
  bool tied_embeddings = false;
  Activation activation = Activation::kGelu;
  bool bias = false;       // biases on linears and on LayerNorm (nanoGPT's `bias`)
  FfnSpec ffn;
  SelfGuidedSpec self_guided;
  // pgpt
  int64_t paths = 2;
  // lgpt / cgpt
  int64_t blocks_per_stage = 2;
  int64_t conv_kernel = 1;  // cgpt only; > 1 pads causally on the left
  // skipless
  SkiplessSpec skipless;

  // Resolved widths (defaults applied).
  int64_t kv_heads() const { return n_kv_head > 0 ? n_kv_head : n_head; }
  int64_t attn_width() const { return attn_dim > 0 ? attn_dim : d_model; }
  int64_t head_dim() const { return attn_width() / n_head; }
  int64_t kv_width() const { return kv_heads() * head_dim(); }  // e in papers.md 2.1
  int64_t ffn_hidden() const { return d_ff > 0 ? d_ff : 4 * d_model; }

  // The shape of block i (0-based, in the order the input reaches them; pgpt numbers path 0's blocks
  // first). The accountant and the worker both build from this, so lgpt's per-stage widths and the dense
  // first block cannot drift apart. Requires Validate() to pass and 0 <= i < n_layer.
  struct BlockShape {
    int64_t width = 0;        // d_s: the block's input and output width
    int64_t attn_width = 0;   // query width n_head * head_dim
    int64_t kv_width = 0;     // e: key and value width
    int64_t ffn_hidden = 0;   // f (the first FFN linear outputs 2f with SwiGLU)
    bool structured_ffn = false;  // ffn.type != dense, and not block 0 when ffn.first_layer_dense
  };
  BlockShape block(int64_t i) const;
  // The width ln_f and lm_head see: d / 2^(n_layer / blocks_per_stage) for lgpt/cgpt, else d_model.
  int64_t final_width() const;

  // Every structural rule (divisibility, rank <= width, tying vs lgpt, removal vs attention kind, ...).
  // The message names the offending field by its sweep-file name, e.g. "ffn.rank: 1024 exceeds ...".
  Status Validate() const;
};

// Names as written in sweep files and run.json ("gpt", "lowrank", "fixedflop", "qp", ...).
const char* ToString(Arch);
const char* ToString(Positions);
const char* ToString(Activation);
const char* ToString(FfnType);
const char* ToString(SelfGuidedMode);
const char* ToString(AlphaSchedule);
const char* ToString(SkiplessRemoval);
bool Parse(const std::string& s, Arch* out);
bool Parse(const std::string& s, Positions* out);
bool Parse(const std::string& s, Activation* out);
bool Parse(const std::string& s, FfnType* out);
bool Parse(const std::string& s, SelfGuidedMode* out);
bool Parse(const std::string& s, AlphaSchedule* out);
bool Parse(const std::string& s, SkiplessRemoval* out);

}  // namespace isoflop
