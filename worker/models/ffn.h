// The feed-forward network of a block: c_fc (d -> f'), activation, c_proj (f -> d). With SwiGLU,
// c_fc stacks gate and up (f' = 2f, gate first) and the activation is silu(gate) * up
// (papers.md 2.1). Each linear is dense or structured (structured_linear.h), as the block says.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>

#include "common/model_spec.h"
#include "worker/models/structured_linear.h"

namespace isoflop {

// (..., f') -> (..., f): exact (erf) GELU, tanh-approximated GELU, or SwiGLU silu(h[:f]) * h[f:].
torch::Tensor Activate(const torch::Tensor& h, Activation activation);

struct MlpImpl : torch::nn::Module {
  MlpImpl(const ModelSpec& spec, const ModelSpec::BlockShape& shape);
  torch::Tensor forward(const torch::Tensor& x);  // (B, T, d) -> (B, T, d)

  Activation activation;
  std::shared_ptr<FfnLinearImpl> c_fc;    // d -> f' (skipless: M)
  std::shared_ptr<FfnLinearImpl> c_proj;  // f -> d (skipless: O); a residual projection when dense
};
TORCH_MODULE(Mlp);

}  // namespace isoflop
