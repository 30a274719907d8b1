#include "worker/distributed/gradient_bucketer.h"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <string>

namespace isoflop {

// LibTorch's form of PyTorch's Tensor.register_post_accumulate_grad_hook: called by the autograd
// engine once the parameter's .grad holds this backward pass's contribution.
class GradientBucketer::ReadyHook : public torch::autograd::PostAccumulateGradHook {
 public:
  ReadyHook(GradientBucketer* bucketer, size_t param) : bucketer_(bucketer), param_(param) {}
  void operator()(const torch::autograd::Variable& /*param*/) override {
    bucketer_->OnGradientReady(param_);
  }

 private:
  GradientBucketer* bucketer_;
  size_t param_;
};

GradientBucketer::GradientBucketer(std::vector<torch::Tensor> params, ProcessGroup& group,
                                   int64_t bucket_bytes)
    : params_(std::move(params)), group_(group), bucket_of_(params_.size()) {
  int64_t bytes_in_last = 0;
  for (size_t i = params_.size(); i-- > 0;) {
    const torch::Tensor& param = params_[i];
    const int64_t bytes = param.numel() * static_cast<int64_t>(param.element_size());
    const bool fits = !buckets_.empty() && bytes_in_last + bytes <= bucket_bytes &&
                      params_[buckets_.back().params.front()].scalar_type() == param.scalar_type();
    if (!fits) {
      buckets_.emplace_back();
      bytes_in_last = 0;
    }
    Bucket& bucket = buckets_.back();
    bucket.offsets.push_back(bucket.flags_offset);
    bucket.flags_offset += param.numel();
    bucket.params.push_back(i);
    bucket_of_[i] = buckets_.size() - 1;
    bytes_in_last += bytes;
  }
  for (Bucket& bucket : buckets_) {
    const torch::Tensor& first = params_[bucket.params.front()];
    const int64_t elements = bucket.flags_offset + static_cast<int64_t>(bucket.params.size());
    bucket.flat = torch::zeros({elements}, first.options().requires_grad(false));
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    torch::autograd::impl::set_post_acc_grad_hooks(params_[i],
                                                   std::make_unique<ReadyHook>(this, i));
  }
}

GradientBucketer::~GradientBucketer() {
  for (const torch::Tensor& param : params_) {
    torch::autograd::impl::set_post_acc_grad_hooks(param, nullptr);
  }
}

std::vector<std::vector<size_t>> GradientBucketer::Layout() const {
  std::vector<std::vector<size_t>> layout;
  for (const Bucket& bucket : buckets_) layout.push_back(bucket.params);
  return layout;
}

void GradientBucketer::BeginLastBackward(int64_t step) {
  step_ = step;
  for (Bucket& bucket : buckets_) bucket.pending = bucket.params.size();
  next_to_start_ = 0;
  armed_ = true;
}

void GradientBucketer::OnGradientReady(size_t param) {
  if (!armed_) return;  // an earlier micro-batch: its gradient is not final yet
  Bucket& bucket = buckets_[bucket_of_[param]];
  if (bucket.pending > 0) --bucket.pending;
  StartReadyBuckets(/*all=*/false);
}

void GradientBucketer::StartReadyBuckets(bool all) {
  while (hook_status_.ok() && next_to_start_ < buckets_.size() &&
         (all || buckets_[next_to_start_].pending == 0)) {
    hook_status_ = StartBucket(next_to_start_++);
  }
}

Status GradientBucketer::StartBucket(size_t index) {
  // Device-side work only (one multi-tensor copy, fills): this runs inside the backward pass, and
  // a host-to-device copy would make the host wait for the GPU to catch up.
  torch::NoGradGuard no_grad;
  Bucket& bucket = buckets_[index];
  torch::Tensor flags =
      bucket.flat.narrow(0, bucket.flags_offset, static_cast<int64_t>(bucket.params.size()));
  flags.fill_(1.0);
  std::vector<torch::Tensor> slices, grads;
  for (size_t j = 0; j < bucket.params.size(); ++j) {
    const torch::Tensor& param = params_[bucket.params[j]];
    torch::Tensor slice = bucket.flat.narrow(0, bucket.offsets[j], param.numel());
    if (param.grad().defined()) {
      slices.push_back(slice);
      grads.push_back(param.grad().reshape({-1}));
    } else {
      slice.zero_();
      flags.narrow(0, static_cast<int64_t>(j), 1).zero_();
    }
  }
  if (!slices.empty()) torch::_foreach_copy_(slices, grads);
  return group_.StartAverage(bucket.flat, "all-reduce of gradient bucket " + std::to_string(index) +
                                              " of " + std::to_string(buckets_.size()) +
                                              " at step " + std::to_string(step_ + 1));
}

Status GradientBucketer::Finish() {
  armed_ = false;
  StartReadyBuckets(/*all=*/true);
  next_to_start_ = 0;
  Status started = hook_status_;
  hook_status_ = Status::OK();
  ISOFLOP_RETURN_IF_ERROR(started);
  ISOFLOP_RETURN_IF_ERROR(group_.FinishAverages());
  for (size_t b = 0; b < buckets_.size(); ++b) WriteBackMeans(b);
  return Status::OK();
}

void GradientBucketer::WriteBackMeans(size_t index) {
  torch::NoGradGuard no_grad;
  const Bucket& bucket = buckets_[index];
  std::vector<torch::Tensor> grads, means;
  torch::Tensor present;  // read only when needed: on a GPU, reading waits for the collective
  for (size_t j = 0; j < bucket.params.size(); ++j) {
    torch::Tensor& param = params_[bucket.params[j]];
    const torch::Tensor mean =
        bucket.flat.narrow(0, bucket.offsets[j], param.numel()).view(param.sizes());
    if (param.grad().defined()) {
      grads.push_back(param.grad());
      means.push_back(mean);
      continue;
    }
    if (!present.defined()) {
      present =
          bucket.flat.narrow(0, bucket.flags_offset, static_cast<int64_t>(bucket.params.size()))
              .to(torch::kCPU, torch::kFloat64);
    }
    if (present[static_cast<int64_t>(j)].item<double>() > 0) param.mutable_grad() = mean.clone();
  }
  if (!grads.empty()) torch::_foreach_copy_(grads, means);
}

}  // namespace isoflop
