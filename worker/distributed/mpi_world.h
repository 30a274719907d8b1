// MpiWorld: this process as one rank of the MPI world that mpirun or srun started it in
// (system.md section 7, "Distributed"). It owns MPI's lifetime and the collective watchdog, and
// offers the host-side collectives that training needs besides its tensor ones (process_group.h):
// a sum of a few doubles (the validation loss), an agreement to stop, a broadcast of bytes (an RNG
// state, NCCL's unique id).
//
// Only a process that a launcher started as a rank initialises MPI: a worker run by hand or by the
// local launcher never touches it (a singleton MPI_Init would start Open MPI's runtime for
// nothing).
//
// Failures. Every blocking collective here is watched (collective_watchdog.h): one that does not
// finish within the timeout ends the process. MPI errors come back as IOError naming the rank and
// the collective (MPI_ERRORS_RETURN on the world's own communicator) rather than aborting inside
// MPI. A rank that fails must exit without Finalize(): Open MPI's MPI_Finalize waits for every
// rank, and the others may be waiting in a collective for the one that failed; mpirun ends them
// all once one rank exits with a non-zero status.
#pragma once

#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "common/status.h"
#include "worker/distributed/collective_watchdog.h"

namespace isoflop {

class MpiWorld {
 public:
  // Whether a launcher started this process as an MPI rank: Open MPI's mpirun
  // (OMPI_COMM_WORLD_SIZE), a PMIx launcher such as srun --mpi=pmix (PMIX_RANK), or a PMI-1/2 one
  // (PMI_SIZE). Slurm's own SLURM_* variables do not count: a batch script sets them too.
  static bool Launched();
  // The first line of MPI_Get_library_version: "Open MPI v4.1.4, package: ...".
  static std::string LibraryVersion();

  // Initialises MPI (threads: serialized, since collectives may start on LibTorch's autograd
  // thread while the training thread waits in backward) and the watchdog with
  // `collective_timeout`. IOError when MPI cannot start; FailedPrecondition when it is already
  // initialised (one world per process).
  static Result<std::unique_ptr<MpiWorld>> Init(std::chrono::milliseconds collective_timeout);

  // Does not finalise MPI (see Finalize).
  ~MpiWorld();
  MpiWorld(const MpiWorld&) = delete;
  MpiWorld& operator=(const MpiWorld&) = delete;

  // Ends MPI. Call only when every rank ends normally (complete, or stopped at the same step).
  Status Finalize();

  int rank() const { return rank_; }
  int size() const { return size_; }
  // Rank and rank count among the ranks on this host (MPI_COMM_TYPE_SHARED), whatever the
  // launcher: they choose each rank's GPU.
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }

  // The world's own communicator (a duplicate of MPI_COMM_WORLD that returns errors).
  MPI_Comm comm() const { return comm_; }
  CollectiveWatchdog& watchdog() { return *watchdog_; }

  // `values` summed over all ranks, in place, on every rank. `what` names the collective in
  // errors and in the watchdog's message.
  Status SumOverRanks(std::span<double> values, const std::string& what);
  // Whether `value` is true on any rank: the same answer everywhere.
  Result<bool> AnyRank(bool value, const std::string& what);
  // Rank 0's `bytes` into every rank's; all ranks pass the same size.
  Status BroadcastFromRankZero(std::span<std::byte> bytes, const std::string& what);
  // Rank 0's string into every rank's (sizes may differ before).
  Status BroadcastFromRankZero(std::string* text, const std::string& what);

  // IOError for an MPI error code: "MPI_Bcast (what) on rank r of n: <MPI's message>".
  Status Error(int code, const char* call, const std::string& what) const;

 private:
  MpiWorld() = default;

  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  MPI_Comm comm_ = MPI_COMM_NULL;
  std::unique_ptr<CollectiveWatchdog> watchdog_;
};

}  // namespace isoflop
