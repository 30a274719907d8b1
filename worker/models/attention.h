// Causal self-attention for every variant: rotary positions, the multi-head core (MHA, MQA, GQA) on
// already projected queries, keys and values, and the projected pre-LN attention of the gpt family.
#pragma once

#include <torch/torch.h>

#include <cstdint>

#include "common/model_spec.h"

namespace isoflop {

// Rotary position embedding (RoFormer) in GPT-NeoX's non-interleaved layout over the full head
// dimension: channel i pairs with channel i + hs/2 and the pair turns by t * theta_i, with
// theta_i = base^(-2i / hs) (base 10000, papers.md 3.5).
struct RotaryImpl : torch::nn::Module {
  RotaryImpl(int64_t head_dim, int64_t max_seq_len, double base);
  torch::Tensor forward(const torch::Tensor& x);  // (B, nh, T, hs) -> (B, nh, T, hs)
  // One position given as a device scalar: (B, nh, 1, hs) turned by pos * theta_i.
  torch::Tensor At(const torch::Tensor& x, const torch::Tensor& pos);

  torch::Tensor cos;  // (max_seq_len, hs/2): cos(t theta_i)
  torch::Tensor sin;  // (max_seq_len, hs/2): sin(t theta_i)
};
TORCH_MODULE(Rotary);

// softmax(q k^T / sqrt(hs) + causal mask) v per head, through scaled_dot_product_attention:
// q (B, T, nh*hs), k and v (B, T, nkv*hs) -> (B, T, nh*hs). Each group of nh/nkv query heads shares
// one key/value head (MHA nkv = nh, GQA, MQA nkv = 1). `rotary` (may be null) turns q and k.
torch::Tensor CausalAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, int64_t n_head, int64_t n_kv_head,
                              RotaryImpl* rotary);

// Incremental decoding: one new position per call, attending to the keys and values of every
// earlier position, kept per attention layer. The position is a device scalar and every buffer has
// a fixed address, so a decode step runs without host synchronisation and can be captured as a CUDA
// graph (the caller's first, uncaptured step allocates the caches).
struct DecodePosition {
  torch::Tensor pos;   // (1) int64: the position this step writes and attends from
  torch::Tensor mask;  // (1, 1, 1, capacity) bool: true at positions 0..pos
};
struct KvCache {
  torch::Tensor k, v;  // (B, nkv, capacity, hs) each; allocated by the first step
};

// CausalAttention for the one position `at.pos`: q (B, 1, nh*hs), k and v (B, 1, nkv*hs) ->
// (B, 1, nh*hs). Writes k and v (k turned by `rotary`) into `cache` at pos first.
torch::Tensor CachedAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, int64_t n_head, int64_t n_kv_head,
                              RotaryImpl* rotary, KvCache& cache, const DecodePosition& at);

// The attention of a pre-LN block (gpt, pgpt, lgpt, cgpt): one fused projection c_attn to q (a), k
// and v (e each), then c_proj back to the block width. Unfused, the same weights are the
// accountant's q, k, v and o matrices (accountant.cpp AddAttention).
struct CausalSelfAttentionImpl : torch::nn::Module {
  CausalSelfAttentionImpl(const ModelSpec& spec, const ModelSpec::BlockShape& shape);
  torch::Tensor forward(const torch::Tensor& x);  // (B, T, d) -> (B, T, d)
  // One decoding position: (B, 1, d) -> (B, 1, d), through `cache` (CachedAttention).
  torch::Tensor Decode(const torch::Tensor& x, KvCache& cache, const DecodePosition& at);

  int64_t n_head, n_kv_head, attn_width, kv_width;
  bool float32_weight_grads = false;  // LinearMap's float32 weight gradients (linear_map.h)
  torch::nn::Linear c_attn{nullptr};  // (a + 2e, d)
  torch::nn::Linear c_proj{nullptr};  // (d, a): a residual projection (init.h)
  Rotary rotary{nullptr};             // null with learned positions
};
TORCH_MODULE(CausalSelfAttention);

}  // namespace isoflop
