// TrainingPlan: how a RunConfig turns into optimizer steps, micro-batches, self-guided phases and
// FLOP counts. Pure arithmetic (no LibTorch), so every rule here has a unit test.
//
// Batches. One optimizer step consumes train.batch_tokens tokens: sequences_per_step windows of
// seq_len tokens over all ranks, each rank taking its share in micro-batches of micro_batch
// sequences, micro_steps of them accumulated per step. Every division must be exact: a run never
// trains on a batch other than the one it was planned (and its FLOPs accounted) for.
//
// Default micro-batch (train.micro_batch = 0): the largest divisor of the rank's sequences per step
// whose tokens fit in max_micro_tokens: 16k tokens on CPU (larger micro-batches stop paying off
// there, and it bounds memory), and on a GPU what DefaultGpuMicroTokens estimates fits in its
// memory.
//
// Self-guided training (papers.md 3.4). alpha decays over the first G = guided_steps steps, then
// the guides are off. fixedstep: G = round(rho M) within the run's M = budget.steps steps.
// fixedflop: the run has M + G = budget.steps steps, G = round(steps rho / (1 + rho)), and the
// steps from M on repeat the data of steps 0 .. G-1; the LR schedule spans all M + G steps.
//
// FLOPs (system.md section 6): every processed token costs 3 F_fwd, plus 3 mean_alpha F_guide while
// the guides are on, the accountant's expected cost (accountant.h), so FlopsAfter(total_steps) is
// the run's planned training FLOPs.
#pragma once

#include <cstdint>

#include "common/model_spec.h"
#include "common/run_config.h"
#include "common/status.h"

namespace isoflop {

// The part of the data a data-parallel rank reads: rank of world.
struct DataSlice {
  int64_t rank = 0;
  int64_t world = 1;
};

inline constexpr int64_t kCpuMaxMicroTokens = 16384;

// Tokens per micro-batch that bf16 training of `spec` should fit in `memory_bytes` of GPU memory:
// weights, gradients and AdamW moments (16 bytes per parameter, fp32) off the top, then half of the
// rest for activations at about (34 L d + 10 V) bytes per token per the activation estimate of
// Korthikanti et al. 2022 (34 s b h bytes per layer without the attention matrix, which fused
// attention does not store) plus bf16 logits with their fp32 loss and gradient. At least seq_len.
int64_t DefaultGpuMicroTokens(const ModelSpec& spec, int64_t memory_bytes);

struct TrainingPlan {
  int64_t seq_len = 0;
  int64_t batch_tokens = 0;        // per optimizer step, all ranks
  int64_t sequences_per_step = 0;  // batch_tokens / seq_len, all ranks
  int64_t micro_batch = 0;         // sequences per forward pass, per rank
  int64_t micro_steps = 0;         // forward/backward passes per optimizer step, per rank
  DataSlice slice;

  int64_t total_steps = 0;   // budget.steps, fixedflop's repeated steps included
  int64_t unique_steps = 0;  // M: steps that read fresh data
  int64_t guided_steps = 0;  // G: steps 0 .. G-1 use the guides (alpha > 0)
  AlphaSchedule alpha_schedule = AlphaSchedule::kCosine;
  // fixedflop: step M rewinds the data to the start, so step M + i trains on step i's data.
  bool repeats_guided_data = false;

  int64_t log_every = 1;         // steps between train records (and the last step)
  int64_t checkpoint_every = 1;  // steps between checkpoints (and the last step)
  int64_t eval_every = 0;        // steps between evaluations; 0: only at the end

  double flops_per_token = 0;        // 3 F_fwd: training FLOPs per processed token
  double guide_flops_per_token = 0;  // 3 mean_alpha F_guide: extra per token while guided

  int64_t TokensAfter(int64_t steps) const { return steps * batch_tokens; }
  // Training FLOPs of the first `steps` optimizer steps, all ranks.
  double FlopsAfter(int64_t steps) const;
};

// InvalidArgument naming the config field when the batch does not divide into whole sequences,
// ranks and micro-batches, or the budget has no steps. `max_micro_tokens` bounds the default
// micro-batch (kCpuMaxMicroTokens, or DefaultGpuMicroTokens).
Result<TrainingPlan> PlanTraining(const RunConfig& run, DataSlice slice, int64_t max_micro_tokens);

}  // namespace isoflop
