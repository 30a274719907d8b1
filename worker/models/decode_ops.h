// The operations of a batch-1 decode step on the worker's bandwidth-bound kernels
// (worker/kernels/gemv_bf16.h, decode_attention.h) where they apply, and on LibTorch's operations
// elsewhere; both give the same values up to float32 summation order and bf16 rounding.
//
// Everything here is device work only (no host synchronisation), so a decode step built from it
// can be captured as a CUDA graph.
#pragma once

#include <torch/torch.h>

namespace isoflop {

// Whether the kernels run on `device`: CUDA, in a build with the worker's kernels. Each call
// below also needs bf16 operands, contiguous weights, widths that are multiples of 8 and 16-byte
// aligned data; otherwise it takes the LibTorch path.
bool DecodeKernelsAvailable(const torch::Device& device);

// x (1, in) or (in), w (out, in) -> x W^T (1, out).
torch::Tensor DecodeMatVec(const torch::Tensor& x, const torch::Tensor& w);

// SwiGLU's activation: h (1, 2f) = (gate | up) -> silu(gate) * up (1, f), in one kernel.
torch::Tensor DecodeSwiGlu(const torch::Tensor& h);

// Attention of the one position *pos against `cache`, after appending this position's key and
// value to it: q (1, heads * hs), k and v (1, kv_heads * hs), cache (1, 2 kv_heads, capacity, hs)
// holding K in its first kv_heads heads and V in the rest, pos (1) int64 < capacity ->
// softmax(q K^T / sqrt(hs)) V over positions 0..pos, (1, heads * hs). Query head h reads kv head
// h / (heads / kv_heads), as scaled_dot_product_attention's GQA does.
torch::Tensor DecodeAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, torch::Tensor& cache,
                              const torch::Tensor& pos, int64_t heads, int64_t kv_heads);

}  // namespace isoflop
