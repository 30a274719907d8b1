#include "worker/models/fused_layer_norm.h"

#ifdef ISOFLOP_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>

#include "worker/kernels/layer_norm.h"
#include "worker/models/autocast_state.h"
#endif

namespace isoflop {

#ifdef ISOFLOP_CUDA_KERNELS
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

cudaStream_t CurrentStream() {
  return at::cuda::getCurrentCUDAStream().stream();
}

struct LayerNormToBf16 : torch::autograd::Function<LayerNormToBf16> {
  // `bias` is a defined tensor always (autograd's inputs must be); without one, has_bias is false
  // and whatever is passed there is ignored and gets no gradient.
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias,
                               bool has_bias, double eps) {
    const int64_t width = x.size(-1);
    const torch::Tensor rows = x.contiguous().view({-1, width});  // (N, width) float32
    const int64_t n = rows.size(0);
    torch::Tensor y = torch::empty(rows.sizes(), rows.options().dtype(torch::kBFloat16));
    torch::Tensor mean = torch::empty({n}, rows.options()),
                  rstd = torch::empty({n}, rows.options());
    const cudaError_t status = kernels::LayerNormForwardBf16(
        rows.data_ptr<float>(), /*branch=*/nullptr, /*sum=*/nullptr, weight.data_ptr<float>(),
        has_bias ? bias.data_ptr<float>() : nullptr,
        reinterpret_cast<uint16_t*>(y.data_ptr<at::BFloat16>()), mean.data_ptr<float>(),
        rstd.data_ptr<float>(), n, width, static_cast<float>(eps), CurrentStream());
    TORCH_CHECK(status == cudaSuccess, "LayerNormForwardBf16: ", cudaGetErrorString(status));
    ctx->save_for_backward({rows, weight, mean, rstd});
    ctx->saved_data["has_bias"] = has_bias;
    return y.view(x.sizes());
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &rows = saved[0], &weight = saved[1], &mean = saved[2], &rstd = saved[3];
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    const int64_t n = rows.size(0), width = rows.size(1);
    const torch::Tensor dy = grad_outputs[0].to(torch::kBFloat16).contiguous().view({n, width});
    torch::Tensor dx = torch::empty_like(rows);
    const int64_t partials = kernels::LayerNormPartials(n);
    torch::Tensor dgamma = torch::empty({partials, width}, rows.options());
    torch::Tensor dbeta =
        has_bias ? torch::empty({partials, width}, rows.options()) : torch::Tensor();
    const cudaError_t status = kernels::LayerNormBackwardBf16(
        reinterpret_cast<const uint16_t*>(dy.data_ptr<at::BFloat16>()), rows.data_ptr<float>(),
        mean.data_ptr<float>(), rstd.data_ptr<float>(), weight.data_ptr<float>(),
        /*dresidual=*/nullptr, dx.data_ptr<float>(), /*dbranch=*/nullptr, dgamma.data_ptr<float>(),
        has_bias ? dbeta.data_ptr<float>() : nullptr, n, width, CurrentStream());
    TORCH_CHECK(status == cudaSuccess, "LayerNormBackwardBf16: ", cudaGetErrorString(status));
    const auto shape = grad_outputs[0].sizes();
    return {dx.view(shape), dgamma.sum(0), has_bias ? dbeta.sum(0) : torch::Tensor(),
            torch::Tensor(), torch::Tensor()};
  }
};

// s = x + branch and y = LayerNorm(s): outputs (s, y). The backward gets the gradients of both,
// d s from s's other use (the next residual add) and d y, and returns d x = d s + LayerNorm's d s,
// the same for the branch in bf16, and the weight's and bias's.
struct AddLayerNormToBf16 : torch::autograd::Function<AddLayerNormToBf16> {
  static tensor_list forward(AutogradContext* ctx, const torch::Tensor& x,
                             const torch::Tensor& branch, const torch::Tensor& weight,
                             const torch::Tensor& bias, bool has_bias, double eps) {
    const int64_t width = x.size(-1);
    const torch::Tensor rows = x.contiguous().view({-1, width});      // (N, width) float32
    const torch::Tensor add = branch.contiguous().view({-1, width});  // (N, width) bf16
    const int64_t n = rows.size(0);
    torch::Tensor sum = torch::empty_like(rows);
    torch::Tensor y = torch::empty(rows.sizes(), rows.options().dtype(torch::kBFloat16));
    torch::Tensor mean = torch::empty({n}, rows.options()),
                  rstd = torch::empty({n}, rows.options());
    const cudaError_t status = kernels::LayerNormForwardBf16(
        rows.data_ptr<float>(), reinterpret_cast<const uint16_t*>(add.data_ptr<at::BFloat16>()),
        sum.data_ptr<float>(), weight.data_ptr<float>(),
        has_bias ? bias.data_ptr<float>() : nullptr,
        reinterpret_cast<uint16_t*>(y.data_ptr<at::BFloat16>()), mean.data_ptr<float>(),
        rstd.data_ptr<float>(), n, width, static_cast<float>(eps), CurrentStream());
    TORCH_CHECK(status == cudaSuccess, "LayerNormForwardBf16 (add): ", cudaGetErrorString(status));
    ctx->save_for_backward({sum, weight, mean, rstd});
    ctx->saved_data["has_bias"] = has_bias;
    return {sum.view(x.sizes()), y.view(x.sizes())};
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &sum = saved[0], &weight = saved[1], &mean = saved[2], &rstd = saved[3];
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    const int64_t n = sum.size(0), width = sum.size(1);
    const torch::Tensor ds = grad_outputs[0].to(torch::kFloat32).contiguous().view({n, width});
    const torch::Tensor dy = grad_outputs[1].to(torch::kBFloat16).contiguous().view({n, width});
    torch::Tensor dx = torch::empty_like(sum);
    torch::Tensor dbranch = torch::empty(sum.sizes(), sum.options().dtype(torch::kBFloat16));
    const int64_t partials = kernels::LayerNormPartials(n);
    torch::Tensor dgamma = torch::empty({partials, width}, sum.options());
    torch::Tensor dbeta =
        has_bias ? torch::empty({partials, width}, sum.options()) : torch::Tensor();
    const cudaError_t status = kernels::LayerNormBackwardBf16(
        reinterpret_cast<const uint16_t*>(dy.data_ptr<at::BFloat16>()), sum.data_ptr<float>(),
        mean.data_ptr<float>(), rstd.data_ptr<float>(), weight.data_ptr<float>(),
        ds.data_ptr<float>(), dx.data_ptr<float>(),
        reinterpret_cast<uint16_t*>(dbranch.data_ptr<at::BFloat16>()), dgamma.data_ptr<float>(),
        has_bias ? dbeta.data_ptr<float>() : nullptr, n, width, CurrentStream());
    TORCH_CHECK(status == cudaSuccess, "LayerNormBackwardBf16 (add): ", cudaGetErrorString(status));
    const auto shape = grad_outputs[1].sizes();
    return {dx.view(shape),  dbranch.view(shape),
            dgamma.sum(0),   has_bias ? dbeta.sum(0) : torch::Tensor(),
            torch::Tensor(), torch::Tensor()};
  }
};

// The bias both functions take: undefined, or float32 and shaped like the weight.
void CheckBias(const torch::Tensor& bias, const torch::Tensor& weight, const char* caller) {
  TORCH_CHECK(!bias.defined() || (bias.is_contiguous() && bias.sizes() == weight.sizes() &&
                                  bias.scalar_type() == torch::kFloat32),
              caller, ": bias must be a float32 (width) tensor like the weight");
}

}  // namespace

bool FusedLayerNormApplies(const torch::Tensor& x, const torch::Tensor& weight) {
  return x.is_cuda() && x.scalar_type() == torch::kFloat32 && weight.device() == x.device() &&
         weight.scalar_type() == torch::kFloat32 && weight.is_contiguous() &&
         weight.numel() == x.size(-1) && Bf16AutocastOn(at::kCUDA) &&
         kernels::LayerNormWidthSupported(x.size(-1));
}

torch::Tensor FusedLayerNorm(const torch::Tensor& x, const torch::Tensor& weight,
                             const torch::Tensor& bias, double eps) {
  CheckBias(bias, weight, "FusedLayerNorm");
  return LayerNormToBf16::apply(x, weight, bias.defined() ? bias : weight, bias.defined(), eps);
}

bool FusedAddLayerNormApplies(const torch::Tensor& x, const torch::Tensor& branch,
                              const torch::Tensor& weight) {
  return FusedLayerNormApplies(x, weight) && branch.is_cuda() &&
         branch.scalar_type() == torch::kBFloat16 && branch.sizes() == x.sizes();
}

std::pair<torch::Tensor, torch::Tensor> FusedAddLayerNorm(const torch::Tensor& x,
                                                          const torch::Tensor& branch,
                                                          const torch::Tensor& weight,
                                                          const torch::Tensor& bias, double eps) {
  CheckBias(bias, weight, "FusedAddLayerNorm");
  const tensor_list out = AddLayerNormToBf16::apply(
      x, branch, weight, bias.defined() ? bias : weight, bias.defined(), eps);
  return {out[0], out[1]};
}

#else  // a build without the CUDA kernels

bool FusedLayerNormApplies(const torch::Tensor&, const torch::Tensor&) {
  return false;
}

torch::Tensor FusedLayerNorm(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                             double) {
  TORCH_CHECK(false, "FusedLayerNorm: this worker was built without its CUDA kernels");
}

bool FusedAddLayerNormApplies(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) {
  return false;
}

std::pair<torch::Tensor, torch::Tensor> FusedAddLayerNorm(const torch::Tensor&,
                                                          const torch::Tensor&,
                                                          const torch::Tensor&,
                                                          const torch::Tensor&, double) {
  TORCH_CHECK(false, "FusedAddLayerNorm: this worker was built without its CUDA kernels");
}

#endif

}  // namespace isoflop
