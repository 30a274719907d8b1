// LinearMap: y = x W^T + b, as F::linear, with one difference under bf16 autocast on CUDA.
//
// There autocast casts the float32 weight to bf16, the GEMMs run in bf16, and the weight's gradient
// comes out of the weight-gradient GEMM as bf16, which the cast's backward then copies to float32
// before it is accumulated into W.grad: one more pass over every weight a micro-batch, and the
// gradient rounded to bf16 on the way. Here the weight-gradient GEMM writes float32 directly from
// its float32 accumulators (at::mm with out_dtype): the same products, no cast kernel, a more exact
// gradient. Everywhere else (CPU, float32, no autocast, no gradient wanted) it is F::linear.
//
// Opt-in (`float32_weight_grad`; isoflop-worker --float32-weight-grads) until the GPU test
// LinearMap.MatchesAutocastLinearAndFloat64 and a training run have passed on the GPU machine: its
// first GPU run (2026-12-07) failed on an undefined bias given to the autograd Function, since
// fixed.
#pragma once

#include <torch/torch.h>

namespace isoflop {

// x (..., in), weight (out, in), bias (out) or undefined -> (..., out). float32_weight_grad: the
// path above where it applies; false: F::linear.
torch::Tensor LinearMap(const torch::Tensor& x, const torch::Tensor& weight,
                        const torch::Tensor& bias, bool float32_weight_grad);

}  // namespace isoflop
