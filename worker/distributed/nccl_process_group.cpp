#include "worker/distributed/nccl_process_group.h"

#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <span>

namespace isoflop {

Result<std::unique_ptr<NcclProcessGroup>> NcclProcessGroup::Create(MpiWorld& world,
                                                                   torch::Device device) {
  if (!device.is_cuda() || !device.has_index()) {
    return Status::InvalidArgument("NCCL needs one CUDA device per rank, not " + device.str());
  }
  // The rank's GPU becomes the process's current device for good: what names no device (pinned
  // host memory, library handles) would otherwise create a context on GPU 0 in every rank.
  c10::cuda::set_device(device.index());
  ncclUniqueId id{};
  if (world.rank() == 0) {
    if (ncclResult_t r = ncclGetUniqueId(&id); r != ncclSuccess) {
      return Status::IOError(std::string("ncclGetUniqueId: ") + ncclGetErrorString(r));
    }
  }
  ISOFLOP_RETURN_IF_ERROR(world.BroadcastFromRankZero(
      std::as_writable_bytes(std::span<ncclUniqueId>(&id, 1)), "broadcast of NCCL's unique id"));
  ncclComm_t comm = nullptr;
  ncclResult_t result = ncclSuccess;
  {
    CollectiveWatchdog::Scope watch(world.watchdog(), "ncclCommInitRank");
    result = ncclCommInitRank(&comm, world.size(), id, world.rank());
  }
  if (result != ncclSuccess) {
    return Status::IOError("ncclCommInitRank on rank " + std::to_string(world.rank()) + " (" +
                           device.str() + "): " + ncclGetErrorString(result) + ": " +
                           ncclGetLastError(nullptr));
  }
  return std::unique_ptr<NcclProcessGroup>(new NcclProcessGroup(world, device, comm));
}

NcclProcessGroup::NcclProcessGroup(MpiWorld& world, torch::Device device, ncclComm_t comm)
    : world_(world),
      device_(device),
      comm_(comm),
      stream_(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device.index())) {}

NcclProcessGroup::~NcclProcessGroup() {
  const bool idle =
      last_done_ == nullptr || cudaEventQuery(last_done_->event()) != cudaErrorNotReady;
  if (idle) {
    ncclCommDestroy(comm_);
  } else {
    ncclCommAbort(comm_);
  }
}

std::string NcclProcessGroup::backend() const {
  int version = 0;  // major * 10000 + minor * 100 + patch since NCCL 2.9
  ncclGetVersion(&version);
  return "NCCL " + std::to_string(version / 10000) + "." + std::to_string(version / 100 % 100) +
         "." + std::to_string(version % 100);
}

Status NcclProcessGroup::NcclError(ncclResult_t result, const char* call,
                                   const std::string& what) const {
  return Status::IOError(std::string(call) + " (" + what + ") on rank " + std::to_string(rank()) +
                         " of " + std::to_string(size()) + ": " + ncclGetErrorString(result) +
                         ": " + ncclGetLastError(comm_));
}

void NcclProcessGroup::OrderAfterCurrentStream() {
  at::cuda::CUDAEvent ready;
  ready.record(c10::cuda::getCurrentCUDAStream(device_.index()));
  ready.block(stream_);
}

void NcclProcessGroup::WatchCollectiveStream(const std::string& what) {
  auto done = std::make_shared<at::cuda::CUDAEvent>();
  done->record(stream_);
  last_done_ = done;
  // cudaEventQuery, not CUDAEvent::query, which throws on the watchdog's thread for a CUDA error;
  // that error ends the watch and surfaces on the training thread at its next CUDA call.
  world_.watchdog().Start(what,
                          [done] { return cudaEventQuery(done->event()) != cudaErrorNotReady; });
}

Status NcclProcessGroup::StartAverage(const torch::Tensor& tensor, const std::string& what) {
  if (tensor.device() != device_ || !tensor.is_contiguous() ||
      (tensor.scalar_type() != torch::kFloat32 && tensor.scalar_type() != torch::kFloat64)) {
    return Status::InvalidArgument(what + ": NCCL averages contiguous float32/float64 tensors on " +
                                   device_.str());
  }
  const c10::cuda::CUDAGuard guard(device_.index());
  OrderAfterCurrentStream();
  const ncclDataType_t type = tensor.scalar_type() == torch::kFloat32 ? ncclFloat32 : ncclFloat64;
  if (ncclResult_t r =
          ncclAllReduce(tensor.data_ptr(), tensor.data_ptr(), static_cast<size_t>(tensor.numel()),
                        type, ncclAvg, comm_, stream_.stream());
      r != ncclSuccess) {
    return NcclError(r, "ncclAllReduce", what);
  }
  // The caching allocator must not hand the memory out again before the collective is done.
  c10::cuda::CUDACachingAllocator::recordStream(tensor.storage().data_ptr(), stream_);
  WatchCollectiveStream(what);
  return Status::OK();
}

void NcclProcessGroup::OrderCurrentStreamAfterCollectives() {
  // The collective stream runs in order: its last event covers every collective before it.
  if (last_done_ != nullptr) last_done_->block(c10::cuda::getCurrentCUDAStream(device_.index()));
}

Status NcclProcessGroup::FinishAverages() {
  OrderCurrentStreamAfterCollectives();
  return Status::OK();
}

Status NcclProcessGroup::BroadcastFromRankZero(const std::vector<torch::Tensor>& tensors,
                                               const std::string& what) {
  for (const torch::Tensor& tensor : tensors) {
    if (tensor.device() != device_) {
      return Status::InvalidArgument(what + ": NCCL broadcasts tensors on " + device_.str() +
                                     ", not " + tensor.device().str());
    }
  }
  const c10::cuda::CUDAGuard guard(device_.index());
  torch::NoGradGuard no_grad;          // parameters are overwritten in place
  std::vector<torch::Tensor> buffers;  // each tensor itself when it is contiguous
  for (const torch::Tensor& tensor : tensors) buffers.push_back(tensor.contiguous());
  OrderAfterCurrentStream();
  // As bytes: a broadcast copies, whatever the dtype (the optimizer's step counts, bf16, ...).
  ncclGroupStart();
  for (const torch::Tensor& tensor : buffers) {
    if (ncclResult_t r = ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(), tensor.nbytes(),
                                       ncclUint8, /*root=*/0, comm_, stream_.stream());
        r != ncclSuccess) {
      ncclGroupEnd();
      return NcclError(r, "ncclBroadcast", what);
    }
  }
  if (ncclResult_t r = ncclGroupEnd(); r != ncclSuccess) return NcclError(r, "ncclGroupEnd", what);
  for (const torch::Tensor& buffer : buffers) {
    c10::cuda::CUDACachingAllocator::recordStream(buffer.storage().data_ptr(), stream_);
  }
  WatchCollectiveStream(what);
  OrderCurrentStreamAfterCollectives();
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!buffers[i].is_same(tensors[i])) tensors[i].copy_(buffers[i]);
  }
  return Status::OK();
}

}  // namespace isoflop
