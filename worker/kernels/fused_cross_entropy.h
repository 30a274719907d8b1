// Fused cross-entropy over bf16 logits: the loss and its gradient in one kernel, the gradient written
// over the logits (llm.c's fused classifier).
//
// For each row i of logits z (N, V), row-major, and its target y_i:
//   loss_i   = logsumexp(z_i) - z_i[y_i]                                  (float, into losses[i])
//   z_i[j]  <- (softmax(z_i)[j] - [j == y_i]) * scale                     (bf16, in place)
// with scale read from device memory (*scale: 1 / the number of counted rows, computed on the device,
// so the launch needs no host synchronisation and can be captured in a CUDA graph). A row whose target
// is negative (ignored, nanoGPT's -1) gets loss 0 and a zero gradient.
//
// Arithmetic is float32 throughout: one pass finds each row's max and sum of exponentials (an online
// softmax over 16-byte loads of 8 logits) and keeps the row in shared memory where it fits (vocab *
// 2 bytes against the block's opt-in limit: 227 KiB on Hopper); a second pass reads it from there
// and writes the gradient. Memory traffic is one read and one write of the logits, against the
// several float32 passes of an unfused log_softmax, nll_loss and their backward. Rows too long for
// shared memory are read twice from global memory (the second time partly from L2).
//
// Plain CUDA (no LibTorch headers): worker/models/lm_head_loss.cpp wraps it for autograd.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace isoflop::kernels {

// logits: (rows, vocab) bf16 (as uint16 bit patterns), row stride `vocab`; targets: (rows) int64 in
// [0, vocab) or negative; losses: (rows) float; scale: one float. All device pointers. Returns the
// launch's error code (cudaSuccess when it was queued on `stream`).
cudaError_t FusedCrossEntropy(uint16_t* logits, const int64_t* targets, float* losses,
                              const float* scale, int64_t rows, int64_t vocab, cudaStream_t stream);

}  // namespace isoflop::kernels
