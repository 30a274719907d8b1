#include "worker/models/attention.h"

#include "worker/models/linear_map.h"

namespace isoflop {

RotaryImpl::RotaryImpl(int64_t head_dim, int64_t max_seq_len, double base) {
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const torch::Tensor i = torch::arange(head_dim / 2, f64);
  const torch::Tensor theta = torch::pow(base, -2.0 * i / static_cast<double>(head_dim));  // (hs/2)
  const torch::Tensor angle = torch::outer(torch::arange(max_seq_len, f64), theta);  // (T, hs/2)
  cos = register_buffer("cos", angle.cos().to(torch::kFloat32));
  sin = register_buffer("sin", angle.sin().to(torch::kFloat32));
}

namespace {

// x (B, nh, T, hs) with channel i paired to i + hs/2, each pair turned by the angle whose cosine
// and sine are c and s (T, hs/2), broadcast over (B, nh).
torch::Tensor Rotate(const torch::Tensor& x, const torch::Tensor& c, const torch::Tensor& s) {
  const int64_t half = x.size(3) / 2;
  const torch::Tensor x1 = x.slice(-1, 0, half), x2 = x.slice(-1, half);  // (B, nh, T, hs/2) each
  return torch::cat({x1 * c - x2 * s, x2 * c + x1 * s}, -1);              // rotate (x1_i, x2_i)
}

}  // namespace

torch::Tensor RotaryImpl::forward(const torch::Tensor& x) {
  const int64_t T = x.size(2);
  return Rotate(x, cos.slice(0, 0, T).to(x.dtype()), sin.slice(0, 0, T).to(x.dtype()));
}

torch::Tensor RotaryImpl::At(const torch::Tensor& x, const torch::Tensor& pos) {
  // (1, hs/2): cos(pos theta_i) and sin(pos theta_i)
  return Rotate(x, cos.index_select(0, pos).to(x.dtype()), sin.index_select(0, pos).to(x.dtype()));
}

torch::Tensor CausalAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, int64_t n_head, int64_t n_kv_head,
                              RotaryImpl* rotary) {
  const int64_t B = q.size(0), T = q.size(1), hs = q.size(2) / n_head;
  torch::Tensor qh = q.view({B, T, n_head, hs}).transpose(1, 2);     // (B, T, a) -> (B, nh, T, hs)
  torch::Tensor kh = k.view({B, T, n_kv_head, hs}).transpose(1, 2);  // (B, T, e) -> (B, nkv, T, hs)
  const torch::Tensor vh = v.view({B, T, n_kv_head, hs}).transpose(1, 2);
  if (rotary != nullptr) {
    qh = rotary->forward(qh);
    kh = rotary->forward(kh);
  }
  // softmax(q k^T / sqrt(hs) + causal mask) v: (B, nh, T, hs)
  const torch::Tensor y = torch::scaled_dot_product_attention(
      qh, kh, vh, /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/true, /*scale=*/std::nullopt,
      /*enable_gqa=*/n_kv_head != n_head);
  return y.transpose(1, 2).reshape({B, T, n_head * hs});  // (B, nh, T, hs) -> (B, T, a)
}

torch::Tensor CachedAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, int64_t n_head, int64_t n_kv_head,
                              RotaryImpl* rotary, KvCache& cache, const DecodePosition& at) {
  const int64_t B = q.size(0), hs = q.size(2) / n_head, capacity = at.mask.size(-1);
  TORCH_CHECK(q.size(1) == 1, "CachedAttention decodes one position at a time, got ", q.sizes());
  torch::Tensor qh = q.view({B, n_head, 1, hs});     // (B, 1, a) -> (B, nh, 1, hs)
  torch::Tensor kh = k.view({B, n_kv_head, 1, hs});  // (B, 1, e) -> (B, nkv, 1, hs)
  const torch::Tensor vh = v.view({B, n_kv_head, 1, hs});
  if (rotary != nullptr) {
    qh = rotary->At(qh, at.pos);
    kh = rotary->At(kh, at.pos);
  }
  if (!cache.k.defined()) {
    cache.k = torch::zeros({B, n_kv_head, capacity, hs}, kh.options());
    cache.v = torch::zeros({B, n_kv_head, capacity, hs}, vh.options());
  }
  cache.k.index_copy_(2, at.pos, kh.to(cache.k.dtype()));  // K[:, :, pos] = k
  cache.v.index_copy_(2, at.pos, vh.to(cache.v.dtype()));  // V[:, :, pos] = v
  // softmax(q K^T / sqrt(hs) + mask) V over positions 0..pos: (B, nh, 1, hs)
  const torch::Tensor y = torch::scaled_dot_product_attention(
      qh.to(cache.k.dtype()), cache.k, cache.v, at.mask, /*dropout_p=*/0.0, /*is_causal=*/false,
      /*scale=*/std::nullopt, /*enable_gqa=*/n_kv_head != n_head);
  return y.reshape({B, 1, n_head * hs}).to(q.dtype());
}

CausalSelfAttentionImpl::CausalSelfAttentionImpl(const ModelSpec& spec,
                                                 const ModelSpec::BlockShape& shape)
    : n_head(spec.n_head),
      n_kv_head(spec.kv_heads()),
      attn_width(shape.attn_width),
      kv_width(shape.kv_width) {
  const int64_t d = shape.width;
  c_attn = register_module(
      "c_attn",
      torch::nn::Linear(torch::nn::LinearOptions(d, attn_width + 2 * kv_width).bias(spec.bias)));
  c_proj = register_module(
      "c_proj", torch::nn::Linear(torch::nn::LinearOptions(attn_width, d).bias(spec.bias)));
  if (spec.positions == Positions::kRotary) {
    rotary = register_module("rotary", Rotary(attn_width / n_head, spec.seq_len, spec.rope_base));
  }
}

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x) {
  const auto qkv = LinearMap(x, c_attn->weight, c_attn->bias, float32_weight_grads)
                       .split_with_sizes({attn_width, kv_width, kv_width}, -1);  // (B, T, a|e|e)
  const torch::Tensor y = CausalAttention(qkv[0], qkv[1], qkv[2], n_head, n_kv_head,
                                          rotary.is_empty() ? nullptr : rotary.get());
  return LinearMap(y, c_proj->weight, c_proj->bias,
                   float32_weight_grads);  // (B, T, a) -> (B, T, d)
}

torch::Tensor CausalSelfAttentionImpl::Decode(const torch::Tensor& x, KvCache& cache,
                                              const DecodePosition& at) {
  const auto qkv =
      c_attn(x).split_with_sizes({attn_width, kv_width, kv_width}, -1);  // (B, 1, a|e|e)
  const torch::Tensor y = CachedAttention(qkv[0], qkv[1], qkv[2], n_head, n_kv_head,
                                          rotary.is_empty() ? nullptr : rotary.get(), cache, at);
  return c_proj(y);  // (B, 1, a) -> (B, 1, d)
}

}  // namespace isoflop
