#include "worker/distributed/mpi_process_group.h"

#include <limits>

namespace isoflop {

Status MpiProcessGroup::StartAverage(const torch::Tensor& tensor, const std::string& what) {
  if (!tensor.device().is_cpu() || !tensor.is_contiguous() ||
      (tensor.scalar_type() != torch::kFloat32 && tensor.scalar_type() != torch::kFloat64) ||
      tensor.numel() > std::numeric_limits<int>::max()) {
    return Status::InvalidArgument(what +
                                   ": MPI averages contiguous float32/float64 CPU tensors of "
                                   "fewer than 2^31 elements");
  }
  Pending pending{MPI_REQUEST_NULL, tensor, what};
  const MPI_Datatype type = tensor.scalar_type() == torch::kFloat32 ? MPI_FLOAT : MPI_DOUBLE;
  const int rc = MPI_Iallreduce(MPI_IN_PLACE, tensor.data_ptr(), static_cast<int>(tensor.numel()),
                                type, MPI_SUM, world_.comm(), &pending.request);
  if (rc != MPI_SUCCESS) return world_.Error(rc, "MPI_Iallreduce", what);
  pending_.push_back(std::move(pending));
  return Status::OK();
}

Status MpiProcessGroup::FinishAverages() {
  for (Pending& p : pending_) {
    int rc = MPI_SUCCESS;
    {
      CollectiveWatchdog::Scope watch(world_.watchdog(), p.what);
      rc = MPI_Wait(&p.request, MPI_STATUS_IGNORE);
    }
    if (rc != MPI_SUCCESS) return world_.Error(rc, "MPI_Wait", p.what);
    p.tensor.div_(size());
  }
  pending_.clear();
  return Status::OK();
}

Status MpiProcessGroup::BroadcastFromRankZero(const std::vector<torch::Tensor>& tensors,
                                              const std::string& what) {
  torch::NoGradGuard no_grad;  // parameters are overwritten in place
  for (const torch::Tensor& tensor : tensors) {
    if (!tensor.device().is_cpu()) {
      return Status::InvalidArgument(what + ": MPI broadcasts CPU tensors, not " +
                                     tensor.device().str());
    }
    const torch::Tensor buffer = tensor.contiguous();  // the tensor itself when it is contiguous
    ISOFLOP_RETURN_IF_ERROR(world_.BroadcastFromRankZero(
        std::span<std::byte>(static_cast<std::byte*>(buffer.data_ptr()), buffer.nbytes()), what));
    if (!buffer.is_same(tensor)) tensor.copy_(buffer);
  }
  return Status::OK();
}

}  // namespace isoflop
