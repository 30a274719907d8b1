// Skipless transformer (He et al. 2023, arXiv 2302.10322; papers.md 2.1): no residual connections
// and no norms inside the blocks; the final LayerNorm is kept. Row vectors, as in the paper:
//
//   serial:    x -> a = MHA(x Q, x K, x V) -> a P -> act((a P) M) O      (papers.md 2.1)
//   parallel:  x -> MHA(x Q, x K, x V) P + act(x M) O                     (papers.md 2.4)
//
// Q and P are d x d, K and V d x e (e = n_kv_head * head_dim), M d x f' (SwiGLU: gate and up,
// f' = 2f), O f x d. spec.skipless.removed drops projections; the block input takes their place:
//   serial   qp  no Q, no P: the query is the block input; P is folded into M (M* = P M)
//            kp  no K, no P: the key is the block input (MHA only, e = d)
//            vp  no V, no P: the value is the block input (MHA only, e = d)
//   parallel q   no Q: the query is the block input (Q folded into the previous O and P, into K,
//                V and M)
//            qp  no Q, no P (Fig. 3a): trained from scratch, not an exact conversion (2.4)
// RemoveWeights (weight_removal.h) turns a model with all projections into the smaller one exactly.
// The initialisation that lets a deep skipless stack train is init.h's skipless rule.
#pragma once

#include <torch/torch.h>

#include <functional>

#include "common/model_spec.h"
#include "worker/models/attention.h"
#include "worker/models/ffn.h"
#include "worker/models/language_model.h"

namespace isoflop {

struct SkiplessBlockImpl : torch::nn::Module {
  SkiplessBlockImpl(const ModelSpec& spec, const ModelSpec::BlockShape& shape);
  torch::Tensor forward(const torch::Tensor& x);  // (B, T, d) -> (B, T, d)
  // One decoding position: (B, 1, d) -> (B, 1, d), attending through `cache`.
  torch::Tensor Decode(const torch::Tensor& x, KvCache& cache, const DecodePosition& at);

  bool parallel;
  int64_t n_head, n_kv_head;
  torch::nn::Linear q{nullptr};  // Q: d -> d; null when removed
  torch::nn::Linear k{nullptr};  // K: d -> e; null when removed
  torch::nn::Linear v{nullptr};  // V: d -> e; null when removed
  torch::nn::Linear p{nullptr};  // P: d -> d; null when removed
  Mlp mlp{nullptr};              // M = mlp.c_fc, O = mlp.c_proj
  Rotary rotary{nullptr};        // null with learned positions

 private:
  // The block around its attention core, which `attend` computes from (query, key, value).
  using AttendFn = std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&,
                                               const torch::Tensor&)>;
  torch::Tensor Apply(const torch::Tensor& x, const AttendFn& attend);
};
TORCH_MODULE(SkiplessBlock);

struct SkiplessGptImpl : LanguageModelImpl {
  explicit SkiplessGptImpl(const ModelSpec& spec);
  torch::Tensor Body(const torch::Tensor& idx) override;  // (B, T) -> (B, T, d_final)

  SkiplessBlockImpl& block(int64_t i) { return *blocks[i]->as<SkiplessBlockImpl>(); }

  torch::nn::ModuleList blocks{nullptr};  // n_layer SkiplessBlocks

 protected:
  torch::Tensor DecodeBody(const torch::Tensor& x0, DecodeState& state) override;
};

}  // namespace isoflop
