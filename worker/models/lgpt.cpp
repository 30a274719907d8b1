#include "worker/models/lgpt.h"

namespace isoflop {

namespace F = torch::nn::functional;

CausalConv1dImpl::CausalConv1dImpl(int64_t in, int64_t out, int64_t kernel) : kernel(kernel) {
  conv = register_module("conv",
                         torch::nn::Conv1d(torch::nn::Conv1dOptions(in, out, kernel).bias(true)));
}

torch::Tensor CausalConv1dImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = x.transpose(1, 2);                                // (B, in, T)
  if (kernel > 1) h = F::pad(h, F::PadFuncOptions({kernel - 1, 0}));  // (B, in, k - 1 + T)
  return conv(h).transpose(1, 2);                                     // (B, out, T) -> (B, T, out)
}

LinearGptImpl::LinearGptImpl(const ModelSpec& spec) : LanguageModelImpl(spec) {
  blocks = register_module("blocks", torch::nn::ModuleList());
  halve = register_module("halve", torch::nn::ModuleList());
  for (int64_t i = 0; i < spec.n_layer; ++i) {
    const ModelSpec::BlockShape shape = spec.block(i);
    blocks->push_back(Block(spec, shape));
    if ((i + 1) % spec.blocks_per_stage != 0) continue;
    const int64_t d = shape.width;
    if (spec.arch == Arch::kCgpt) {
      halve->push_back(CausalConv1d(d, d / 2, spec.conv_kernel));
    } else {
      halve->push_back(torch::nn::Linear(torch::nn::LinearOptions(d, d / 2).bias(true)));
    }
  }
}

torch::Tensor LinearGptImpl::Halve(int64_t stage, const torch::Tensor& x) {
  const auto& map = halve[stage];
  return spec_.arch == Arch::kCgpt ? map->as<CausalConv1dImpl>()->forward(x)
                                   : map->as<torch::nn::LinearImpl>()->forward(x);
}

torch::Tensor LinearGptImpl::Body(const torch::Tensor& idx) {
  torch::Tensor x = Embed(idx);  // (B, T) -> (B, T, d)
  for (size_t i = 0; i < blocks->size(); ++i) {
    x = blocks[i]->as<BlockImpl>()->forward(x);  // (B, T, d_s)
    if ((i + 1) % spec_.blocks_per_stage != 0) continue;
    x = Halve((i + 1) / spec_.blocks_per_stage - 1, x);  // (B, T, d_s) -> (B, T, d_s / 2)
  }
  return x;  // (B, T, d_final)
}

torch::Tensor LinearGptImpl::DecodeBody(const torch::Tensor& x0, DecodeState& state) {
  TORCH_CHECK(CanDecode(), "cgpt with conv_kernel > 1 cannot decode with a KV cache");
  torch::Tensor x = x0;  // (B, 1, d)
  for (size_t i = 0; i < blocks->size(); ++i) {
    x = blocks[i]->as<BlockImpl>()->Decode(x, state.caches[i], state.at);  // (B, 1, d_s)
    if ((i + 1) % spec_.blocks_per_stage != 0) continue;
    x = Halve((i + 1) / spec_.blocks_per_stage - 1, x);  // per position: (B, 1, d_s / 2)
  }
  return x;  // (B, 1, d_final)
}

}  // namespace isoflop
