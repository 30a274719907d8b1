#include "worker/distributed/mpi_world.h"

#include <cstdint>
#include <cstdlib>
#include <limits>

namespace isoflop {
namespace {

bool HasEnv(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && value[0] != '\0';
}

}  // namespace

bool MpiWorld::Launched() {
  return HasEnv("OMPI_COMM_WORLD_SIZE") || HasEnv("PMIX_RANK") || HasEnv("PMI_SIZE");
}

std::string MpiWorld::LibraryVersion() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int length = 0;
  MPI_Get_library_version(text, &length);
  const std::string version(text, static_cast<size_t>(length));
  return version.substr(0, version.find('\n'));
}

Result<std::unique_ptr<MpiWorld>> MpiWorld::Init(std::chrono::milliseconds collective_timeout) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return Status::FailedPrecondition("MPI is already initialised in this process");
  int provided = 0;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
    return Status::IOError("MPI_Init_thread failed: the MPI launcher's environment is unusable");
  }
  std::unique_ptr<MpiWorld> world(new MpiWorld);
  if (provided < MPI_THREAD_SERIALIZED) {
    return Status::FailedPrecondition(
        "this MPI library offers no MPI_THREAD_SERIALIZED, which overlapping gradient reduction "
        "with the backward pass needs");
  }
  // A communicator of our own, so that errors on it return rather than abort (MPI_COMM_WORLD's
  // handler is the launcher's business) and no other library's messages can match ours.
  if (int rc = MPI_Comm_dup(MPI_COMM_WORLD, &world->comm_); rc != MPI_SUCCESS) {
    return world->Error(rc, "MPI_Comm_dup", "the world's communicator");
  }
  MPI_Comm_set_errhandler(world->comm_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(world->comm_, &world->rank_);
  MPI_Comm_size(world->comm_, &world->size_);
  world->watchdog_ =
      std::make_unique<CollectiveWatchdog>(world->rank_, world->size_, collective_timeout);
  MPI_Comm host = MPI_COMM_NULL;
  {
    CollectiveWatchdog::Scope watch(*world->watchdog_, "split of the world by host");
    if (int rc = MPI_Comm_split_type(world->comm_, MPI_COMM_TYPE_SHARED, world->rank_,
                                     MPI_INFO_NULL, &host);
        rc != MPI_SUCCESS) {
      return world->Error(rc, "MPI_Comm_split_type", "the ranks of this host");
    }
  }
  MPI_Comm_rank(host, &world->local_rank_);
  MPI_Comm_size(host, &world->local_size_);
  MPI_Comm_free(&host);
  return world;
}

MpiWorld::~MpiWorld() = default;

Status MpiWorld::Finalize() {
  // Unwatched: Finalize waits for every rank, and rank 0 may still be busy with work of its own
  // (a final checkpoint, benchmarks); a rank that fails meanwhile makes mpirun end the rest.
  watchdog_.reset();
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  if (int rc = MPI_Finalize(); rc != MPI_SUCCESS) return Error(rc, "MPI_Finalize", "the end");
  return Status::OK();
}

Status MpiWorld::Error(int code, const char* call, const std::string& what) const {
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(code, text, &length);
  return Status::IOError(std::string(call) + " (" + what + ") on rank " + std::to_string(rank_) +
                         " of " + std::to_string(size_) + ": " + std::string(text, length));
}

Status MpiWorld::SumOverRanks(std::span<double> values, const std::string& what) {
  CollectiveWatchdog::Scope watch(*watchdog_, what);
  const int rc = MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()),
                               MPI_DOUBLE, MPI_SUM, comm_);
  return rc == MPI_SUCCESS ? Status::OK() : Error(rc, "MPI_Allreduce", what);
}

Result<bool> MpiWorld::AnyRank(bool value, const std::string& what) {
  CollectiveWatchdog::Scope watch(*watchdog_, what);
  int any = value ? 1 : 0;
  const int rc = MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_LOR, comm_);
  if (rc != MPI_SUCCESS) return Error(rc, "MPI_Allreduce", what);
  return any != 0;
}

Status MpiWorld::BroadcastFromRankZero(std::span<std::byte> bytes, const std::string& what) {
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return Status::Internal(what + ": " + std::to_string(bytes.size()) +
                            " bytes are too many for one MPI_Bcast");
  }
  CollectiveWatchdog::Scope watch(*watchdog_, what);
  const int rc =
      MPI_Bcast(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, /*root=*/0, comm_);
  return rc == MPI_SUCCESS ? Status::OK() : Error(rc, "MPI_Bcast", what);
}

Status MpiWorld::BroadcastFromRankZero(std::string* text, const std::string& what) {
  uint64_t size = text->size();
  ISOFLOP_RETURN_IF_ERROR(BroadcastFromRankZero(
      std::as_writable_bytes(std::span<uint64_t>(&size, 1)), what + " (its size)"));
  text->resize(size);
  return BroadcastFromRankZero(std::as_writable_bytes(std::span<char>(text->data(), text->size())),
                               what);
}

}  // namespace isoflop
