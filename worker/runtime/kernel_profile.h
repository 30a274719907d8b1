// KernelProfile: what the GPU ran during a stretch of work, summed by kernel name.
//
// To find where a training step's time goes (bench/gpu/NOTES.md), the worker can wrap one step in
// LibTorch's Kineto profiler (`isoflop-worker --profile-step N`) and write every GPU activity of it
// (kernels, copies, memsets; those of a replayed CUDA graph included) as one JSON document:
//
//   {"gpu_us": total, "activities": [{"name": ..., "count": n, "us": total}, ...]}
//
// sorted by time, longest first. bench/gpu/profile_summary.py puts it next to the PyTorch peer's
// profile of the same step (gpt_reference.py --profile) by kind of kernel. Profiling adds host
// work, so the profiled step is not one the throughput figures time.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

namespace isoflop {

class KernelProfile {
 public:
  // Starts recording the CPU and CUDA activities of this process. FailedPrecondition when a
  // profiler is already active in this thread.
  static Result<std::unique_ptr<KernelProfile>> Start();

  ~KernelProfile();
  KernelProfile(const KernelProfile&) = delete;
  KernelProfile& operator=(const KernelProfile&) = delete;

  // Waits for the GPU, stops recording and writes the summary to `path` (replacing it atomically).
  Status StopAndWrite(const std::string& path);

  // Start, work, StopAndWrite(path): work's error first, then the profile's.
  static Status Record(const std::function<Status()>& work, const std::string& path);

 private:
  KernelProfile() = default;
  bool active_ = true;
};

}  // namespace isoflop
