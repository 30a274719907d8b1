#include "worker/distributed/process_group.h"

#include "worker/distributed/mpi_process_group.h"
#ifdef ISOFLOP_WITH_NCCL
#include "worker/distributed/nccl_process_group.h"
#endif

namespace isoflop {

Result<std::unique_ptr<ProcessGroup>> CreateProcessGroup(MpiWorld& world, torch::Device device) {
  if (device.is_cpu()) return std::unique_ptr<ProcessGroup>(new MpiProcessGroup(world));
#ifdef ISOFLOP_WITH_NCCL
  if (device.is_cuda()) {
    Result<std::unique_ptr<NcclProcessGroup>> group = NcclProcessGroup::Create(world, device);
    if (!group.ok()) return group.status();
    return std::unique_ptr<ProcessGroup>(std::move(group).value());
  }
#endif
  return Status::FailedPrecondition(
      "data-parallel training on " + device.str() +
      " needs NCCL, and this isoflop-worker was built without it (LibTorch without CUDA, or no "
      "nccl.h / libnccl found when it was configured)");
}

std::string DeviceForLocalRank(const std::string& choice, int local_rank) {
  if (choice != "auto" && choice != "cuda") return choice;
  if (!torch::cuda::is_available()) return choice;  // "auto": the CPU; "cuda": SelectDevice's error
  return "cuda:" + std::to_string(local_rank % static_cast<int>(torch::cuda::device_count()));
}

}  // namespace isoflop
