#include <cuda_bf16.h>

#include "worker/kernels/gemv_bf16.h"

namespace isoflop::kernels {

namespace {

constexpr int kThreads = 256;  // 8 warps a block
constexpr int kWarps = kThreads / 32;
constexpr int kRows = 4;  // rows a block: every thread reads chunks of all 4, 8 loads in flight
// Three blocks an SM (24 warps, <= 85 registers a thread): without a minimum, ptxas caps the
// registers low enough to spill the loads in flight.
constexpr int kMinBlocks = 3;

// Streaming 16-byte load of weights that are read once: through the non-coherent path, not kept in
// L1.
__device__ __forceinline__ uint4 LoadStreaming(const uint4* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

// The dot product of 8 bf16 pairs, in float32.
__device__ __forceinline__ float Dot8(uint4 a, uint4 b) {
  const __nv_bfloat162* pa = reinterpret_cast<const __nv_bfloat162*>(&a);
  const __nv_bfloat162* pb = reinterpret_cast<const __nv_bfloat162*>(&b);
  float sum = 0.f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 fa = __bfloat1622float2(pa[i]), fb = __bfloat1622float2(pb[i]);
    sum = fmaf(fa.x, fb.x, sum);
    sum = fmaf(fa.y, fb.y, sum);
  }
  return sum;
}

// One block per kRows rows; its threads stride over the columns together (thread t reads chunks
// t, t + kThreads, ... of every row), so that a matrix of few rows still fills the GPU. Partial
// sums reduce within each warp by shuffles, then across the warps in shared memory.
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    GemvBf16Kernel(const uint4* __restrict__ w, const uint4* __restrict__ x,
                   __nv_bfloat16* __restrict__ y, int64_t rows, int64_t chunks) {
  const int64_t first = int64_t{blockIdx.x} * kRows;
  // The last block may have fewer than kRows rows: it reads its first row in their place.
  int64_t offset[kRows];
  float acc[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    offset[r] = (first + r < rows ? first + r : first) * chunks;
    acc[r] = 0.f;
  }
  int64_t c = threadIdx.x;
  for (; c + kThreads < chunks; c += 2 * kThreads) {  // two chunks of every row per iteration
    const uint4 x0 = __ldg(x + c);
    const uint4 x1 = __ldg(x + c + kThreads);
    uint4 w0[kRows], w1[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      w0[r] = LoadStreaming(w + offset[r] + c);
      w1[r] = LoadStreaming(w + offset[r] + c + kThreads);
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) acc[r] += Dot8(w0[r], x0) + Dot8(w1[r], x1);
  }
  if (c < chunks) {
    const uint4 x0 = __ldg(x + c);
#pragma unroll
    for (int r = 0; r < kRows; ++r) acc[r] += Dot8(LoadStreaming(w + offset[r] + c), x0);
  }
  __shared__ float partial[kWarps][kRows];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    for (int offset = 16; offset > 0; offset /= 2)
      acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], offset);
    if (lane == 0) partial[warp][r] = acc[r];
  }
  __syncthreads();
  if (threadIdx.x < kRows && first + threadIdx.x < rows) {
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < kWarps; ++i) sum += partial[i][threadIdx.x];
    y[first + threadIdx.x] = __float2bfloat16(sum);
  }
}

// out[j] = silu(h[j]) * h[f + j] for 8 consecutive j a thread.
__global__ void SwiGluKernel(const uint4* __restrict__ h, uint4* __restrict__ out, int64_t chunks) {
  const int64_t c = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (c >= chunks) return;
  const uint4 g = h[c], u = h[chunks + c];
  const __nv_bfloat162* pg = reinterpret_cast<const __nv_bfloat162*>(&g);
  const __nv_bfloat162* pu = reinterpret_cast<const __nv_bfloat162*>(&u);
  uint4 result;
  __nv_bfloat162* po = reinterpret_cast<__nv_bfloat162*>(&result);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 fg = __bfloat1622float2(pg[i]), fu = __bfloat1622float2(pu[i]);
    // silu(g) = g / (1 + e^-g), rounded to bf16 as torch::silu's output is, then the product
    const float sx = __bfloat162float(__float2bfloat16(fg.x / (1.f + __expf(-fg.x))));
    const float sy = __bfloat162float(__float2bfloat16(fg.y / (1.f + __expf(-fg.y))));
    po[i] = __floats2bfloat162_rn(sx * fu.x, sy * fu.y);
  }
  out[c] = result;
}

}  // namespace

cudaError_t GemvBf16(const uint16_t* w, const uint16_t* x, uint16_t* y, int64_t rows, int64_t cols,
                     cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (cols % 8 != 0) return cudaErrorInvalidValue;
  const auto blocks = static_cast<unsigned>((rows + kRows - 1) / kRows);
  GemvBf16Kernel<<<blocks, kThreads, 0, stream>>>(
      reinterpret_cast<const uint4*>(w), reinterpret_cast<const uint4*>(x),
      reinterpret_cast<__nv_bfloat16*>(y), rows, cols / 8);
  return cudaGetLastError();
}

cudaError_t SwiGluBf16(const uint16_t* h, uint16_t* out, int64_t f, cudaStream_t stream) {
  if (f <= 0) return cudaSuccess;
  if (f % 8 != 0) return cudaErrorInvalidValue;
  const int64_t chunks = f / 8;
  const auto blocks = static_cast<unsigned>((chunks + 255) / 256);
  SwiGluKernel<<<blocks, 256, 0, stream>>>(reinterpret_cast<const uint4*>(h),
                                           reinterpret_cast<uint4*>(out), chunks);
  return cudaGetLastError();
}

}  // namespace isoflop::kernels
