#include "worker/runtime/step_graph.h"

#include <ATen/autocast_mode.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/cuda.h>

#include <string>

namespace isoflop {

StepGraph::StepGraph(torch::Device device, std::vector<int64_t> batch_shape)
    : stream_(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index())) {
  const auto options = torch::TensorOptions().device(device);
  batch_ = torch::zeros(batch_shape, options.dtype(torch::kInt64));
  lr_ = torch::zeros({}, options.dtype(torch::kFloat32));
}

Status StepGraph::Capture(const Body& body) {
  // The eager warm-up steps' cached blocks would sit unused beside the graph's private pool.
  torch::cuda::synchronize();
  c10::cuda::CUDACachingAllocator::emptyCache();
  graph_ = std::make_unique<at::cuda::CUDAGraph>();
  const bool cache = at::autocast::is_autocast_cache_enabled();
  at::autocast::set_autocast_cache_enabled(false);
  std::string error;
  {
    c10::cuda::CUDAStreamGuard guard(stream_);
    bool capturing = false;
    try {
      graph_->capture_begin();
      capturing = true;
      std::tie(loss_, grad_norm_) = body(batch_, lr_);
      capturing = false;
      graph_->capture_end();
    } catch (const c10::Error& e) {
      error = e.what_without_backtrace();
      if (capturing) {
        try {
          graph_->capture_end();  // ends the stream's capture and the pool's redirection
        } catch (const c10::Error&) {
        }
      }
    }
  }
  at::autocast::set_autocast_cache_enabled(cache);
  if (!error.empty()) {
    graph_.reset();
    (void)cudaGetLastError();  // capture errors are not sticky; clear the last-error slot
    return Status::Internal("CUDA graph capture of the training step failed: " + error);
  }
  captured_ = true;
  return Status::OK();
}

void StepGraph::Replay(const torch::Tensor& host_batch, double lr, torch::Tensor* loss,
                       torch::Tensor* grad_norm) {
  batch_.copy_(host_batch, /*non_blocking=*/true);
  lr_.fill_(lr);
  graph_->replay();
  *loss = loss_;
  *grad_norm = grad_norm_;
}

}  // namespace isoflop
