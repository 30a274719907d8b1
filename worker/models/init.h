// Initialisation rules, stated once. BuildModel applies them right after construction.
//
// gpt, pgpt, lgpt and cgpt share one rule (the pgpt/lgpt/cgpt paper's code mixed PyTorch defaults
// in by accident, papers.md 1.4; this code does not reproduce that):
//   - Linear, Conv1d, Embedding and dense FFN weights ~ N(0, 0.02^2); biases 0; LayerNorm weight 1.
//   - Residual projections (attention c_proj, dense FFN c_proj) ~ N(0, (0.02 / sqrt(2L))^2) with
//     L = spec.n_layer: GPT-2's rule, so that the 2L residual additions of a stack do not grow the
//     stream's variance with depth. The structured-FFN paper used no such scaling; its structured
//     layers keep their own init (next point).
//   - Structured FFN linears: the structured-FFN paper's init (LowRank "svd", BlockShuffle and
//     BlockDense "ortho", structured_linear.h); the self-guided guide is their exact product.
//   - pgpt's mixing logits start at 0.5 (set by its constructor; not random).
//
// skipless: with no residual stream and no norms, each block's output is the next block's only
// input, so the init must keep the signal's scale and keep tokens apart through depth (He et al.
// 2023, arXiv 2302.10322: attention that starts close to the identity, values and projections
// orthogonal, activations close to linear). The rule, for block inputs of per-coordinate std s_in:
//   - Embeddings give the first block std 1 (wte, and wpe when learned, each N(0, 1/2) so that
//     their sum has variance 1), or 0.02 when tied, since the tied lm_head would otherwise start
//     with logits of std sqrt(d). lm_head N(0, 0.02^2), ln_f weight 1, all biases 0.
//   - Q = R / s_in with R a random orthogonal d x d matrix: unit-variance queries.
//   - K = identity_init * R S / s_in, where S (d x e) sums the r = n_head / n_kv_head query heads
//     of each key/value group with weights 1/sqrt(r). Every head's self-logit q_t.k_t / sqrt(hs)
//     then starts at about identity_init * sqrt(hs / r) (MHA: identity_init * sqrt(hs)) while
//     other positions score about N(0, identity_init^2): a causal attention matrix biased towards
//     the identity; identity_init = 0 gives uniform attention. Without Q (qp, parallel q) R is the
//     identity; without K (kp) the key is the input and Q = identity_init I / s_in.
//   - V = R_V / s_in, R_V with orthonormal columns: unit-variance values. P random orthogonal.
//   - M maps to pre-activations of std 0.5, where GELU and SiLU are mildly nonlinear (the part of
//     their output that all tokens share is under 10% of its energy; at std 1 it is 19%), so that
//     depth does not pull the tokens together. O brings the activation back to variance 1, and its
//     rows sum to zero, so the activation's mean (the same for every token) does not pass at init.
//   - Parallel blocks scale P and O by 1/sqrt(2) so that the summed branches keep variance 1.
//   - A structured M or O keeps its paper init, rescaled to the Frobenius norm of the dense rule.
// The identity bias is what keeps eight blocks' outputs apart at init (identity_init 4 at head
// dim 16: mean cosine 0.17 against 1.0 for uniform attention). Norm-free stacks still need small
// steps: every update multiplies through all later blocks (tests/worker_weight_removal_test.cpp).
#pragma once

#include <ATen/core/Generator.h>

#include "worker/models/language_model.h"

namespace isoflop {

// Initialises every parameter of `model` by the rule of its spec().arch, drawing from `gen` in
// module order (deterministic for a given seed on CPU), and sets the self-guided guides.
void InitializeParameters(LanguageModelImpl& model, at::Generator& gen);

}  // namespace isoflop
