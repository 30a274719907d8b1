#include "worker/models/gpt.h"

namespace isoflop {

BlockImpl::BlockImpl(const ModelSpec& spec, const ModelSpec::BlockShape& shape) {
  ln_1 = register_module("ln_1", LayerNorm(shape.width, spec.bias));
  attn = register_module("attn", CausalSelfAttention(spec, shape));
  ln_2 = register_module("ln_2", LayerNorm(shape.width, spec.bias));
  mlp = register_module("mlp", Mlp(spec, shape));
}

torch::Tensor BlockImpl::forward(torch::Tensor x) {
  auto [x1, h] = ln_2->AddForward(x, attn(ln_1(x)));  // x1 = x + attn(ln_1(x)), h = ln_2(x1)
  return x1 + mlp(h);                                 // (B, T, d)
}

torch::Tensor BlockImpl::Decode(torch::Tensor x, KvCache& cache, const DecodePosition& at) {
  x = x + attn->Decode(ln_1(x), cache, at);  // (B, 1, d)
  x = x + mlp(ln_2(x));                      // (B, 1, d)
  return x;
}

torch::Tensor DecodeBlocks(const torch::nn::ModuleListImpl& blocks, torch::Tensor x,
                           KvCache* caches, const DecodePosition& at) {
  for (size_t i = 0; i < blocks.size(); ++i)
    x = blocks[i]->as<BlockImpl>()->Decode(x, caches[i], at);
  return x;
}

// BlockImpl::forward block after block, with each residual add fused into the LayerNorm that reads
// its sum (the next block's ln_1 included): the same arithmetic.
torch::Tensor RunBlocks(const torch::nn::ModuleListImpl& blocks, torch::Tensor x) {
  if (blocks.size() == 0) return x;
  torch::Tensor h = blocks[0]->as<BlockImpl>()->ln_1(x);  // (B, T, d)
  for (size_t i = 0; i < blocks.size(); ++i) {
    BlockImpl& block = *blocks[i]->as<BlockImpl>();
    auto [x1, h2] = block.ln_2->AddForward(x, block.attn(h));  // x1 = x + attn(h), h2 = ln_2(x1)
    const torch::Tensor m = block.mlp(h2);
    if (i + 1 == blocks.size()) return x1 + m;
    std::tie(x, h) = blocks[i + 1]->as<BlockImpl>()->ln_1->AddForward(x1, m);  // next ln_1(x1 + m)
  }
  return x;
}

GptImpl::GptImpl(const ModelSpec& spec) : LanguageModelImpl(spec) {
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < spec.n_layer; ++i) blocks->push_back(Block(spec, spec.block(i)));
}

torch::Tensor GptImpl::Body(const torch::Tensor& idx) {
  torch::Tensor x = Embed(idx);  // (B, T) -> (B, T, d)
  x = RunBlocks(*blocks, x);     // (B, T, d)
  return x;                      // (B, T, d_final)
}

torch::Tensor GptImpl::DecodeBody(const torch::Tensor& x0, DecodeState& state) {
  return DecodeBlocks(*blocks, x0, state.caches.data(), state.at);  // (B, 1, d)
}

}  // namespace isoflop
