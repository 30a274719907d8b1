// Helpers of the worker model tests: tiny specs, building, random batches, a short AdamW run.
#pragma once

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <utility>

#include "common/model_spec.h"
#include "worker/models/language_model.h"
#include "worker/models/model_registry.h"

namespace isoflop::testing {

// Two blocks, d 32, 4 heads, V 64, T 16: small enough for a few hundred CPU steps per variant.
inline ModelSpec TinySpec(Arch arch = Arch::kGpt) {
  ModelSpec s;
  s.arch = arch;
  s.n_layer = 2;
  s.d_model = 32;
  s.n_head = 4;
  s.vocab_size = 64;
  s.seq_len = 16;
  return s;
}

inline std::shared_ptr<LanguageModelImpl> Build(const ModelSpec& spec, uint64_t seed = 1) {
  Result<std::shared_ptr<LanguageModelImpl>> model = BuildModel(spec, seed);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? *model : nullptr;
}

// Tokens uniform in [0, V), from their own generator so that tests do not share RNG state.
inline torch::Tensor RandomTokens(int64_t batch, int64_t time, int64_t vocab, uint64_t seed) {
  torch::Generator gen = at::detail::createCPUGenerator(seed);
  return torch::randint(vocab, {batch, time}, gen, torch::kInt64);
}

// The learning rate for fitting one batch: norm-free skipless stacks need smaller steps than pre-LN
// ones (papers.md 2.6), since every weight's update multiplies through all later blocks.
inline double OverfitLearningRate(const ModelSpec& spec) {
  return spec.arch == Arch::kSkipless ? 3e-3 : 1e-2;
}
// ... and more steps at that lower rate: 120 left the serial MQA model at 1.69 nats on one CPU
// (Intel Xeon) and under 1.5 on another (AMD EPYC), float32 rounding differing between their
// kernels.
inline int OverfitSteps(const ModelSpec& spec) {
  return spec.arch == Arch::kSkipless ? 200 : 120;
}

// Trains on one fixed batch (inputs idx[:, :-1], targets idx[:, 1:]) with AdamW; returns the loss
// before the first step and after the last.
inline std::pair<double, double> OverfitOneBatch(LanguageModelImpl& model, const torch::Tensor& idx,
                                                 int steps, double lr) {
  model.train();
  const torch::Tensor input = idx.slice(1, 0, idx.size(1) - 1);
  const torch::Tensor target = idx.slice(1, 1);
  torch::optim::AdamW opt(model.parameters(), torch::optim::AdamWOptions(lr).weight_decay(0.0));
  double first = 0.0, last = 0.0;
  for (int step = 0; step <= steps; ++step) {
    const torch::Tensor loss = NextTokenLoss(model.forward(input), target);
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
    if (step == steps) break;
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  return {first, last};
}

// ||a - b|| / ||b||.
inline double RelativeError(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).norm() / b.norm()).item<double>();
}

}  // namespace isoflop::testing
