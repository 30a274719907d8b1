#include "worker/models/pgpt.h"

#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace isoflop {

ParallelGptImpl::ParallelGptImpl(const ModelSpec& spec) : LanguageModelImpl(spec) {
  const int64_t d = spec.d_model, per_path = spec.n_layer / spec.paths;
  adapters = register_module("adapters", torch::nn::ModuleList());
  paths = register_module("paths", torch::nn::ModuleList());
  for (int64_t p = 0; p < spec.paths; ++p) {
    adapters->push_back(torch::nn::Linear(torch::nn::LinearOptions(d, d).bias(true)));
    torch::nn::ModuleList path;
    for (int64_t j = 0; j < per_path; ++j)
      path->push_back(Block(spec, spec.block(p * per_path + j)));
    paths->push_back(path);
  }
  mix = register_parameter("mix", torch::full({spec.paths == 2 ? 1 : spec.paths}, 0.5));
}

torch::Tensor ParallelGptImpl::MixingWeights() {
  if (spec_.paths == 2) {
    const torch::Tensor s = torch::sigmoid(mix);  // (1): s = sigmoid(w)
    return torch::cat({s, 1 - s});                // (2): [s, 1 - s]
  }
  const torch::Tensor s = torch::sigmoid(mix);  // (paths)
  return s / s.sum();                           // sigmoid(w_p) / sum_q sigmoid(w_q)
}

torch::Tensor ParallelGptImpl::RunPath(int64_t p, const torch::Tensor& x0) {
  const torch::Tensor x = adapters[p]->as<torch::nn::LinearImpl>()->forward(x0);  // adapter_p(x0)
  return RunBlocks(*paths[p]->as<torch::nn::ModuleListImpl>(), x);
}

std::vector<torch::Tensor> ParallelGptImpl::RunPaths(const torch::Tensor& x0, const PathFn& path) {
  if (path_streams_ && x0.is_cuda()) return RunPathsOnStreams(x0, path);
  std::vector<torch::Tensor> outputs;
  for (int64_t p = 0; p < spec_.paths; ++p) outputs.push_back(path(p));
  return outputs;
}

std::vector<torch::Tensor> ParallelGptImpl::RunPathsOnStreams(const torch::Tensor& x0,
                                                              const PathFn& path) {
  const c10::DeviceIndex device = x0.device().index();
  const c10::cuda::CUDAStream origin = c10::cuda::getCurrentCUDAStream(device);
  at::cuda::CUDAEvent forked;
  forked.record(origin);  // x0 and everything before it are ready
  std::vector<torch::Tensor> outputs;
  for (int64_t p = 0; p < spec_.paths; ++p) {
    const c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool(false, device);
    forked.block(stream);
    {
      c10::cuda::CUDAStreamGuard guard(stream);
      outputs.push_back(path(p));
    }
    // x0 was allocated on the caller's stream and is read on this one (the caching allocator must
    // not reuse it before), and the output is the reverse.
    x0.record_stream(stream.unwrap());
    at::cuda::CUDAEvent done;
    done.record(stream);
    done.block(origin);
    outputs.back().record_stream(origin.unwrap());
  }
  return outputs;
}

torch::Tensor ParallelGptImpl::Mix(const std::vector<torch::Tensor>& outputs) {
  const torch::Tensor weights = MixingWeights();  // (paths)
  torch::Tensor y;
  for (int64_t p = 0; p < spec_.paths; ++p) {
    const torch::Tensor term = weights[p] * outputs[p];  // m_p x_p
    y = y.defined() ? y + term : term;                   // (B, T, d)
  }
  return y;
}

torch::Tensor ParallelGptImpl::Body(const torch::Tensor& idx) {
  const torch::Tensor x0 = Embed(idx);  // (B, T) -> (B, T, d)
  if (single_path_) return RunPath(MixingWeights().argmax().item<int64_t>(), x0);
  return Mix(RunPaths(x0, [&](int64_t p) { return RunPath(p, x0); }));  // (B, T, d_final)
}

DecodeState ParallelGptImpl::NewDecodeState(int64_t capacity) {
  DecodeState state = LanguageModelImpl::NewDecodeState(capacity);
  if (single_path_) state.path = MixingWeights().argmax().item<int64_t>();
  return state;
}

torch::Tensor ParallelGptImpl::DecodeBody(const torch::Tensor& x0, DecodeState& state) {
  const int64_t per_path = spec_.n_layer / spec_.paths;
  auto path = [&](int64_t p) {  // adapter_p, then path p's blocks through their caches
    const torch::Tensor x = adapters[p]->as<torch::nn::LinearImpl>()->forward(x0);
    return DecodeBlocks(*paths[p]->as<torch::nn::ModuleListImpl>(), x,
                        state.caches.data() + p * per_path, state.at);  // (B, 1, d)
  };
  if (state.path >= 0) return path(state.path);  // pgpt-1
  return Mix(RunPaths(x0, path));                // (B, 1, d_final)
}

}  // namespace isoflop
