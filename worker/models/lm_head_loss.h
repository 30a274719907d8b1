// LmHeadLoss: the language model's last two steps, logits = h W^T and the mean next-token
// cross-entropy, as one autograd function on CUDA (papers.md 1.2's head and loss, unchanged).
//
// Unfused, the (N, V) logits of the head cost most of a small model's memory traffic: autocast
// casts them to float32 for log_softmax, nll_loss keeps the float32 copy, and the backward makes
// two more float32 passes. Fused, the bf16 logits are produced by one cuBLAS product, read once by
// a kernel that writes the loss and, in place, d loss / d logits (kernels/fused_cross_entropy.h),
// and the backward multiplies that gradient into dh = dz W and dW = dz^T h, scaling the two small
// products (not the (N, V) gradient) by the upstream gradient. Same function, same bf16 products as
// autocast's F::linear; the loss is reduced in float32.
//
// Used by LanguageModelImpl::Loss when the hidden state is on a CUDA device in bf16 training
// (autocast to bf16, or bf16 tensors) and the worker was built with its CUDA kernels; everywhere
// else Loss takes the plain path, NextTokenLoss(Unembed(...)), which CPU tests check the fused one
// against on GPUs.
#pragma once

#include <torch/torch.h>

namespace isoflop {

// True when LmHeadLoss can run on tensors of `device` in this build.
bool FusedLmHeadLossAvailable(const torch::Device& device);

// h (N, d) after ln_f, weight (V, d) (lm_head.weight or the tied wte.weight), targets (N) int64
// with -1 for ignored positions -> the mean cross-entropy over counted positions, a float32 scalar.
torch::Tensor LmHeadLoss(const torch::Tensor& h, const torch::Tensor& weight,
                         const torch::Tensor& targets);

}  // namespace isoflop
