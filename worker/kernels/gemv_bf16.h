// Matrix-vector product for batch-1 decoding: y = W x with bf16 W (rows, cols) row-major, bf16 x
// (cols) and y (rows), float32 accumulation.
//
// A decode step is memory-bound: each weight is read once per token and used for one multiply-add,
// so the speed limit is the rate at which W streams from HBM. The kernel gives every block 4 rows,
// whose 256 threads stride over the columns together, each reading 16-byte chunks (8 weights) of
// all 4 rows, 2 chunks a row per iteration: 8 independent loads in flight a thread, and enough
// blocks to fill the GPU even for a matrix of a thousand rows. W is read with streaming loads that
// skip L1; x (a few KiB) through the read-only cache.
//
// Plain CUDA (no LibTorch headers): worker/models/decode_ops.cpp wraps it.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace isoflop::kernels {

// w: (rows, cols) bf16 bit patterns, row stride `cols`; x: (cols); y: (rows). Device pointers, all
// 16-byte aligned, cols % 8 == 0. Returns the launch's error code (cudaSuccess when queued).
cudaError_t GemvBf16(const uint16_t* w, const uint16_t* x, uint16_t* y, int64_t rows, int64_t cols,
                     cudaStream_t stream);

// SwiGLU's activation between the FFN's two products, in one kernel instead of two:
// out[j] = silu(h[j]) * h[f + j] for h (2f) = (gate | up), out (f), rounded as torch::silu and the
// multiply round (bf16 after each). f % 8 == 0, both 16-byte aligned. (Folding the activation into
// the second product's input reads was measured slower: every block of 4 rows recomputed it.)
cudaError_t SwiGluBf16(const uint16_t* h, uint16_t* out, int64_t f, cudaStream_t stream);

}  // namespace isoflop::kernels
