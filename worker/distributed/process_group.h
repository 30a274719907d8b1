// ProcessGroup: the collectives of data-parallel training, one device per rank (system.md section
// 7): averaging gradients, broadcasting rank 0's state, and a few host-side agreements (a summed
// validation loss, whether to stop). Two implementations over an MpiWorld (mpi_world.h): MPI for
// CPU tensors (mpi_process_group.h) and NCCL for CUDA tensors (nccl_process_group.h, built when
// LibTorch has CUDA and NCCL is found: ISOFLOP_WITH_NCCL); host-side collectives use MPI in both.
//
// Ordering. Every rank must start the same collectives in the same order with the same sizes; the
// callers (the trainer, gradient_bucketer.h) guarantee it. Each collective is watched by the
// world's watchdog (collective_watchdog.h) until it is complete.
//
// Asynchrony. Averages are started, then finished together, so that a caller can start one while
// it still computes the next (the gradient bucketer overlaps the backward pass this way). On a
// GPU nothing here blocks the host: results are ordered on the caller's current CUDA stream.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace isoflop {

class MpiWorld;

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual torch::Device device() const = 0;
  // What carries the collectives, for the run's provenance: "NCCL 2.28.9", "MPI (Open MPI ...)".
  virtual std::string backend() const = 0;

  // Starts replacing `tensor` (contiguous, float32 or float64, on device()) by its mean over all
  // ranks. Its contents are undefined until FinishAverages(); `what` names the collective in
  // errors and timeouts. InvalidArgument for a tensor it cannot reduce; IOError from the transport.
  virtual Status StartAverage(const torch::Tensor& tensor, const std::string& what) = 0;
  // Completes every average started since the last call. CPU: the means are in place when it
  // returns. GPU: work queued on the current stream from now on sees them; the host does not wait.
  virtual Status FinishAverages() = 0;

  // Overwrites every tensor (on device(), any dtype) with rank 0's, ordered like
  // FinishAverages: in place on return (CPU), or for later work on the current stream (GPU).
  virtual Status BroadcastFromRankZero(const std::vector<torch::Tensor>& tensors,
                                       const std::string& what) = 0;

  // Host-side collectives; they block until every rank has called them.
  // `values` summed over all ranks, in place on every rank.
  virtual Status SumOverRanks(std::span<double> values, const std::string& what) = 0;
  // Whether `value` is true on any rank: the same answer everywhere.
  virtual Result<bool> AnyRank(bool value, const std::string& what) = 0;
  // Rank 0's bytes into every rank's `bytes` (whatever their size before).
  virtual Status BroadcastFromRankZero(std::string* bytes, const std::string& what) = 0;
};

// The group for `device`: MPI for the CPU; for CUDA, NCCL over a communicator whose
// ncclUniqueId rank 0 broadcasts over MPI. FailedPrecondition for CUDA in a build without NCCL;
// IOError when NCCL cannot set up its communicator.
Result<std::unique_ptr<ProcessGroup>> CreateProcessGroup(MpiWorld& world, torch::Device device);

// The --device of a rank that is `local_rank` on its host: "auto" and "cuda" mean one GPU per rank
// (GPU local_rank modulo the GPUs this process sees, so a launcher that gives each rank its own
// CUDA_VISIBLE_DEVICES works too); "cpu" and an explicit "cuda:N" stay as they are.
std::string DeviceForLocalRank(const std::string& choice, int local_rank);

}  // namespace isoflop
