#include "worker/kernels/fused_cross_entropy.h"

#include <cuda_bf16.h>

#include <cfloat>

namespace isoflop::kernels {

namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;

// (max, sum of exp(x - max)) pairs combine associatively: the online-softmax reduction.
struct MaxSum {
  float max;
  float sum;
};

__device__ __forceinline__ MaxSum Combine(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.max, b.max);
  if (m == -INFINITY) return {m, 0.f};
  return {m, a.sum * __expf(a.max - m) + b.sum * __expf(b.max - m)};
}

__device__ __forceinline__ MaxSum BlockReduce(MaxSum v) {
  __shared__ MaxSum warp_results[kWarps];
  for (int offset = 16; offset > 0; offset /= 2) {
    MaxSum other{__shfl_xor_sync(0xffffffffu, v.max, offset),
                 __shfl_xor_sync(0xffffffffu, v.sum, offset)};
    v = Combine(v, other);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_results[warp] = v;
  __syncthreads();
  v = lane < kWarps ? warp_results[lane] : MaxSum{-INFINITY, 0.f};
  for (int offset = 16; offset > 0; offset /= 2) {
    MaxSum other{__shfl_xor_sync(0xffffffffu, v.max, offset),
                 __shfl_xor_sync(0xffffffffu, v.sum, offset)};
    v = Combine(v, other);
  }
  return v;  // every thread holds the row's result
}

// One block per row. kVector: the row starts on a 16-byte boundary and vocab % 8 == 0, so each
// thread moves 8 logits per 16-byte load and store. kCached (with kVector): pass 1 also keeps the
// row in shared memory (vocab * 2 bytes, dynamic), and pass 2 reads it from there. Without the
// cache pass 2 reads the row from L2 if it is still there; with some 500 rows of 100 KB in flight
// (GPT-2's vocabulary) it mostly is not, and the kernel moves three row-sized passes, not two.
template <bool kVector, bool kCached>
__global__ void __launch_bounds__(kThreads)
    FusedCrossEntropyKernel(__nv_bfloat16* logits, const int64_t* targets, float* losses,
                            const float* scale, int64_t vocab) {
  static_assert(kVector || !kCached, "the row cache holds 16-byte chunks");
  extern __shared__ uint4 row_cache[];  // (vocab / 8) chunks of 8 logits, when kCached
  const int64_t row = blockIdx.x;
  __nv_bfloat16* z = logits + row * vocab;
  const int64_t target = targets[row];

  // Pass 1: max and sum of exponentials, online (Milakov & Gimelshein 2018).
  MaxSum local{-INFINITY, 0.f};
  if constexpr (kVector) {
#pragma unroll 4
    for (int64_t i = int64_t{threadIdx.x} * 8; i < vocab; i += int64_t{kThreads} * 8) {
      const uint4 packed = *reinterpret_cast<const uint4*>(z + i);
      if constexpr (kCached) row_cache[i / 8] = packed;
      const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&packed);
      float x[8];
      float m = local.max;
      for (int k = 0; k < 4; ++k) {
        const float2 f = __bfloat1622float2(pairs[k]);
        x[2 * k] = f.x;
        x[2 * k + 1] = f.y;
        m = fmaxf(m, fmaxf(f.x, f.y));
      }
      float s = local.max == -INFINITY ? 0.f : local.sum * __expf(local.max - m);
      for (int k = 0; k < 8; ++k) s += __expf(x[k] - m);
      local = {m, s};
    }
  } else {
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
      local = Combine(local, MaxSum{__bfloat162float(z[i]), 1.f});
    }
  }
  const MaxSum total = BlockReduce(local);
  const float lse = total.max + __logf(total.sum);

  // The target's logit, read before pass 2 overwrites it.
  const bool counted = target >= 0 && target < vocab;
  __shared__ float target_logit;
  if (threadIdx.x == 0) target_logit = counted ? __bfloat162float(z[target]) : 0.f;
  __syncthreads();
  if (threadIdx.x == 0) losses[row] = counted ? lse - target_logit : 0.f;

  // Pass 2: d loss / d z_j = (softmax_j - [j == target]) * scale. A thread reads back from the
  // cache only the chunks it wrote itself.
  const float g = counted ? *scale : 0.f;
  if constexpr (kVector) {
#pragma unroll 4
    for (int64_t i = int64_t{threadIdx.x} * 8; i < vocab; i += int64_t{kThreads} * 8) {
      uint4 packed = kCached ? row_cache[i / 8] : *reinterpret_cast<const uint4*>(z + i);
      __nv_bfloat162* pairs = reinterpret_cast<__nv_bfloat162*>(&packed);
      for (int k = 0; k < 4; ++k) {
        const float2 f = __bfloat1622float2(pairs[k]);
        float a = __expf(f.x - lse), b = __expf(f.y - lse);
        if (i + 2 * k == target) a -= 1.f;
        if (i + 2 * k + 1 == target) b -= 1.f;
        pairs[k] = __floats2bfloat162_rn(a * g, b * g);
      }
      *reinterpret_cast<uint4*>(z + i) = packed;
    }
  } else {
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
      const float p = __expf(__bfloat162float(z[i]) - lse) - (i == target ? 1.f : 0.f);
      z[i] = __float2bfloat16_rn(p * g);
    }
  }
}

// The row cache's bytes, or 0 when a row does not fit the shared memory a block may opt into.
int64_t RowCacheBytes(int64_t vocab, cudaStream_t stream) {
  int device = 0, optin = 0;
  // The stream's device, not necessarily the current one.
  if (cudaStreamGetDevice(stream, &device) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) !=
      cudaSuccess) {
    return 0;
  }
  // Room for BlockReduce's and the target's static shared memory (under 1 KiB).
  const int64_t bytes = vocab * 2;
  return bytes + 1024 <= optin ? bytes : 0;
}

}  // namespace

cudaError_t FusedCrossEntropy(uint16_t* logits, const int64_t* targets, float* losses,
                              const float* scale, int64_t rows, int64_t vocab, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  auto* z = reinterpret_cast<__nv_bfloat16*>(logits);
  const auto blocks = static_cast<unsigned>(rows);
  const bool vector = vocab % 8 == 0 && reinterpret_cast<uintptr_t>(logits) % 16 == 0;
  const int64_t cache_bytes = vector ? RowCacheBytes(vocab, stream) : 0;
  if (cache_bytes > 0) {
    auto* kernel = FusedCrossEntropyKernel<true, true>;
    // Above 48 KiB a block's dynamic shared memory is opt-in, per kernel. Host-side attributes,
    // not stream work: allowed while a graph is being captured.
    cudaError_t status = cudaFuncSetAttribute(
        kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(cache_bytes));
    if (status != cudaSuccess) return status;
    status = cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                  cudaSharedmemCarveoutMaxShared);
    if (status != cudaSuccess) return status;
    kernel<<<blocks, kThreads, static_cast<size_t>(cache_bytes), stream>>>(z, targets, losses,
                                                                           scale, vocab);
  } else if (vector) {
    FusedCrossEntropyKernel<true, false><<<blocks, kThreads, 0, stream>>>(z, targets, losses,
                                                                          scale, vocab);
  } else {
    FusedCrossEntropyKernel<false, false><<<blocks, kThreads, 0, stream>>>(z, targets, losses,
                                                                           scale, vocab);
  }
  return cudaGetLastError();
}

}  // namespace isoflop::kernels
