#include "worker/models/pgpt.h"

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

torch::Tensor ParallelGptImpl::Body(const torch::Tensor& idx) {
  const torch::Tensor x0 = Embed(idx);  // (B, T) -> (B, T, d)
  auto run_path = [&](int64_t p) {      // (B, T, d) -> (B, T, d)
    const torch::Tensor x = adapters[p]->as<torch::nn::LinearImpl>()->forward(x0);
    return RunBlocks(*paths[p]->as<torch::nn::ModuleListImpl>(), x);
  };
  const torch::Tensor weights = MixingWeights();  // (paths)
  if (single_path_) return run_path(weights.argmax().item<int64_t>());
  torch::Tensor y;
  for (int64_t p = 0; p < spec_.paths; ++p) {
    const torch::Tensor term = weights[p] * run_path(p);  // m_p x_p
    y = y.defined() ? y + term : term;                    // (B, T, d)
  }
  return y;  // (B, T, d_final)
}

}  // namespace isoflop
