#include "worker/runtime/training_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "common/accountant.h"

namespace isoflop {

int64_t DefaultGpuMicroTokens(const ModelSpec& spec, int64_t memory_bytes) {
  const ParamCount params = Accountant::Params(spec);
  const double state_bytes = 16.0 * static_cast<double>(params.total + params.guide);
  const double activation_bytes = 0.5 * (static_cast<double>(memory_bytes) - state_bytes);
  const double per_token = 34.0 * static_cast<double>(spec.n_layer * spec.d_model) +
                           10.0 * static_cast<double>(spec.vocab_size);
  const double tokens = std::floor(activation_bytes / per_token);
  return std::max<int64_t>(spec.seq_len, tokens > 0 ? static_cast<int64_t>(tokens) : 0);
}

double TrainingPlan::FlopsAfter(int64_t steps) const {
  const double tokens = static_cast<double>(TokensAfter(steps));
  const double guided_tokens = static_cast<double>(TokensAfter(std::min(steps, guided_steps)));
  return flops_per_token * tokens + guide_flops_per_token * guided_tokens;
}

namespace {

// Steps between two events that happen every `tokens` tokens; at least one step.
int64_t StepsPer(double tokens, int64_t batch_tokens) {
  return std::max<int64_t>(1, std::llround(tokens / static_cast<double>(batch_tokens)));
}

}  // namespace

Result<TrainingPlan> PlanTraining(const RunConfig& run, DataSlice slice, int64_t max_micro_tokens) {
  const TrainSpec& train = run.train;
  TrainingPlan plan;
  plan.seq_len = run.model.seq_len;
  plan.batch_tokens = train.batch_tokens;
  plan.slice = slice;
  if (plan.seq_len <= 0) {
    return Status::InvalidArgument(fmt::format("model.seq_len: {} is not positive", plan.seq_len));
  }
  if (slice.world < 1 || slice.rank < 0 || slice.rank >= slice.world) {
    return Status::InvalidArgument(
        fmt::format("rank {} of a world of {} does not exist", slice.rank, slice.world));
  }
  if (plan.batch_tokens <= 0 || plan.batch_tokens % plan.seq_len != 0) {
    return Status::InvalidArgument(
        fmt::format("train.batch_tokens: {} is not a positive multiple of model.seq_len {}",
                    plan.batch_tokens, plan.seq_len));
  }
  plan.sequences_per_step = plan.batch_tokens / plan.seq_len;
  if (plan.sequences_per_step % slice.world != 0) {
    return Status::InvalidArgument(
        fmt::format("train.batch_tokens: {} sequences per step do not split over {} ranks",
                    plan.sequences_per_step, slice.world));
  }
  const int64_t rank_sequences = plan.sequences_per_step / slice.world;
  if (train.micro_batch < 0) {
    return Status::InvalidArgument(
        fmt::format("train.micro_batch: {} is negative", train.micro_batch));
  }
  if (train.micro_batch > 0) {
    if (rank_sequences % train.micro_batch != 0) {
      return Status::InvalidArgument(fmt::format(
          "train.micro_batch: {} does not divide the {} sequences of {} tokens that "
          "train.batch_tokens "
          "{} gives each of {} rank(s) per step",
          train.micro_batch, rank_sequences, plan.seq_len, plan.batch_tokens, slice.world));
    }
    plan.micro_batch = train.micro_batch;
  } else {
    const int64_t fit = std::max<int64_t>(1, max_micro_tokens / plan.seq_len);
    plan.micro_batch = 1;
    for (int64_t b = std::min(fit, rank_sequences); b >= 1; --b) {
      if (rank_sequences % b == 0) {
        plan.micro_batch = b;
        break;
      }
    }
  }
  plan.micro_steps = rank_sequences / plan.micro_batch;

  plan.total_steps = run.budget.steps;
  if (plan.total_steps < 1) {
    return Status::InvalidArgument(
        fmt::format("budget.steps: {} (the run has nothing to train)", plan.total_steps));
  }
  const SelfGuidedSpec& guided = run.model.self_guided;
  const TrainingCost cost = Accountant::Training(run.model);
  plan.alpha_schedule = guided.schedule;
  plan.unique_steps = plan.total_steps;
  switch (guided.mode) {
    case SelfGuidedMode::kOff:
      break;
    case SelfGuidedMode::kFixedStep:
      plan.guided_steps = std::llround(cost.ratio * static_cast<double>(plan.total_steps));
      break;
    case SelfGuidedMode::kFixedFlop:
      plan.guided_steps =
          std::llround(static_cast<double>(plan.total_steps) * cost.ratio / (1.0 + cost.ratio));
      plan.unique_steps = plan.total_steps - plan.guided_steps;
      plan.repeats_guided_data = true;
      break;
  }
  if (plan.guided_steps < 0 || plan.guided_steps > plan.unique_steps) {
    return Status::InvalidArgument(
        fmt::format("model.self_guided.ratio: {} asks for {} guided steps, more than the run's {} "
                    "steps of fresh "
                    "data",
                    cost.ratio, plan.guided_steps, plan.unique_steps));
  }

  if (train.log_every < 1) {
    return Status::InvalidArgument(
        fmt::format("train.log_every: {} is not a positive step count", train.log_every));
  }
  if (train.checkpoint_every_tokens < 0 || run.eval.every_tokens < 0) {
    return Status::InvalidArgument(
        "train.checkpoint_every_tokens and eval.every_tokens must not be negative");
  }
  plan.log_every = train.log_every;
  plan.checkpoint_every = train.checkpoint_every_tokens > 0
                              ? StepsPer(train.checkpoint_every_tokens, plan.batch_tokens)
                              : std::max<int64_t>(1, (plan.total_steps + 9) / 10);
  plan.eval_every =
      run.eval.every_tokens > 0 ? StepsPer(run.eval.every_tokens, plan.batch_tokens) : 0;

  const FlopCount flops = Accountant::Flops(run.model);
  plan.flops_per_token = static_cast<double>(flops.train());
  plan.guide_flops_per_token =
      plan.guided_steps > 0 ? 3.0 * cost.mean_alpha * static_cast<double>(flops.guide_forward) : 0;
  return plan;
}

}  // namespace isoflop
