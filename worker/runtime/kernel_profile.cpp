#include "worker/runtime/kernel_profile.h"

#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/cuda.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "common/atomic_file.h"

namespace isoflop {
namespace {

namespace profiler = torch::autograd::profiler;
using torch::profiler::impl::ActivityType;
using torch::profiler::impl::ProfilerConfig;
using torch::profiler::impl::ProfilerState;

const std::set<ActivityType>& Activities() {
  static const std::set<ActivityType> activities{ActivityType::CPU, ActivityType::CUDA};
  return activities;
}

}  // namespace

Result<std::unique_ptr<KernelProfile>> KernelProfile::Start() {
  if (profiler::isProfilerEnabledInMainThread()) {
    return Status::FailedPrecondition("kernel profile: a profiler is already recording");
  }
  const ProfilerConfig config(ProfilerState::KINETO);
  profiler::prepareProfiler(config, Activities());
  profiler::enableProfiler(config, Activities());
  return std::unique_ptr<KernelProfile>(new KernelProfile());
}

KernelProfile::~KernelProfile() {
  if (active_) profiler::disableProfiler();
}

Status KernelProfile::Record(const std::function<Status()>& work, const std::string& path) {
  Result<std::unique_ptr<KernelProfile>> profile = Start();
  if (!profile.ok()) return profile.status();
  ISOFLOP_RETURN_IF_ERROR(work());  // on failure the destructor stops the profiler
  return (*profile)->StopAndWrite(path);
}

Status KernelProfile::StopAndWrite(const std::string& path) {
  if (torch::cuda::is_available()) torch::cuda::synchronize();  // the last kernels' records
  active_ = false;
  const std::unique_ptr<profiler::ProfilerResult> result = profiler::disableProfiler();
  struct Sum {
    int64_t count = 0;
    uint64_t ns = 0;
  };
  std::map<std::string, Sum> by_name;
  uint64_t total_ns = 0;
  for (const profiler::KinetoEvent& event : result->events()) {
    // Activities on the device (kernels, copies, memsets); the host's operator and runtime-call
    // events are CPU-typed.
    if (event.deviceType() != c10::DeviceType::CUDA) continue;
    Sum& sum = by_name[event.name()];
    ++sum.count;
    sum.ns += event.durationNs();
    total_ns += event.durationNs();
  }
  std::vector<std::pair<std::string, Sum>> sorted(by_name.begin(), by_name.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.second.ns > b.second.ns; });
  nlohmann::json activities = nlohmann::json::array();
  for (const auto& [name, sum] : sorted) {
    activities.push_back({{"name", name}, {"count", sum.count}, {"us", sum.ns / 1e3}});
  }
  const nlohmann::json doc = {{"gpu_us", total_ns / 1e3}, {"activities", activities}};
  return WriteFileAtomically(path, doc.dump(1) + "\n");
}

}  // namespace isoflop
