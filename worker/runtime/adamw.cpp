#include "worker/runtime/adamw.h"

#include <unordered_set>

namespace isoflop {

AdamW::AdamW(const torch::OrderedDict<std::string, torch::Tensor>& named_parameters,
             const OptimizerSpec& spec)
    : spec_(spec) {
  decayed_.weight_decay = spec.weight_decay;
  std::unordered_set<const void*> seen;
  for (const auto& item : named_parameters) {
    const torch::Tensor& p = item.value();
    if (!p.requires_grad() || !seen.insert(p.unsafeGetTensorImpl()).second) continue;
    Group& group = spec.decay_all || p.dim() >= 2 ? decayed_ : undecayed_;
    group.names.push_back(item.key());
    group.params.push_back(p);
    group.exp_avg.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    group.exp_avg_sq.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    group.steps.push_back(torch::zeros({}, p.options().dtype(torch::kFloat32)));
  }
}

void AdamW::Step(double lr) {
  torch::NoGradGuard no_grad;
  for (Group* group : groups()) StepGroup(*group, lr);
}

void AdamW::Step(const torch::Tensor& lr) {
  torch::NoGradGuard no_grad;
  for (Group* group : groups()) StepGroup(*group, lr);
}

template <typename Lr>
void AdamW::StepGroup(Group& group, const Lr& lr) {
  std::vector<torch::Tensor> params, grads, exp_avg, exp_avg_sq, steps;
  for (size_t i = 0; i < group.params.size(); ++i) {
    const torch::Tensor& grad = group.params[i].grad();
    if (!grad.defined()) continue;
    params.push_back(group.params[i]);
    grads.push_back(grad);
    exp_avg.push_back(group.exp_avg[i]);
    exp_avg_sq.push_back(group.exp_avg_sq[i]);
    steps.push_back(group.steps[i]);
  }
  if (params.empty()) return;
  // The kernel reads the step count after this update (its bias correction 1 - beta^t needs t >=
  // 1); PyTorch's fused AdamW increments it first in the same way.
  torch::_foreach_add_(steps, 1);
  at::_fused_adamw_(params, grads, exp_avg, exp_avg_sq, /*max_exp_avg_sqs=*/{}, steps, lr,
                    spec_.beta1, spec_.beta2, group.weight_decay, spec_.eps, /*amsgrad=*/false,
                    /*maximize=*/false);
}

void AdamW::ZeroGrad() {
  for (Group* group : groups()) {
    for (torch::Tensor& p : group->params) p.mutable_grad().reset();
  }
}

std::vector<std::pair<std::string, torch::Tensor>> AdamW::State() const {
  std::vector<std::pair<std::string, torch::Tensor>> state;
  for (const Group* group : groups()) {
    for (size_t i = 0; i < group->params.size(); ++i) {
      state.emplace_back(group->names[i] + ".exp_avg", group->exp_avg[i]);
      state.emplace_back(group->names[i] + ".exp_avg_sq", group->exp_avg_sq[i]);
      state.emplace_back(group->names[i] + ".step", group->steps[i]);
    }
  }
  return state;
}

}  // namespace isoflop
