#include "worker/models/linear_map.h"

#include <optional>

#include "worker/models/autocast_state.h"

namespace isoflop {
namespace {

namespace F = torch::nn::functional;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

struct Bf16Linear : torch::autograd::Function<Bf16Linear> {
  // bias: nullopt without one (autograd::Function takes no undefined tensor as an input).
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight,
                               const std::optional<torch::Tensor>& bias) {
    const int64_t in = weight.size(1), out = weight.size(0);
    const torch::Tensor x2 = x.to(torch::kBFloat16).reshape({-1, in});  // (N, in)
    const torch::Tensor wb = weight.to(torch::kBFloat16);               // (out, in)
    const torch::Tensor y = bias.has_value() ? torch::addmm(bias->to(torch::kBFloat16), x2, wb.t())
                                             : torch::mm(x2, wb.t());  // (N, out) = x W^T + b
    ctx->save_for_backward({x2, wb});
    ctx->saved_data["x_dtype"] = static_cast<int64_t>(x.scalar_type());
    ctx->saved_data["has_bias"] = bias.has_value();
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = out;
    return y.view(shape);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x2 = saved[0];
    const torch::Tensor& wb = saved[1];
    const auto x_dtype = static_cast<torch::ScalarType>(ctx->saved_data["x_dtype"].toInt());
    const torch::Tensor& dy = grad_outputs[0];
    const torch::Tensor dy2 = dy.to(torch::kBFloat16).reshape({-1, wb.size(0)});  // (N, out)
    std::vector<int64_t> x_shape = dy.sizes().vec();
    x_shape.back() = wb.size(1);
    const torch::Tensor dx = torch::mm(dy2, wb).view(x_shape).to(x_dtype);  // (N, out)(out, in)
    const torch::Tensor dw = at::mm(dy2.t(), x2, torch::kFloat32);  // (out, N)(N, in), float32
    const torch::Tensor db = ctx->saved_data["has_bias"].toBool()
                                 ? dy2.sum(0, /*keepdim=*/false, torch::kFloat32)
                                 : torch::Tensor();
    return {dx, dw, db};
  }
};

}  // namespace

torch::Tensor LinearMap(const torch::Tensor& x, const torch::Tensor& weight,
                        const torch::Tensor& bias, bool float32_weight_grad) {
  const bool bf16_cuda = float32_weight_grad && x.is_cuda() && Bf16AutocastOn(at::kCUDA);
  if (bf16_cuda && weight.scalar_type() == torch::kFloat32 && weight.requires_grad() &&
      torch::GradMode::is_enabled() && (!bias.defined() || bias.scalar_type() == torch::kFloat32)) {
    return Bf16Linear::apply(x, weight,
                             bias.defined() ? std::optional<torch::Tensor>(bias) : std::nullopt);
  }
  return F::linear(x, weight, bias);
}

}  // namespace isoflop
