// gpt: the pre-LN transformer of nanoGPT (papers.md 1.2), and the block pgpt, lgpt and cgpt reuse.
//
//   x = wte(idx) + wpe(t)            (rotary positions: no wpe; q and k turn inside attention)
//   x = x + attn(ln_1(x))            for each of n_layer blocks
//   x = x + mlp(ln_2(x))
//   logits = lm_head(ln_f(x))
#pragma once

#include <torch/torch.h>

#include "common/model_spec.h"
#include "worker/models/attention.h"
#include "worker/models/ffn.h"
#include "worker/models/language_model.h"

namespace isoflop {

struct BlockImpl : torch::nn::Module {
  BlockImpl(const ModelSpec& spec, const ModelSpec::BlockShape& shape);
  torch::Tensor forward(torch::Tensor x);  // (B, T, d) -> (B, T, d)
  // One decoding position: (B, 1, d) -> (B, 1, d), attending through `cache`.
  torch::Tensor Decode(torch::Tensor x, KvCache& cache, const DecodePosition& at);

  LayerNorm ln_1{nullptr};
  CausalSelfAttention attn{nullptr};
  LayerNorm ln_2{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(Block);

// Runs x through a ModuleList of Blocks in order.
torch::Tensor RunBlocks(const torch::nn::ModuleListImpl& blocks, torch::Tensor x);
// The same for one decoding position, block i through caches[i]: (B, 1, d) -> (B, 1, d).
torch::Tensor DecodeBlocks(const torch::nn::ModuleListImpl& blocks, torch::Tensor x,
                           KvCache* caches, const DecodePosition& at);

struct GptImpl : LanguageModelImpl {
  explicit GptImpl(const ModelSpec& spec);
  torch::Tensor Body(const torch::Tensor& idx) override;  // (B, T) -> (B, T, d_final)

  torch::nn::ModuleList blocks{nullptr};  // n_layer Blocks

 protected:
  torch::Tensor DecodeBody(const torch::Tensor& x0, DecodeState& state) override;
};

}  // namespace isoflop
