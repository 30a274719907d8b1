// Attention of one decoded position against a key/value cache, with the cache append fused in:
// the batch-1 decode step's attention as one kernel instead of a copy per cache, the scores'
// product, a softmax and the values' product.
//
// For every query head h (kv head g = h / (heads / kv_heads), scaled_dot_product_attention's GQA
// mapping), at the position p read from device memory:
//   K[g][p] = k_g,  V[g][p] = v_g                                     (the append: kv head g's
//                                                                      first query head writes it)
//   out_h = sum_{t <= p} softmax_t(q_h . K[g][t] / sqrt(hs)) V[g][t]
// Positions t < p come from the cache and t = p from k and v themselves, so that no block waits for
// another's append. Arithmetic is float32; q, k, v, the cache and out are bf16.
//
// Plain CUDA (no LibTorch headers): worker/models/decode_ops.cpp wraps it.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace isoflop::kernels {

// q: (heads, hs); k, v: (kv_heads, hs); cache: (2 kv_heads, capacity, hs), K of head g at row
// block g and V at row block kv_heads + g; out: (heads, hs); pos: one int64 in [0, capacity).
// hs % 8 == 0 and hs <= 256; q, k, v, cache 16-byte aligned. Device pointers. Returns the launch's
// error code (cudaSuccess when queued on `stream`).
cudaError_t DecodeAttentionBf16(const uint16_t* q, const uint16_t* k, const uint16_t* v,
                                uint16_t* cache, uint16_t* out, const int64_t* pos, int heads,
                                int kv_heads, int hs, int64_t capacity, cudaStream_t stream);

}  // namespace isoflop::kernels
