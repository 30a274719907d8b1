#include <cuda_bf16.h>

#include "worker/kernels/layer_norm.h"

namespace isoflop::kernels {

namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kRowsPerWarp = 16;  // backward: rows a warp accumulates dgamma and dbeta over

__device__ __forceinline__ float WarpSum(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Lane l holds columns l + 32 i, i < kPerLane: coalesced 128-byte rows of float32 a load.
template <int kPerLane>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    LayerNormForwardKernel(const float* __restrict__ x, const __nv_bfloat16* __restrict__ branch,
                           float* __restrict__ sum_out, const float* __restrict__ gamma,
                           const float* __restrict__ beta, __nv_bfloat16* __restrict__ y,
                           float* __restrict__ mean_out, float* __restrict__ rstd_out, int64_t rows,
                           float eps) {
  constexpr int kWidth = kPerLane * 32;
  const int lane = threadIdx.x % 32;
  const int64_t row = int64_t{blockIdx.x} * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;
  const float* xr = x + row * kWidth;
  float v[kPerLane];
  float sum = 0.f;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int col = lane + 32 * i;
    v[i] = xr[col];
    if (branch != nullptr) {  // the residual add: s = x + branch, kept for the next add
      v[i] += __bfloat162float(branch[row * kWidth + col]);
      sum_out[row * kWidth + col] = v[i];
    }
    sum += v[i];
  }
  const float mean = WarpSum(sum) / kWidth;
  float sq = 0.f;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const float c = v[i] - mean;
    sq = fmaf(c, c, sq);
  }
  const float rstd = rsqrtf(WarpSum(sq) / kWidth + eps);
  __nv_bfloat16* yr = y + row * kWidth;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int col = lane + 32 * i;
    const float b = beta != nullptr ? beta[col] : 0.f;
    yr[col] = __float2bfloat16(fmaf((v[i] - mean) * rstd, gamma[col], b));
  }
  if (lane == 0) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
}

// Each warp takes kRowsPerWarp consecutive rows, writing dx for each and one row of partial sums of
// dgamma and dbeta over them.
template <int kPerLane>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    LayerNormBackwardKernel(const __nv_bfloat16* __restrict__ dy, const float* __restrict__ x,
                            const float* __restrict__ mean_in, const float* __restrict__ rstd_in,
                            const float* __restrict__ gamma, const float* __restrict__ dresidual,
                            float* __restrict__ dx, __nv_bfloat16* __restrict__ dbranch,
                            float* __restrict__ dgamma_partial, float* __restrict__ dbeta_partial,
                            int64_t rows) {
  constexpr int kWidth = kPerLane * 32;
  const int lane = threadIdx.x % 32;
  const int64_t warp = int64_t{blockIdx.x} * kWarpsPerBlock + threadIdx.x / 32;
  const int64_t first = warp * kRowsPerWarp;
  if (first >= rows) return;
  float g_acc[kPerLane], b_acc[kPerLane], gam[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    g_acc[i] = b_acc[i] = 0.f;
    gam[i] = gamma[lane + 32 * i];
  }
  const int64_t last = first + kRowsPerWarp < rows ? first + kRowsPerWarp : rows;
  for (int64_t row = first; row < last; ++row) {
    const float mean = mean_in[row], rstd = rstd_in[row];
    const float* xr = x + row * kWidth;
    const __nv_bfloat16* dyr = dy + row * kWidth;
    float xhat[kPerLane], g[kPerLane];
    float sum_g = 0.f, sum_gx = 0.f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int col = lane + 32 * i;
      const float d = __bfloat162float(dyr[col]);
      xhat[i] = (xr[col] - mean) * rstd;
      g[i] = d * gam[i];
      sum_g += g[i];
      sum_gx = fmaf(g[i], xhat[i], sum_gx);
      g_acc[i] = fmaf(d, xhat[i], g_acc[i]);
      b_acc[i] += d;
    }
    const float mean_g = WarpSum(sum_g) / kWidth, mean_gx = WarpSum(sum_gx) / kWidth;
    float* dxr = dx + row * kWidth;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t at = row * kWidth + lane + 32 * i;
      float d = rstd * (g[i] - mean_g - xhat[i] * mean_gx);
      if (dresidual != nullptr) d += dresidual[at];  // the sum's other use: the next residual add
      dxr[lane + 32 * i] = d;
      if (dbranch != nullptr) dbranch[at] = __float2bfloat16(d);
    }
  }
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    dgamma_partial[warp * kWidth + lane + 32 * i] = g_acc[i];
    if (dbeta_partial != nullptr) dbeta_partial[warp * kWidth + lane + 32 * i] = b_acc[i];
  }
}

// The compiled row widths, as width / 32 values a lane (kPerLane): 128 to 1280, GPT-2 small's and
// the ladder's (wider rows would spill the backward's five values a column to local memory).
#define ISOFLOP_LAYER_NORM_LANES(X) X(4) X(8) X(12) X(16) X(20) X(24) X(32) X(40)

unsigned Blocks(int64_t warps) {
  return static_cast<unsigned>((warps + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

}  // namespace

bool LayerNormWidthSupported(int64_t width) {
  if (width % 32 != 0) return false;
  switch (width / 32) {
#define ISOFLOP_CASE(K) case K:
    ISOFLOP_LAYER_NORM_LANES(ISOFLOP_CASE)
#undef ISOFLOP_CASE
    return true;
    default:
      return false;
  }
}

int64_t LayerNormPartials(int64_t rows) {
  return (rows + kRowsPerWarp - 1) / kRowsPerWarp;
}

cudaError_t LayerNormForwardBf16(const float* x, const uint16_t* branch, float* sum,
                                 const float* gamma, const float* beta, uint16_t* y, float* mean,
                                 float* rstd, int64_t rows, int64_t width, float eps,
                                 cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (!LayerNormWidthSupported(width)) return cudaErrorInvalidValue;
  auto* out = reinterpret_cast<__nv_bfloat16*>(y);
  const auto* add = reinterpret_cast<const __nv_bfloat16*>(branch);
  switch (width / 32) {
#define ISOFLOP_CASE(K)                                                          \
  case K:                                                                        \
    LayerNormForwardKernel<K><<<Blocks(rows), kWarpsPerBlock * 32, 0, stream>>>( \
        x, add, sum, gamma, beta, out, mean, rstd, rows, eps);                   \
    break;
    ISOFLOP_LAYER_NORM_LANES(ISOFLOP_CASE)
#undef ISOFLOP_CASE
  }
  return cudaGetLastError();
}

cudaError_t LayerNormBackwardBf16(const uint16_t* dy, const float* x, const float* mean,
                                  const float* rstd, const float* gamma, const float* dresidual,
                                  float* dx, uint16_t* dbranch, float* dgamma_partial,
                                  float* dbeta_partial, int64_t rows, int64_t width,
                                  cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (!LayerNormWidthSupported(width)) return cudaErrorInvalidValue;
  const auto* grad = reinterpret_cast<const __nv_bfloat16*>(dy);
  auto* grad_branch = reinterpret_cast<__nv_bfloat16*>(dbranch);
  const unsigned blocks = Blocks(LayerNormPartials(rows));
  switch (width / 32) {
#define ISOFLOP_CASE(K)                                                                        \
  case K:                                                                                      \
    LayerNormBackwardKernel<K><<<blocks, kWarpsPerBlock * 32, 0, stream>>>(                    \
        grad, x, mean, rstd, gamma, dresidual, dx, grad_branch, dgamma_partial, dbeta_partial, \
        rows);                                                                                 \
    break;
    ISOFLOP_LAYER_NORM_LANES(ISOFLOP_CASE)
#undef ISOFLOP_CASE
  }
  return cudaGetLastError();
}

}  // namespace isoflop::kernels
