// LayerNorm as bf16 autocast runs it on CUDA, fused: float32 rows in, bf16 rows out, one kernel
// each way (kernels/layer_norm.h), in place of autocast's float32 layer_norm and the cast of its
// output that the next linear makes. The same function as torch::layer_norm followed by that cast,
// up to float32 summation order; the gradients come back in the inputs' dtypes (float32).
//
// LayerNormImpl (language_model.h) takes it when FusedLayerNormApplies; everywhere else (CPU,
// float32 training, eval without autocast, widths without a compiled kernel) it calls
// torch::layer_norm, which GPU tests compare this against.
#pragma once

#include <torch/torch.h>

#include <utility>

namespace isoflop {

// True when x (..., width) float32 is on a CUDA device under bf16 autocast, weight is float32, and
// this build has a kernel for the width.
bool FusedLayerNormApplies(const torch::Tensor& x, const torch::Tensor& weight);

// x (..., width) float32, weight (width), bias (width) or undefined -> LayerNorm(x) (..., width)
// bf16.
torch::Tensor FusedLayerNorm(const torch::Tensor& x, const torch::Tensor& weight,
                             const torch::Tensor& bias, double eps);

// The residual add of a pre-LN block fused in: s = x + branch and LayerNorm(s), in one kernel each
// way, for x float32 and branch bf16 of the same shape (a block's attention or FFN output under
// autocast) where FusedLayerNormApplies(x, weight). Returns (s float32, LayerNorm(s) bf16).
bool FusedAddLayerNormApplies(const torch::Tensor& x, const torch::Tensor& branch,
                              const torch::Tensor& weight);
std::pair<torch::Tensor, torch::Tensor> FusedAddLayerNorm(const torch::Tensor& x,
                                                          const torch::Tensor& branch,
                                                          const torch::Tensor& weight,
                                                          const torch::Tensor& bias, double eps);

}  // namespace isoflop
