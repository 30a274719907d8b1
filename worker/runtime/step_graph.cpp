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

namespace {

// Restores autocast's weight-cast cache setting when the capture ends, however it ends.
class AutocastCacheOff {
 public:
  AutocastCacheOff() : was_enabled_(at::autocast::is_autocast_cache_enabled()) {
    at::autocast::set_autocast_cache_enabled(false);
  }
  ~AutocastCacheOff() { at::autocast::set_autocast_cache_enabled(was_enabled_); }
  AutocastCacheOff(const AutocastCacheOff&) = delete;
  AutocastCacheOff& operator=(const AutocastCacheOff&) = delete;

 private:
  bool was_enabled_;
};

}  // namespace

Status StepGraph::Capture(const Body& body) {
  // The eager warm-up steps' cached blocks would sit unused beside the graph's private pool.
  torch::cuda::synchronize();
  c10::cuda::CUDACachingAllocator::emptyCache();
  graph_ = std::make_unique<at::cuda::CUDAGraph>();
  std::string error;
  {
    AutocastCacheOff no_cast_cache;
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
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!error.empty() && capturing) {
      // CUDAGraph::capture_end ends the stream's capture first and throws when the capture was
      // invalidated, before it ends the allocator's redirection into the graph's pool; whatever it
      // left undone is done here, so that later allocations are ordinary again and the pool is
      // freed.
      const auto pool = graph_->pool();
      try {
        graph_->capture_end();
      } catch (const c10::Error&) {
        cudaGraph_t partial = nullptr;
        if (cudaStreamEndCapture(stream_.stream(), &partial) == cudaSuccess && partial != nullptr) {
          cudaGraphDestroy(partial);
        }
        c10::cuda::CUDACachingAllocator::endAllocateToPool(stream_.device_index(), pool);
        c10::cuda::CUDACachingAllocator::releasePool(stream_.device_index(), pool);
      }
    }
  }
  if (!error.empty()) {
    graph_.reset();
    loss_ = grad_norm_ = torch::Tensor();
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
