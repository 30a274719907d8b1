#include "worker/models/lm_head_loss.h"

#ifdef ISOFLOP_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>

#include "worker/kernels/fused_cross_entropy.h"
#endif

namespace isoflop {

#ifdef ISOFLOP_CUDA_KERNELS
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

struct LmHeadCrossEntropy : torch::autograd::Function<LmHeadCrossEntropy> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& h,
                               const torch::Tensor& weight, const torch::Tensor& targets) {
    const torch::Tensor hb = h.to(torch::kBFloat16).contiguous();       // (N, d)
    const torch::Tensor wb = weight.to(torch::kBFloat16).contiguous();  // (V, d)
    const torch::Tensor t = targets.to(torch::kInt64).contiguous();     // (N)
    torch::Tensor z = torch::mm(hb, wb.t());                            // (N, V) logits, bf16
    // 1 / counted rows, on the device: no host synchronisation, so CUDA graphs can capture it.
    // Counted as the kernel counts them: targets in [0, V).
    const torch::Tensor scale =
        ((t >= 0) & (t < z.size(1))).sum().clamp_min(1).to(torch::kFloat32).reciprocal();
    torch::Tensor losses = torch::empty({t.size(0)}, h.options().dtype(torch::kFloat32));
    const cudaError_t status = kernels::FusedCrossEntropy(
        reinterpret_cast<uint16_t*>(z.data_ptr<at::BFloat16>()), t.data_ptr<int64_t>(),
        losses.data_ptr<float>(), scale.data_ptr<float>(), z.size(0), z.size(1),
        at::cuda::getCurrentCUDAStream());
    TORCH_CHECK(status == cudaSuccess, "fused cross-entropy launch: ", cudaGetErrorString(status));
    // z now holds d(mean loss)/dz: (softmax - onehot) / counted.
    ctx->save_for_backward({hb, wb, z});
    ctx->saved_data["h_dtype"] = static_cast<int64_t>(h.scalar_type());
    ctx->saved_data["w_dtype"] = static_cast<int64_t>(weight.scalar_type());
    return losses.sum() * scale;  // mean over counted rows, float32
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& hb = saved[0];
    const torch::Tensor& wb = saved[1];
    const torch::Tensor& dz = saved[2];
    const torch::Tensor g = grad_outputs[0].to(torch::kFloat32);  // upstream, a scalar
    const auto h_dtype = static_cast<torch::ScalarType>(ctx->saved_data["h_dtype"].toInt());
    const auto w_dtype = static_cast<torch::ScalarType>(ctx->saved_data["w_dtype"].toInt());
    const torch::Tensor dh = torch::mm(dz, wb).to(h_dtype).mul_(g);  // (N, V)(V, d) -> (N, d)
    // dw = dz^T (g h): the upstream factor on the (N, d) side, and a float32 weight's gradient
    // straight out of the GEMM's float32 accumulators: no cast and no scaling pass over (V, d).
    const torch::Tensor gh = hb * g;  // (N, d) bf16
    const torch::Tensor dw = w_dtype == torch::kFloat32
                                 ? at::mm(dz.t(), gh, torch::kFloat32)  // (V, N)(N, d) -> (V, d)
                                 : torch::mm(dz.t(), gh).to(w_dtype);
    return {dh, dw, torch::Tensor()};
  }
};

}  // namespace

bool FusedLmHeadLossAvailable(const torch::Device& device) {
  return device.is_cuda();
}

torch::Tensor LmHeadLoss(const torch::Tensor& h, const torch::Tensor& weight,
                         const torch::Tensor& targets) {
  return LmHeadCrossEntropy::apply(h, weight, targets);
}

#else  // a build without the CUDA kernels

bool FusedLmHeadLossAvailable(const torch::Device&) {
  return false;
}

torch::Tensor LmHeadLoss(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) {
  TORCH_CHECK(false, "LmHeadLoss: this worker was built without its CUDA kernels");
}

#endif

}  // namespace isoflop
