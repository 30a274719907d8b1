// What the decode benchmarks share: the device's copy bandwidth (the memory-bound limit a decode
// step is measured against) and the timing of one decode step captured as a CUDA graph.
//
// Batch-1 decoding launches a few hundred small kernels per token; replayed from a graph they are
// not paced by the host, so the time measured is the GPU's own. The step must be a function of
// device state only (no host reads), as CUDA graph capture requires.
#pragma once

#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/torch.h>

#include <cstdint>
#include <functional>

namespace isoflop::bench {

// Device-to-device copy bandwidth of `device`: bytes read + written per second over a 4 GiB copy
// (METHOD.md's convention).
inline double CopyBandwidth(const torch::Device& device) {
  const torch::Tensor a = torch::randn({int64_t{1} << 30}, torch::TensorOptions().device(device));
  torch::Tensor b = torch::empty_like(a);
  for (int i = 0; i < 3; ++i) b.copy_(a);
  at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
  start.record();
  for (int i = 0; i < 10; ++i) b.copy_(a);
  stop.record();
  stop.synchronize();
  return 10.0 * 2.0 * static_cast<double>(a.nbytes()) / (start.elapsed_time(stop) / 1e3);
}

// Steps per second of `step` replayed from a CUDA graph: three eager warm-up steps (they allocate
// what the step keeps, as PyTorch's capture recipe asks), one captured, `reset` (e.g. the position
// back to 0), eight untimed replays, `reset`, then `steps` timed replays.
inline double ReplayedStepsPerSecond(const std::function<void()>& step,
                                     const std::function<void()>& reset, int64_t steps,
                                     const torch::Device& device) {
  at::cuda::CUDAGraph graph;
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, device.index());
  {
    c10::cuda::CUDAStreamGuard guard(side);
    for (int i = 0; i < 3; ++i) step();
    torch::cuda::synchronize();
    graph.capture_begin();
    step();
    graph.capture_end();
  }
  reset();
  for (int i = 0; i < 8; ++i) graph.replay();
  reset();
  at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
  start.record();
  for (int64_t i = 0; i < steps; ++i) graph.replay();
  stop.record();
  stop.synchronize();
  return static_cast<double>(steps) / (start.elapsed_time(stop) / 1e3);
}

}  // namespace isoflop::bench
