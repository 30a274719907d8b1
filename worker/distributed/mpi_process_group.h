// MpiProcessGroup: ProcessGroup (process_group.h) over MPI for CPU tensors. Averages are
// non-blocking MPI_Iallreduce sums divided by the world size once they complete, so a reduction
// started during the backward pass proceeds as far as MPI progresses it meanwhile.
#pragma once

#include <mpi.h>

#include <memory>
#include <string>
#include <vector>

#include "worker/distributed/mpi_world.h"
#include "worker/distributed/process_group.h"

namespace isoflop {

class MpiProcessGroup : public ProcessGroup {
 public:
  explicit MpiProcessGroup(MpiWorld& world) : world_(world) {}
  // Averages still pending belong to a failed step of a process on its way out: they are left
  // alone (MPI forbids freeing an unfinished collective's request; waiting could hang).
  ~MpiProcessGroup() override = default;

  int rank() const override { return world_.rank(); }
  int size() const override { return world_.size(); }
  torch::Device device() const override { return torch::kCPU; }
  std::string backend() const override { return "MPI (" + MpiWorld::LibraryVersion() + ")"; }
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
  struct Pending {
    MPI_Request request = MPI_REQUEST_NULL;
    torch::Tensor tensor;  // keeps the buffer alive while MPI writes it
    std::string what;
  };

  MpiWorld& world_;
  std::vector<Pending> pending_;
};

}  // namespace isoflop
