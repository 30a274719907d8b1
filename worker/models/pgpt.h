// pgpt, ParallelGPT (papers.md 1.3): `paths` independent stacks of n_layer / paths pre-LN blocks,
// each fed by its own input adapter, mixed by learned weights before ln_f.
//
//   x0 = wte(idx) + wpe(t)
//   x_p = path_p(adapter_p(x0))          adapter_p = Linear(d, d) with bias, one per path
//   y = s x_1 + (1 - s) x_2              two paths: s = sigmoid(w), one scalar w initialised to 0.5
//   y = sum_p m_p x_p                    more: m_p = sigmoid(w_p) / sum_q sigmoid(w_q), w_p = 0.5
//   logits = lm_head(ln_f(y))
// For more than two paths the paper's figure draws a "weighted addition" without saying how; the
// normalised sigmoids keep the two-path rule's form: weights in (0, 1), sum 1, equal at init.
//
// Drop-a-path inference ("pgpt-1"): only the path with the largest mixing weight runs and its
// output goes straight to ln_f. The paper's code also skipped ln_f in this mode, a bug this code
// does not reproduce: ln_f is part of the trained head and the logits' scale depends on it.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <vector>

#include "common/model_spec.h"
#include "worker/models/gpt.h"
#include "worker/models/language_model.h"

namespace isoflop {

struct ParallelGptImpl : LanguageModelImpl {
  explicit ParallelGptImpl(const ModelSpec& spec);
  torch::Tensor Body(const torch::Tensor& idx) override;  // (B, T) -> (B, T, d_final)
  // pgpt-1 decoding picks its path here, once: DecodeStep itself stays free of host reads.
  DecodeState NewDecodeState(int64_t capacity) override;

  // (paths): the mixing weight of each path, positive and summing to 1.
  torch::Tensor MixingWeights();
  // pgpt-1: run only the heaviest path. Meant for evaluation of a trained model.
  void set_single_path(bool on) { single_path_ = on; }
  bool single_path() const { return single_path_; }
  // On a CUDA device, run each path on a stream of its own (forked from and joined back into the
  // caller's stream; autograd runs each path's backward on the same stream), so that the paths'
  // kernels can overlap where one path alone leaves the GPU idle. Same arithmetic either way.
  // Applies to training, evaluation and decoding alike.
  void set_path_streams(bool on) { path_streams_ = on; }
  bool path_streams() const { return path_streams_; }

  torch::nn::ModuleList adapters{nullptr};  // `paths` Linear(d, d) with bias
  torch::nn::ModuleList paths{nullptr};     // `paths` ModuleLists of n_layer / paths Blocks
  torch::Tensor mix;                        // (1) for two paths, else (paths): the logits w

 protected:
  torch::Tensor DecodeBody(const torch::Tensor& x0, DecodeState& state) override;

 private:
  using PathFn = std::function<torch::Tensor(int64_t p)>;  // path p's output from the shared x0
  // Every path's output, each path on its own CUDA stream when path_streams() and x0 is on CUDA.
  std::vector<torch::Tensor> RunPaths(const torch::Tensor& x0, const PathFn& path);
  std::vector<torch::Tensor> RunPathsOnStreams(const torch::Tensor& x0, const PathFn& path);
  torch::Tensor RunPath(int64_t p, const torch::Tensor& x0);  // (B, T, d) -> (B, T, d)
  // y = sum_p m_p x_p: (B, T, d) each -> (B, T, d).
  torch::Tensor Mix(const std::vector<torch::Tensor>& outputs);

  bool single_path_ = false;
  bool path_streams_ = false;
};

}  // namespace isoflop
