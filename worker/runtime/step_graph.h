// StepGraph: one optimizer step, captured once as a CUDA graph and replayed for every later step.
//
// An eager step of a small model is launch-bound: hundreds of kernels (every micro-batch's forward
// and backward, the gradient norm, AdamW) each cost the host a few microseconds to launch, often
// more than the GPU needs to run them. Replaying a captured graph launches them all with one call.
// The step's inputs are copied into tensors the graph owns (the token batch, the learning rate) and
// its outputs (loss, gradient norm) are tensors the graph writes; everything else it touches
// (parameters, AdamW moments and step counts) lives at fixed addresses already.
//
// PyTorch's recipe for whole-network capture, followed here: a few eager steps on a side stream
// first (lazy initialisation: cuBLAS workspaces, autograd's device threads), then capture on that
// stream with autocast's weight-cast cache off (a cached cast would be baked into the graph and go
// stale when the weights change), then replays on the caller's stream, so that evaluations and
// checkpoints queued there are ordered with the steps without further synchronisation. Gradients
// are allocated, consumed and released inside the step, so they live in the graph's private memory
// pool and nothing outside the graph ever refers to them.
//
// What a step may do to be captured: no host synchronisation, no shape that changes between steps,
// no host-side value that changes between steps other than those passed through the graph's
// inputs, no random numbers. The trainer uses a graph only for such steps (single process, no
// self-guided training, CUDA) and falls back to eager steps if capture fails.
#pragma once

#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "common/status.h"

namespace isoflop {

class StepGraph {
 public:
  // The step: reads `batch` (int64, the static input of batch_shape) and `lr` (a float32 scalar) on
  // the device and returns the step's (loss, gradient norm) device scalars.
  using Body = std::function<std::pair<torch::Tensor, torch::Tensor>(const torch::Tensor& batch,
                                                                     const torch::Tensor& lr)>;

  StepGraph(torch::Device device, std::vector<int64_t> batch_shape);

  // The stream that warm-up steps run on (before Capture) and the graph is captured on.
  c10::cuda::CUDAStream stream() const { return stream_; }

  // Captures `body` (nothing runs: the first Replay performs the captured step). Internal, with
  // the CUDA error, when capture fails; the graph is then unusable and the caller steps eagerly.
  Status Capture(const Body& body);
  bool captured() const { return captured_; }

  // One step: copies host_batch (pinned int64 of batch_shape) and lr into the graph's inputs and
  // replays it on the current stream. loss and grad_norm are the graph's outputs, overwritten by
  // the next replay.
  void Replay(const torch::Tensor& host_batch, double lr, torch::Tensor* loss,
              torch::Tensor* grad_norm);

 private:
  c10::cuda::CUDAStream stream_;
  torch::Tensor batch_;  // batch_shape, int64, device
  torch::Tensor lr_;     // (), float32, device
  torch::Tensor loss_, grad_norm_;
  std::unique_ptr<at::cuda::CUDAGraph> graph_;
  bool captured_ = false;
};

}  // namespace isoflop
