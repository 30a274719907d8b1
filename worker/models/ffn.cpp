#include "worker/models/ffn.h"

namespace isoflop {

torch::Tensor Activate(const torch::Tensor& h, Activation activation) {
  switch (activation) {
    case Activation::kGelu:
      return torch::gelu(h);
    case Activation::kGeluTanh:
      return torch::gelu(h, "tanh");
    case Activation::kSwiglu: {
      const auto gate_up = h.chunk(2, -1);          // (..., 2f) -> 2 x (..., f)
      return torch::silu(gate_up[0]) * gate_up[1];  // silu(x W_gate) * (x W_up)
    }
  }
  return h;
}

MlpImpl::MlpImpl(const ModelSpec& spec, const ModelSpec::BlockShape& shape)
    : activation(spec.activation) {
  const int64_t f = shape.ffn_hidden;
  const int64_t f_in = spec.activation == Activation::kSwiglu ? 2 * f : f;  // f'
  c_fc = register_module("c_fc", MakeFfnLinear(shape.width, f_in, shape.structured_ffn, spec));
  c_proj = register_module("c_proj", MakeFfnLinear(f, shape.width, shape.structured_ffn, spec));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  const torch::Tensor h =
      Activate(c_fc->forward(x), activation);  // (B, T, d) -> (B, T, f') -> (B, T, f)
  return c_proj->forward(h);                   // (B, T, f) -> (B, T, d)
}

}  // namespace isoflop
