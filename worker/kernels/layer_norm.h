// LayerNorm of float32 rows into bf16, forward and backward: the pre-LN blocks' norm as bf16
// autocast runs it, in one pass each way.
//
// Under autocast, LayerNorm runs in float32 (its input is the float32 residual stream) and writes a
// float32 output that the next linear casts to bf16: a float32 write, read and bf16 write where one
// bf16 write suffices, and the reverse in the backward. These kernels read x once and write the
// normalized row in bf16 (forward), read the bf16 gradient and x once and write the float32 input
// gradient (backward), all arithmetic in float32:
//   y = (x - mean) * rstd * gamma + beta,  rstd = 1 / sqrt(var + eps)        (biased variance)
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dy * gamma, xhat = (x - mean) * rstd
//   dgamma = sum_rows dy * xhat, dbeta = sum_rows dy     (per-warp partial sums; the caller adds them)
// Optionally with the pre-LN block's residual add before it, s = x + branch (bf16 branch), whose
// gradient the backward adds to that of s's other use, the next residual add.
// One warp per row, width / 32 values a lane in registers.
//
// Plain CUDA (no LibTorch headers): worker/models/fused_layer_norm.cpp wraps it for autograd.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace isoflop::kernels {

// Whether the kernels take rows of this width (128 to 1280 in steps the kernels are compiled for).
bool LayerNormWidthSupported(int64_t width);

// x (rows, width) float32, gamma (width) float32, beta (width) float32 or null -> y (rows, width)
// bf16 bits, mean and rstd (rows) float32. With branch (rows, width) bf16 bits (else null) the row
// normalized is s = x + branch, written to sum (rows, width) float32: the residual add fused in.
// Device pointers.
cudaError_t LayerNormForwardBf16(const float* x, const uint16_t* branch, float* sum,
                                 const float* gamma, const float* beta, uint16_t* y, float* mean,
                                 float* rstd, int64_t rows, int64_t width, float eps,
                                 cudaStream_t stream);

// dy (rows, width) bf16 bits, x (the row normalized: s with the add), mean, rstd, gamma as saved
// -> dx (rows, width) float32, plus dresidual (rows, width) float32 when not null (the gradient of
// the sum's other use), also written as bf16 bits to dbranch when not null (the branch's gradient);
// and per warp partial sums dgamma_partial, dbeta_partial (LayerNormPartials(rows) x width) float32
// each (dbeta_partial may be null), which the caller sums over their first dimension.
cudaError_t LayerNormBackwardBf16(const uint16_t* dy, const float* x, const float* mean,
                                  const float* rstd, const float* gamma, const float* dresidual,
                                  float* dx, uint16_t* dbranch, float* dgamma_partial,
                                  float* dbeta_partial, int64_t rows, int64_t width,
                                  cudaStream_t stream);

// Rows of partial sums the backward writes for `rows` rows.
int64_t LayerNormPartials(int64_t rows);

}  // namespace isoflop::kernels
