// AdamW (Loshchilov & Hutter 2019) with the fused multi-tensor kernel of LibTorch on every device.
//
// torch::optim::AdamW has no `fused` option in C++, so this class keeps the state itself and calls
// at::_fused_adamw_, the kernel behind PyTorch's AdamW(fused=True): one launch per parameter group
// on a GPU instead of several per tensor, and the same code path on the CPU (where the kernel also
// exists), so what the CPU tests check is what GPU runs execute.
//
// Two groups: weight decay applies to matrices (>= 2-D: linear, embedding and structured-factor
// weights) and not to vectors (biases, norm weights, pgpt's mixing logits), GPT-2/nanoGPT's rule;
// `decay_all` puts every parameter in the decayed group (the structured-FFN paper's single group).
// Like PyTorch's, a parameter without a gradient in a step (a self-guided guide that no layer used)
// is skipped: its moments, its step count and its weight decay all stand still.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/run_config.h"

namespace isoflop {

class AdamW {
 public:
  // Parameters by name (Module::named_parameters order; a tensor shared under two names, such as
  // tied embeddings, is taken once). State is allocated next to each parameter.
  AdamW(const torch::OrderedDict<std::string, torch::Tensor>& named_parameters,
        const OptimizerSpec& spec);

  // One update of every parameter that has a gradient, with learning rate `lr`.
  void Step(double lr);
  // The same with the learning rate read from a float32 scalar on the parameters' device when the
  // kernels run: what a captured CUDA graph replays with a new rate each step (the double above
  // would be frozen into the graph).
  void Step(const torch::Tensor& lr);
  // Drops the gradients (set to undefined, not zero: the next backward allocates them fresh, and a
  // parameter the next step does not reach is recognisably gradient-free).
  void ZeroGrad();

  // The state to checkpoint, as live tensors: for every parameter "<name>.exp_avg",
  // "<name>.exp_avg_sq" and "<name>.step" (checkpoint.h writes them and reads them back in place).
  std::vector<std::pair<std::string, torch::Tensor>> State() const;

  int64_t decayed_count() const { return static_cast<int64_t>(decayed_.params.size()); }
  int64_t undecayed_count() const { return static_cast<int64_t>(undecayed_.params.size()); }

 private:
  struct Group {
    double weight_decay = 0;
    std::vector<std::string> names;
    std::vector<torch::Tensor> params;
    std::vector<torch::Tensor> exp_avg;     // first moment, like the parameter
    std::vector<torch::Tensor> exp_avg_sq;  // second moment, like the parameter
    std::vector<torch::Tensor> steps;  // float32 scalar on the parameter's device (the kernel's)
  };
  template <typename Lr>
  void StepGroup(Group& group, const Lr& lr);
  std::vector<Group*> groups() { return {&decayed_, &undecayed_}; }
  std::vector<const Group*> groups() const { return {&decayed_, &undecayed_}; }

  OptimizerSpec spec_;
  Group decayed_;
  Group undecayed_;
};

}  // namespace isoflop
