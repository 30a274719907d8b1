#include "worker/models/structured_linear.h"

#include "worker/models/linear_map.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <sstream>

namespace isoflop {

namespace F = torch::nn::functional;

namespace {

// B independent matmuls: x (n, B, i), w (B, o, i) -> (n, B, o), y[:, b] = x[:, b] w[b]^T.
torch::Tensor BlockDiagonal(const torch::Tensor& x, const torch::Tensor& w) {
  return torch::bmm(x.transpose(0, 1), w.transpose(1, 2)).transpose(0, 1);
}

}  // namespace

// -------------------------------------------------------------------------------------------------
// Dense.

FfnLinearImpl::FfnLinearImpl(int64_t in, int64_t out, bool bias)
    : in_features(in), out_features(out) {
  if (bias) this->bias = register_parameter("bias", torch::zeros({out}));
}

DenseLinearImpl::DenseLinearImpl(int64_t in, int64_t out, bool bias)
    : FfnLinearImpl(in, out, bias) {
  weight = register_parameter("weight", torch::zeros({out, in}));
}

torch::Tensor DenseLinearImpl::forward(const torch::Tensor& x) {
  return LinearMap(x, weight, bias, float32_weight_grads);  // (..., in) -> (..., out)
}

void DenseLinearImpl::ScaleMap(double s) {
  torch::NoGradGuard no_grad;
  weight.mul_(s);
}

// -------------------------------------------------------------------------------------------------
// Self-guided training.

std::string GuideSampler::State() const {
  std::ostringstream out;
  out << engine_;
  return out.str();
}

bool GuideSampler::SetState(const std::string& state) {
  std::istringstream in(state);
  std::mt19937_64 engine;
  if (!(in >> engine)) return false;
  engine_ = engine;
  return true;
}

double GuideAlpha(AlphaSchedule schedule, int64_t step, int64_t guided_steps) {
  if (step >= guided_steps) return 0.0;
  const double progress = static_cast<double>(step) / static_cast<double>(guided_steps);  // t / G
  switch (schedule) {
    case AlphaSchedule::kCosine:
      return 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
    case AlphaSchedule::kLinear:
      return 1.0 - progress;
  }
  return 0.0;
}

// -------------------------------------------------------------------------------------------------
// Structured: bias, guide and pre-merge around the factorised map.

StructuredLinearImpl::StructuredLinearImpl(int64_t in, int64_t out, bool bias,
                                           const SelfGuidedSpec& self_guided)
    : FfnLinearImpl(in, out, bias), reduce_flop_(self_guided.reduce_flop) {
  if (self_guided.mode != SelfGuidedMode::kOff) {
    guide = register_parameter("guide", torch::zeros({out, in}));
    alpha_ = 1.0;  // guidance starts fully on: alpha(0) = 1
    sampler_ = std::make_shared<GuideSampler>(/*seed=*/0);
  }
}

torch::Tensor StructuredLinearImpl::forward(const torch::Tensor& x) {
  if (UsesMerged(x)) return F::linear(x, merged_, bias);  // pre-merged: one dense (out x in) matmul
  const torch::Tensor rows = x.reshape({-1, in_features});  // (..., in) -> (n, in)
  torch::Tensor y = Map(rows);                              // U(V x): (n, in) -> (n, out)
  if (UsesGuide()) {
    y = alpha_ * F::linear(rows, guide) + (1.0 - alpha_) * y;  // o = alpha W x + (1 - alpha) U(V x)
  }
  if (bias.defined()) y = y + bias;  // + b
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = out_features;
  return y.view(shape);  // (n, out) -> (..., out)
}

bool StructuredLinearImpl::UsesGuide() {
  if (!guide.defined() || alpha_ <= 0.0) return false;
  if (!is_training() || !reduce_flop_) return true;
  return sampler_->Uniform() < alpha_;  // reduce_flop: the guide's expected cost is alpha
}

torch::Tensor StructuredLinearImpl::DenseWeight() {
  const torch::Tensor factor = Factors().front();
  return Map(torch::eye(in_features, factor.options()))
      .t()
      .contiguous();  // (in, out)^T: W x = Map(x)
}

void StructuredLinearImpl::ScaleMap(double s) {
  torch::NoGradGuard no_grad;
  const std::vector<torch::Tensor> factors = Factors();
  const double per_factor = std::pow(s, 1.0 / static_cast<double>(factors.size()));
  for (const torch::Tensor& factor : factors) factor.mul_(per_factor);
}

void StructuredLinearImpl::ResetGuide() {
  if (!guide.defined()) return;
  torch::NoGradGuard no_grad;
  guide.copy_(DenseWeight());
}

void StructuredLinearImpl::Premerge(int64_t max_tokens) {
  torch::NoGradGuard no_grad;
  merged_ = DenseWeight();
  merged_max_tokens_ = max_tokens;
  merged_versions_.clear();
  for (const torch::Tensor& factor : Factors()) merged_versions_.push_back(factor._version());
}

bool StructuredLinearImpl::UsesMerged(const torch::Tensor& x) const {
  if (!merged_.defined() || is_training()) return false;
  if (guide.defined() && alpha_ > 0.0) return false;  // the guide still contributes
  if (x.numel() / in_features > merged_max_tokens_) return false;
  // A merge made stale by an optimizer step, or left behind by a move to another device or dtype.
  const std::vector<torch::Tensor> factors = Factors();
  if (merged_.device() != factors[0].device() || merged_.dtype() != factors[0].dtype())
    return false;
  for (size_t i = 0; i < factors.size(); ++i) {
    if (factors[i]._version() != merged_versions_[i]) return false;
  }
  return true;
}

// -------------------------------------------------------------------------------------------------
// LowRank.

LowRankImpl::LowRankImpl(int64_t in, int64_t out, int64_t rank, bool bias,
                         const SelfGuidedSpec& self_guided)
    : StructuredLinearImpl(in, out, bias, self_guided) {
  V = register_parameter("V", torch::zeros({rank, in}));
  U = register_parameter("U", torch::zeros({out, rank}));
}

torch::Tensor LowRankImpl::Map(const torch::Tensor& x) {
  return F::linear(F::linear(x, V), U);  // (n, in) -> (n, R) -> (n, out): y = U (V x)
}

void LowRankImpl::ResetFactors(at::Generator& gen) {
  torch::NoGradGuard no_grad;
  const int64_t rank = V.size(0);
  const torch::Tensor w0 = 0.02 * torch::randn({out_features, in_features}, gen, torch::kFloat64);
  const auto [u, s, vh] = torch::linalg_svd(w0, /*full_matrices=*/false);  // W0 = U_s diag(S) Vh
  const torch::Tensor root = s.slice(0, 0, rank).sqrt();                   // sqrt(S_R)
  V.copy_(root.unsqueeze(1) * vh.slice(0, 0, rank));  // sqrt(S_R) Vh_R: (R, in)
  U.copy_(u.slice(1, 0, rank) * root.unsqueeze(0));   // U_R sqrt(S_R): (out, R)
  if (bias.defined()) bias.zero_();
}

// -------------------------------------------------------------------------------------------------
// BlockShuffle.

BlockShuffleImpl::BlockShuffleImpl(int64_t in, int64_t out, int64_t blocks, bool bias,
                                   const SelfGuidedSpec& self_guided)
    : StructuredLinearImpl(in, out, bias, self_guided), blocks(blocks) {
  const int64_t p = in / blocks, q = std::min(in, out) / blocks, s = out / blocks;
  w1 = register_parameter("w1", torch::zeros({blocks, q, p}));
  w2 = register_parameter("w2", torch::zeros({blocks, s, q}));
}

// Block-major (B, n, .) intermediates throughout, so that each stage is one strided-batched GEMM
// whose operands cuBLAS reads in place (stage 1 reads x's blocks with leading dimension `in`), and
// the shuffle and the output interleave are one copy each.
torch::Tensor BlockShuffleImpl::Map(const torch::Tensor& x) {
  const int64_t n = x.size(0), p = w1.size(2), q = w1.size(1), B = blocks;
  // stage 1: x viewed (B, n, p) -> h1 (B, n, q); h1[b, t] is h_b of token t
  const torch::Tensor h1 = torch::bmm(x.reshape({n, B, p}).transpose(0, 1), w1.transpose(1, 2));
  // shuffle: stage-2 block c reads h[c], h[c + B], ... of h = (h_0 | h_1 | ...), i.e.
  // h2[c, t, j] = h1[j B + c] over the flattened (B q). With q = m B, j = b m + j' and
  // j B + c = b q + j' B + c: h2[c, t, b m + j'] = h1[b, t, j' B + c].
  const torch::Tensor h2 = q % B == 0
                               ? h1.view({B, n, q / B, B}).permute({3, 1, 0, 2}).reshape({B, n, q})
                               : h1.transpose(0, 1).reshape({n, q, B}).permute({2, 0, 1});
  const torch::Tensor y = torch::bmm(h2, w2.transpose(1, 2));  // stage 2: (B, n, q) -> (B, n, s)
  return y.permute({1, 2, 0}).reshape({n, out_features});      // out[j B + c] = y_c[j]
}

void BlockShuffleImpl::ResetFactors(at::Generator& gen) {
  torch::NoGradGuard no_grad;
  for (int64_t b = 0; b < blocks; ++b) {
    w1[b].copy_(RandomOrthogonal(w1.size(1), w1.size(2), gen));
    w2[b].copy_(RandomOrthogonal(w2.size(1), w2.size(2), gen));
  }
  if (bias.defined()) bias.zero_();
}

// -------------------------------------------------------------------------------------------------
// BlockDense.

BlockDenseImpl::BlockDenseImpl(int64_t in, int64_t out, int64_t rank, int64_t blocks, bool bias,
                               const SelfGuidedSpec& self_guided)
    : StructuredLinearImpl(in, out, bias, self_guided), blocks(blocks) {
  w1 = register_parameter("w1", torch::zeros({blocks, rank / blocks, in / blocks}));
  U = register_parameter("U", torch::zeros({out, rank}));
}

torch::Tensor BlockDenseImpl::Map(const torch::Tensor& x) {
  const int64_t n = x.size(0), r = w1.size(1);
  // R/B rounded up to a multiple of 8: bf16 tensor cores need leading dimensions of 16 bytes, and
  // the paper's ranks (2 round(d/3) at d = 2048: R/B = 683) would otherwise run 3-5x slower than
  // the dense layer they replace (bench/results/gpu_ffn.md). The zero rows of w1 and zero columns
  // of U add nothing to the product and get no gradient.
  const int64_t r_pad = (r + 7) / 8 * 8;
  const torch::Tensor w = r_pad == r ? w1 : F::pad(w1, F::PadFuncOptions({0, 0, 0, r_pad - r}));
  const torch::Tensor u =
      r_pad == r ? U
                 : F::pad(U.view({out_features, blocks, r}), F::PadFuncOptions({0, r_pad - r}))
                       .view({out_features, blocks * r_pad});
  const torch::Tensor h =
      BlockDiagonal(x.reshape({n, blocks, in_features / blocks}), w);  // (n, B, R/B)
  return F::linear(h.reshape({n, blocks * r_pad}), u);  // (n, R) block-major -> (n, out)
}

void BlockDenseImpl::ResetFactors(at::Generator& gen) {
  torch::NoGradGuard no_grad;
  for (int64_t b = 0; b < blocks; ++b) w1[b].copy_(RandomOrthogonal(w1.size(1), w1.size(2), gen));
  U.copy_(RandomOrthogonal(U.size(0), U.size(1), gen));
  if (bias.defined()) bias.zero_();
}

// -------------------------------------------------------------------------------------------------

std::shared_ptr<FfnLinearImpl> MakeFfnLinear(int64_t in, int64_t out, bool structured,
                                             const ModelSpec& spec) {
  const FfnSpec& ffn = spec.ffn;
  if (!structured || ffn.type == FfnType::kDense) {
    return std::make_shared<DenseLinearImpl>(in, out, spec.bias);
  }
  switch (ffn.type) {
    case FfnType::kLowRank:
      return std::make_shared<LowRankImpl>(in, out, ffn.rank, spec.bias, spec.self_guided);
    case FfnType::kBlockShuffle:
      return std::make_shared<BlockShuffleImpl>(in, out, ffn.blocks, spec.bias, spec.self_guided);
    case FfnType::kBlockDense:
      return std::make_shared<BlockDenseImpl>(in, out, ffn.rank, ffn.blocks, spec.bias,
                                              spec.self_guided);
    case FfnType::kDense:
      break;
  }
  return std::make_shared<DenseLinearImpl>(in, out, spec.bias);
}

torch::Tensor RandomOrthogonal(int64_t rows, int64_t cols, at::Generator& gen) {
  const torch::Tensor a = torch::randn({rows, cols}, gen, torch::kFloat64);
  const auto [u, s, vh] = torch::linalg_svd(a, /*full_matrices=*/false);
  return u.mm(vh).to(torch::kFloat32);  // A = U S Vh -> U Vh: all singular values 1
}

}  // namespace isoflop
