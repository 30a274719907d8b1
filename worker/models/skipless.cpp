#include "worker/models/skipless.h"

namespace isoflop {

namespace {

torch::nn::Linear Projection(int64_t in, int64_t out, bool bias) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
}

}  // namespace

SkiplessBlockImpl::SkiplessBlockImpl(const ModelSpec& spec, const ModelSpec::BlockShape& shape)
    : parallel(spec.skipless.parallel), n_head(spec.n_head), n_kv_head(spec.kv_heads()) {
  const SkiplessRemoval removed = spec.skipless.removed;
  const int64_t d = shape.width, e = shape.kv_width;
  const bool has_q = removed == SkiplessRemoval::kNone || removed == SkiplessRemoval::kKP ||
                     removed == SkiplessRemoval::kVP;
  const bool has_p = removed == SkiplessRemoval::kNone || removed == SkiplessRemoval::kQ;
  if (has_q) q = register_module("q", Projection(d, d, spec.bias));
  if (removed != SkiplessRemoval::kKP) k = register_module("k", Projection(d, e, spec.bias));
  if (removed != SkiplessRemoval::kVP) v = register_module("v", Projection(d, e, spec.bias));
  if (has_p) p = register_module("p", Projection(d, d, spec.bias));
  mlp = register_module("mlp", Mlp(spec, shape));
  if (spec.positions == Positions::kRotary) {
    rotary = register_module("rotary", Rotary(d / n_head, spec.seq_len, spec.rope_base));
  }
}

torch::Tensor SkiplessBlockImpl::Apply(const torch::Tensor& x, const AttendFn& attend) {
  const torch::Tensor query = q ? q(x) : x;     // x Q: (B, T, d)
  const torch::Tensor key = k ? k(x) : x;       // x K: (B, T, e)
  const torch::Tensor value = v ? v(x) : x;     // x V: (B, T, e)
  torch::Tensor a = attend(query, key, value);  // MHA(x Q, x K, x V): (B, T, d)
  if (p) a = p(a);                              // a P
  return parallel ? a + mlp(x)                  // MHA(...) P + act(x M) O
                  : mlp(a);                     // act((a P) M) O
}

torch::Tensor SkiplessBlockImpl::forward(const torch::Tensor& x) {
  RotaryImpl* rope = rotary.is_empty() ? nullptr : rotary.get();
  return Apply(
      x, [&](const torch::Tensor& query, const torch::Tensor& key, const torch::Tensor& value) {
        return CausalAttention(query, key, value, n_head, n_kv_head, rope);
      });
}

torch::Tensor SkiplessBlockImpl::Decode(const torch::Tensor& x, KvCache& cache,
                                        const DecodePosition& at) {
  RotaryImpl* rope = rotary.is_empty() ? nullptr : rotary.get();
  return Apply(
      x, [&](const torch::Tensor& query, const torch::Tensor& key, const torch::Tensor& value) {
        return CachedAttention(query, key, value, n_head, n_kv_head, rope, cache, at);
      });
}

SkiplessGptImpl::SkiplessGptImpl(const ModelSpec& spec) : LanguageModelImpl(spec) {
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < spec.n_layer; ++i) blocks->push_back(SkiplessBlock(spec, spec.block(i)));
}

torch::Tensor SkiplessGptImpl::Body(const torch::Tensor& idx) {
  torch::Tensor x = Embed(idx);                                              // (B, T) -> (B, T, d)
  for (const auto& b : *blocks) x = b->as<SkiplessBlockImpl>()->forward(x);  // (B, T, d)
  return x;                                                                  // (B, T, d_final)
}

torch::Tensor SkiplessGptImpl::DecodeBody(const torch::Tensor& x0, DecodeState& state) {
  torch::Tensor x = x0;  // (B, 1, d)
  for (size_t i = 0; i < blocks->size(); ++i) x = block(i).Decode(x, state.caches[i], state.at);
  return x;  // (B, 1, d_final)
}

}  // namespace isoflop
