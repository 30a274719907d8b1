#include <cuda_bf16.h>

#include <cfloat>

#include "worker/kernels/decode_attention.h"

namespace isoflop::kernels {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxHeadDim = 256;
constexpr int kMaxPairs = kMaxHeadDim / 64;  // bf16 pairs a lane holds in the output pass
// The kernel's static shared memory (qs, partial and scratch below): 9,248 bytes.
constexpr size_t kStaticShared = (kMaxHeadDim + kWarps * kMaxHeadDim + kWarps) * sizeof(float);

// Block-wide reduction of one float (max or sum): every thread gets the result.
template <bool kMax>
__device__ __forceinline__ float BlockReduce(float v, float* scratch) {
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other = __shfl_xor_sync(0xffffffffu, v, offset);
    v = kMax ? fmaxf(v, other) : v + other;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // scratch may still be read from the previous reduction
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = scratch[0];
  for (int i = 1; i < kWarps; ++i) v = kMax ? fmaxf(v, scratch[i]) : v + scratch[i];
  return v;
}

// One block per query head. Scores: thread t takes positions t, t + kThreads, ... and computes the
// whole dot product of each (16-byte loads along the key row). Output: warp w takes positions w,
// w + kWarps, ..., its lanes the channel pairs 2 lane, 2 lane + 64, ... of each value row (one
// coalesced row read a position, four positions in flight); the warps' sums meet in shared memory.
__global__ void __launch_bounds__(kThreads)
    DecodeAttentionKernel(const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
                          const __nv_bfloat16* __restrict__ v, __nv_bfloat16* __restrict__ cache,
                          __nv_bfloat16* __restrict__ out, const int64_t* __restrict__ pos_ptr,
                          int group, int kv_heads, int hs, int64_t capacity) {
  extern __shared__ float scores[];  // (capacity)
  __shared__ float qs[kMaxHeadDim];
  __shared__ float scratch[kWarps];
  const int h = blockIdx.x, g = h / group;
  const int64_t pos = *pos_ptr;
  const __nv_bfloat16* k_new = k + int64_t{g} * hs;
  const __nv_bfloat16* v_new = v + int64_t{g} * hs;
  __nv_bfloat16* k_cache = cache + int64_t{g} * capacity * hs;
  __nv_bfloat16* v_cache = cache + (int64_t{kv_heads} + g) * capacity * hs;

  const float scale = rsqrtf(static_cast<float>(hs));
  for (int j = threadIdx.x; j < hs; j += kThreads) {
    qs[j] = __bfloat162float(q[int64_t{h} * hs + j]) * scale;
    if (h % group == 0) {  // the append, once per kv head; read back by no block of this launch
      k_cache[pos * hs + j] = k_new[j];
      v_cache[pos * hs + j] = v_new[j];
    }
  }
  __syncthreads();

  // s_t = q . K[t] / sqrt(hs) for t <= pos
  float local_max = -FLT_MAX;
  for (int64_t t = threadIdx.x; t <= pos; t += kThreads) {
    const __nv_bfloat16* key = t == pos ? k_new : k_cache + t * hs;
    float s = 0.f;
    for (int j = 0; j < hs; j += 8) {
      const uint4 packed = *reinterpret_cast<const uint4*>(key + j);
      const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&packed);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 f = __bfloat1622float2(pairs[i]);
        s = fmaf(f.x, qs[j + 2 * i], s);
        s = fmaf(f.y, qs[j + 2 * i + 1], s);
      }
    }
    scores[t] = s;
    local_max = fmaxf(local_max, s);
  }
  const float max = BlockReduce<true>(local_max, scratch);
  float local_sum = 0.f;
  for (int64_t t = threadIdx.x; t <= pos; t += kThreads) {
    const float e = __expf(scores[t] - max);
    scores[t] = e;
    local_sum += e;
  }
  const float inv_sum = 1.f / BlockReduce<false>(local_sum, scratch);  // also orders the scores

  // out_h[j] = sum_t p_t V[t][j]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, pairs = hs / 64 + (hs % 64 > 0);
  float2 acc[kMaxPairs] = {};
  auto add_row = [&](const __nv_bfloat16* row, float p) {
#pragma unroll
    for (int i = 0; i < kMaxPairs; ++i) {
      const int c = 2 * lane + 64 * i;
      if (i < pairs && c < hs) {
        const float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(row + c));
        acc[i].x = fmaf(p, f.x, acc[i].x);
        acc[i].y = fmaf(p, f.y, acc[i].y);
      }
    }
  };
  int64_t t = warp;
  for (; t + 3 * kWarps < pos; t += 4 * kWarps) {
#pragma unroll
    for (int u = 0; u < 4; ++u) add_row(v_cache + (t + u * kWarps) * hs, scores[t + u * kWarps]);
  }
  for (; t <= pos; t += kWarps) add_row(t == pos ? v_new : v_cache + t * hs, scores[t]);
  __shared__ float partial[kWarps][kMaxHeadDim];
#pragma unroll
  for (int i = 0; i < kMaxPairs; ++i) {
    const int c = 2 * lane + 64 * i;
    if (i < pairs && c < hs) {
      partial[warp][c] = acc[i].x;
      partial[warp][c + 1] = acc[i].y;
    }
  }
  __syncthreads();
  for (int j = threadIdx.x; j < hs; j += kThreads) {
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) sum += partial[w][j];
    out[int64_t{h} * hs + j] = __float2bfloat16(sum * inv_sum);
  }
}

}  // namespace

cudaError_t DecodeAttentionBf16(const uint16_t* q, const uint16_t* k, const uint16_t* v,
                                uint16_t* cache, uint16_t* out, const int64_t* pos, int heads,
                                int kv_heads, int hs, int64_t capacity, cudaStream_t stream) {
  if (heads <= 0 || kv_heads <= 0 || heads % kv_heads != 0 || hs % 8 != 0 || hs > kMaxHeadDim ||
      capacity <= 0) {
    return cudaErrorInvalidValue;
  }
  const size_t shared = static_cast<size_t>(capacity) * sizeof(float);
  // The default 48 KiB covers the static arrays and the dynamic scores together; past it, opt in
  // to a larger dynamic allocation.
  if (shared + kStaticShared > 48 * 1024) {
    const cudaError_t status =
        cudaFuncSetAttribute(DecodeAttentionKernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(shared));
    if (status != cudaSuccess) return status;
  }
  DecodeAttentionKernel<<<static_cast<unsigned>(heads), kThreads, shared, stream>>>(
      reinterpret_cast<const __nv_bfloat16*>(q), reinterpret_cast<const __nv_bfloat16*>(k),
      reinterpret_cast<const __nv_bfloat16*>(v), reinterpret_cast<__nv_bfloat16*>(cache),
      reinterpret_cast<__nv_bfloat16*>(out), pos, heads / kv_heads, kv_heads, hs, capacity);
  return cudaGetLastError();
}

}  // namespace isoflop::kernels
