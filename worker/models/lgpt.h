// lgpt (LinearGPT) and cgpt (ConvGPT), papers.md 1.3: the width halves after every stage.
//
//   x = wte(idx) + wpe(t)                       width d_model
//   for each of n_layer / blocks_per_stage stages s:
//     x = block(x), blocks_per_stage times      width d_s = d_model / 2^s, n_head constant
//     x = halve_s(x)                            d_s -> d_s / 2
//   logits = lm_head(ln_f(x))                   width d_model / 2^stages
// lgpt's halving map is Linear(d_s, d_s/2) with bias. cgpt's is Conv1d(d_s, d_s/2, k) with bias
// over the time axis, padded causally with k - 1 zeros on the left so that position t sees t-k+1..t
// only; with k = 1 it is the same per-token map as lgpt's Linear.
#pragma once

#include <torch/torch.h>

#include <cstdint>

#include "common/model_spec.h"
#include "worker/models/gpt.h"
#include "worker/models/language_model.h"

namespace isoflop {

struct CausalConv1dImpl : torch::nn::Module {
  CausalConv1dImpl(int64_t in, int64_t out, int64_t kernel);
  torch::Tensor forward(const torch::Tensor& x);  // (B, T, in) -> (B, T, out)

  int64_t kernel;
  torch::nn::Conv1d conv{nullptr};  // weight (out, in, k), bias (out)
};
TORCH_MODULE(CausalConv1d);

struct LinearGptImpl : LanguageModelImpl {
  explicit LinearGptImpl(const ModelSpec& spec);          // spec.arch is lgpt or cgpt
  torch::Tensor Body(const torch::Tensor& idx) override;  // (B, T) -> (B, T, d_final)
  // A causal convolution over k > 1 positions would need a cache of its k - 1 inputs.
  bool CanDecode() const override { return spec_.arch != Arch::kCgpt || spec_.conv_kernel == 1; }

  torch::nn::ModuleList blocks{nullptr};  // n_layer Blocks, at their stage's width
  torch::nn::ModuleList halve{nullptr};   // one map per stage: Linear (lgpt) or CausalConv1d (cgpt)

 protected:
  torch::Tensor DecodeBody(const torch::Tensor& x0, DecodeState& state) override;

 private:
  // x (B, T, d_s) through the halving map that ends stage `stage`: (B, T, d_s / 2).
  torch::Tensor Halve(int64_t stage, const torch::Tensor& x);
};

}  // namespace isoflop
