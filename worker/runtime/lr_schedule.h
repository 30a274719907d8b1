// LrSchedule: the learning rate of every optimizer step, as a pure function of the step.
//
// Linear warmup from lr / W to lr over the first W steps, then one of four decays to min_lr * lr:
//   cosine    min + (1 - min) * (1 + cos(pi p)) / 2
//   linear    1 - (1 - min) * p
//   constant  1 (min_lr unused)
//   wsd       warmup-stable-decay: 1 until the last decay_fraction of the run, then linear to min
// where p in (0, 1] is the fraction of the post-warmup steps done *after* this update. Counting the
// update itself (step + 1) is nanoGPT's habit for warmup, applied to the decay as well: the first
// update already moves the weights, and the last one uses exactly min_lr * lr.
#pragma once

#include <cstdint>

#include "common/run_config.h"
#include "common/status.h"

namespace isoflop {

class LrSchedule {
 public:
  // InvalidArgument, naming the train.schedule field, unless warmup >= 0, 0 <= min_lr <= 1,
  // 0 <= decay_fraction <= 1 and total_steps >= 1.
  static Result<LrSchedule> Create(const ScheduleSpec& spec, double peak_lr, int64_t total_steps);

  // The learning rate of optimizer step `step`, 0 <= step < total_steps.
  double At(int64_t step) const { return peak_lr_ * Scale(step); }
  // At(step) / peak: in (0, 1].
  double Scale(int64_t step) const;

  // spec.warmup * total_steps rounded when warmup < 1, else warmup itself; at most total_steps.
  int64_t warmup_steps() const { return warmup_steps_; }
  // wsd: the first step of the final linear decay (never inside the warmup); total_steps otherwise.
  int64_t decay_start() const { return decay_start_; }
  int64_t total_steps() const { return total_steps_; }

 private:
  LrSchedule(const ScheduleSpec& spec, double peak_lr, int64_t total_steps);

  ScheduleSpec spec_;
  double peak_lr_;
  int64_t total_steps_;
  int64_t warmup_steps_;
  int64_t decay_start_;
};

}  // namespace isoflop
