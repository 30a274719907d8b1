#include "worker/models/gpt.h"

namespace isoflop {

BlockImpl::BlockImpl(const ModelSpec& spec, const ModelSpec::BlockShape& shape) {
  ln_1 = register_module("ln_1", LayerNorm(shape.width, spec.bias));
  attn = register_module("attn", CausalSelfAttention(spec, shape));
  ln_2 = register_module("ln_2", LayerNorm(shape.width, spec.bias));
  mlp = register_module("mlp", Mlp(spec, shape));
}

torch::Tensor BlockImpl::forward(torch::Tensor x) {
  x = x + attn(ln_1(x));  // (B, T, d)
  x = x + mlp(ln_2(x));   // (B, T, d)
  return x;
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

torch::Tensor RunBlocks(const torch::nn::ModuleListImpl& blocks, torch::Tensor x) {
  for (const auto& block : blocks) x = block->as<BlockImpl>()->forward(x);
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
