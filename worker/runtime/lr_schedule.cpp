#include "worker/runtime/lr_schedule.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numbers>

namespace isoflop {

Result<LrSchedule> LrSchedule::Create(const ScheduleSpec& spec, double peak_lr,
                                      int64_t total_steps) {
  if (!(spec.warmup >= 0)) {
    return Status::InvalidArgument(
        fmt::format("train.schedule.warmup: {} is negative", spec.warmup));
  }
  if (!(spec.min_lr >= 0 && spec.min_lr <= 1)) {
    return Status::InvalidArgument(fmt::format(
        "train.schedule.min_lr: {} is not a fraction of the peak lr in [0, 1]", spec.min_lr));
  }
  if (!(spec.decay_fraction >= 0 && spec.decay_fraction <= 1)) {
    return Status::InvalidArgument(fmt::format(
        "train.schedule.decay_fraction: {} is not a fraction in [0, 1]", spec.decay_fraction));
  }
  if (!(peak_lr > 0)) {
    return Status::InvalidArgument(fmt::format("train.optimizer.lr: {} is not positive", peak_lr));
  }
  if (total_steps < 1) {
    return Status::InvalidArgument(
        fmt::format("budget.steps: {} leaves nothing to schedule", total_steps));
  }
  return LrSchedule(spec, peak_lr, total_steps);
}

LrSchedule::LrSchedule(const ScheduleSpec& spec, double peak_lr, int64_t total_steps)
    : spec_(spec), peak_lr_(peak_lr), total_steps_(total_steps) {
  const double warmup =
      spec.warmup < 1 ? spec.warmup * static_cast<double>(total_steps) : spec.warmup;
  warmup_steps_ = std::min<int64_t>(std::llround(warmup), total_steps);
  decay_start_ = total_steps;
  if (spec.decay == LrDecay::kWsd) {
    const int64_t decay_steps =
        std::llround(spec.decay_fraction * static_cast<double>(total_steps));
    decay_start_ = std::max(warmup_steps_, total_steps - decay_steps);
  }
}

double LrSchedule::Scale(int64_t step) const {
  const int64_t done = step + 1;  // updates made once this one is applied
  if (done <= warmup_steps_) {
    return static_cast<double>(done) / static_cast<double>(warmup_steps_);
  }
  const double floor = spec_.min_lr;
  switch (spec_.decay) {
    case LrDecay::kConstant:
      return 1.0;
    case LrDecay::kWsd: {
      if (step < decay_start_) return 1.0;
      const double p = static_cast<double>(done - decay_start_) /
                       static_cast<double>(total_steps_ - decay_start_);
      return 1.0 - (1.0 - floor) * p;
    }
    case LrDecay::kLinear:
    case LrDecay::kCosine: {
      const double p = static_cast<double>(done - warmup_steps_) /
                       static_cast<double>(total_steps_ - warmup_steps_);
      if (spec_.decay == LrDecay::kLinear) return 1.0 - (1.0 - floor) * p;
      return floor + (1.0 - floor) * 0.5 * (1.0 + std::cos(std::numbers::pi * p));
    }
  }
  return 1.0;
}

}  // namespace isoflop
