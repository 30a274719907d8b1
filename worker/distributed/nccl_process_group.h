// NcclProcessGroup: ProcessGroup (process_group.h) over NCCL for CUDA tensors, one GPU per rank.
// Built only with ISOFLOP_WITH_NCCL (LibTorch with CUDA, and NCCL found).
//
// Collectives run on a stream of their own, ordered after the work the caller's current stream
// had queued when they started (an event between the two), so that a gradient bucket reduces while
// the backward pass goes on computing the next. FinishAverages makes the current stream wait for
// the collective stream; nothing blocks the host. The watchdog polls an event recorded after each
// collective: a kernel that waits forever for a dead peer becomes a timeout, not a hang.
#pragma once

#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAStream.h>
#include <nccl.h>

#include <memory>
#include <string>
#include <vector>

#include "worker/distributed/mpi_world.h"
#include "worker/distributed/process_group.h"

namespace isoflop {

class NcclProcessGroup : public ProcessGroup {
 public:
  // Makes `device` (a CUDA device, distinct per rank on a host) the process's current device. Rank
  // 0 draws the communicator's ncclUniqueId and broadcasts it over MPI; every rank then joins on
  // `device`. IOError naming NCCL's reason.
  static Result<std::unique_ptr<NcclProcessGroup>> Create(MpiWorld& world, torch::Device device);
  // Destroys the communicator, or aborts it when a collective is still unfinished (a peer that is
  // gone would never let it finish).
  ~NcclProcessGroup() override;

  int rank() const override { return world_.rank(); }
  int size() const override { return world_.size(); }
  torch::Device device() const override { return device_; }
  std::string backend() const override;
  Status StartAverage(const torch::Tensor& tensor, const std::string& what) override;
  Status FinishAverages() override;
  Status BroadcastFromRankZero(const std::vector<torch::Tensor>& tensors,
                               const std::string& what) override;
  Status SumOverRanks(std::span<double> values, const std::string& what) override {
    return world_.SumOverRanks(values, what);
  }
  Result<bool> AnyRank(bool value, const std::string& what) override {
    return world_.AnyRank(value, what);
  }
  Status BroadcastFromRankZero(std::string* bytes, const std::string& what) override {
    return world_.BroadcastFromRankZero(bytes, what);
  }

 private:
  NcclProcessGroup(MpiWorld& world, torch::Device device, ncclComm_t comm);
  // The collective stream waits for what the current stream queued so far.
  void OrderAfterCurrentStream();
  // The current stream waits for every collective queued so far.
  void OrderCurrentStreamAfterCollectives();
  // Records the end of the collectives queued so far, and has the watchdog watch them as `what`.
  void WatchCollectiveStream(const std::string& what);
  Status NcclError(ncclResult_t result, const char* call, const std::string& what) const;

  MpiWorld& world_;
  torch::Device device_;
  ncclComm_t comm_;
  c10::cuda::CUDAStream stream_;
  // Recorded on stream_ after the last collective queued; shared with the watchdog's poll.
  std::shared_ptr<at::cuda::CUDAEvent> last_done_;
};

}  // namespace isoflop
