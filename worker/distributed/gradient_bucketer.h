// GradientBucketer: averages a data-parallel step's gradients over all ranks (system.md section 7),
// once per optimizer step, after gradient accumulation: each rank's accumulated gradient is the
// mean over its micro-batches, so the average over ranks is the mean over the global batch, the
// single process's gradient up to the order of summation.
//
// Buckets. The parameters are laid out in reverse order (about the order in which the backward
// pass finishes their gradients) in flat buffers of about `bucket_bytes` each (25 MB, PyTorch DDP's
// default: large enough to amortise a collective's latency, small enough to start early), one
// dtype per bucket. Behind each bucket's gradients sits one presence flag per parameter.
//
// Overlap. During the backward pass of the step's last micro-batch, a post-accumulate-grad hook on
// every parameter counts the gradients still to come per bucket; a bucket whose gradients are all
// final starts its average while the backward pass computes the rest (on a GPU the two run on
// different streams). Buckets start strictly in order, so every rank issues the same collectives
// in the same order; Finish starts whatever the hooks did not.
//
// Missing gradients. A parameter that none of a rank's micro-batches reached (a self-guided guide
// that reduce_flop skipped: structured_linear.h) contributes zeros and a flag of 0. Averaged, a
// parameter whose flag is 0 everywhere keeps no gradient, so AdamW leaves it alone as it would in
// one process; one that any rank had gets the average, which is again the global batch's mean.
// Reading the flags costs a device-to-host copy, paid only in a step where this rank lacks one.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "common/status.h"
#include "worker/distributed/process_group.h"

namespace isoflop {

class GradientBucketer {
 public:
  static constexpr int64_t kDefaultBucketBytes = 25 << 20;

  // `params`: the trainable parameters, each once (in registration order), on group.device().
  GradientBucketer(std::vector<torch::Tensor> params, ProcessGroup& group,
                   int64_t bucket_bytes = kDefaultBucketBytes);
  ~GradientBucketer();  // removes the hooks
  GradientBucketer(const GradientBucketer&) = delete;
  GradientBucketer& operator=(const GradientBucketer&) = delete;

  // Call right before the backward pass of optimizer step `step`'s last micro-batch: from then on,
  // each bucket starts its average as soon as its gradients are final.
  void BeginLastBackward(int64_t step);
  // After that backward pass: starts the buckets still waiting, completes every average and
  // writes the means into the parameters' gradients. The first error of a hook surfaces here.
  Status Finish();

  // Parameter indices (into `params`) per bucket, in the order the buckets reduce.
  std::vector<std::vector<size_t>> Layout() const;

 private:
  struct Bucket {
    std::vector<size_t> params;    // indices into params_
    std::vector<int64_t> offsets;  // of each parameter's gradient in `flat`
    int64_t flags_offset = 0;      // the presence flags follow the gradients
    torch::Tensor flat;            // (gradient elements + flags), one dtype, on the group's device
    size_t pending = 0;            // gradients still to come in the current last backward
  };
  class ReadyHook;

  void OnGradientReady(size_t param);  // from a hook, on the autograd thread
  // Starts buckets in order while the next one is ready (or all of them with `all`).
  void StartReadyBuckets(bool all);
  Status StartBucket(size_t bucket);
  void WriteBackMeans(size_t bucket);

  std::vector<torch::Tensor> params_;
  ProcessGroup& group_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // per parameter

  // State of the current step's last backward pass.
  bool armed_ = false;
  int64_t step_ = 0;
  size_t next_to_start_ = 0;
  Status hook_status_;
};

}  // namespace isoflop
