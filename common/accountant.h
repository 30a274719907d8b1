// Accountant: parameters and FLOPs of a ModelSpec, by the convention of system.md section 6.
//
//   forward FLOPs per token = 2 * (multiply-accumulates of every matrix product, lm_head included)
//                           + 4 * T * d_attn per attention layer (QK^T and AV at full context T, no causal
//                             halving; PaLM appendix B and the structured-FFN paper's get_flops)
//   training FLOPs per token = 3 * forward, plus self-guided training's expected guide cost.
// Norms, softmax, activations, biases and the embedding lookup cost no FLOPs. Parameters count every
// tensor element the worker allocates (biases and norm weights included; tied weights once), so the
// worker's tests can compare the two exactly. No LibTorch here: the coordinator plans sweeps with it.
#pragma once

#include <cstdint>

#include "common/model_spec.h"

namespace isoflop {

struct ParamCount {
  int64_t total = 0;      // N: every parameter of the model as trained and evaluated (guides excluded)
  int64_t embedding = 0;  // token embedding, position embedding, and an untied lm_head
  int64_t non_embedding() const { return total - embedding; }  // N_nonemb
  // The FFN linears' weight matrices, biases excluded: the structured-FFN paper's "FFN size" (its code
  // counts only parameters of 2+ dimensions; with biases Table 1's dense xl would read 806M, not 805M).
  // Equal to the FFN's MACs per token.
  int64_t ffn = 0;
  int64_t guide = 0;      // self-guided training's dense guide matrices: trained, then dropped
};

struct FlopCount {
  // Per token, by the convention above. Exact integers: a 1T-parameter model is ~1e12 * 2 per token.
  int64_t forward = 0;
  int64_t attention_scores = 0;  // the 4*T*d_attn part of `forward`, summed over layers
  int64_t guide_forward = 0;     // forward FLOPs of all self-guided guide matrices if they were used
  int64_t train() const { return 3 * forward; }
};

// The whole training cost of a run that consumes D unique data tokens, self-guided training included.
struct TrainingCost {
  double flops_per_unique_token = 0;  // total training FLOPs / D; the budget solver divides C by this
  double processed_per_unique = 1;    // tokens run through the model / D (1 + rho for fixedflop)
  double guided_fraction = 0;         // fraction of optimizer steps during which alpha > 0
  double ratio = 0;                   // rho = G / M actually used (0 when self-guided training is off)
  double mean_alpha = 0;              // expected guide use per guided step (0.5 for cosine/linear + reduce_flop)
};

class Accountant {
 public:
  // spec must satisfy spec.Validate(); results are undefined otherwise.
  static ParamCount Params(const ModelSpec& spec);
  static FlopCount Flops(const ModelSpec& spec);
  static TrainingCost Training(const ModelSpec& spec);
  // The dense model with the same shape (ffn dense everywhere, no self-guidance): fixedflop's reference.
  static ModelSpec DenseCounterpart(const ModelSpec& spec);
};

}  // namespace isoflop
