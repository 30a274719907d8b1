#include "worker/models/init.h"

#include <cmath>
#include <numbers>
#include <string>

#include "worker/models/ffn.h"
#include "worker/models/skipless.h"
#include "worker/models/structured_linear.h"

namespace isoflop {

namespace {

constexpr double kStd = 0.02;  // N(0, 0.02^2): GPT-2, nanoGPT, both papers' code
constexpr double kSkiplessPreactivationStd = 0.5;  // skipless FFN pre-activations (init.h)

void ZeroIfDefined(const torch::Tensor& t) {
  if (t.defined()) t.zero_();
}

// -------------------------------------------------------------------------------------------------
// gpt, pgpt, lgpt, cgpt.

void InitGptFamily(LanguageModelImpl& model, at::Generator& gen) {
  const double residual_std = kStd / std::sqrt(2.0 * static_cast<double>(model.spec().n_layer));
  for (const auto& item : model.named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    const std::string& name = item.key();
    torch::nn::Module* m = item.value().get();
    const double weight_std = name.ends_with("c_proj") ? residual_std : kStd;
    if (auto* linear = dynamic_cast<torch::nn::LinearImpl*>(m)) {
      linear->weight.normal_(0.0, weight_std, gen);
      ZeroIfDefined(linear->bias);
    } else if (auto* embedding = dynamic_cast<torch::nn::EmbeddingImpl*>(m)) {
      embedding->weight.normal_(0.0, kStd, gen);
    } else if (auto* conv = dynamic_cast<torch::nn::Conv1dImpl*>(m)) {
      conv->weight.normal_(0.0, kStd, gen);
      ZeroIfDefined(conv->bias);
    } else if (auto* norm = dynamic_cast<LayerNormImpl*>(m)) {
      norm->weight.fill_(1.0);
      ZeroIfDefined(norm->bias);
    } else if (auto* dense = dynamic_cast<DenseLinearImpl*>(m)) {
      dense->weight.normal_(0.0, weight_std, gen);
      ZeroIfDefined(dense->bias);
    } else if (auto* structured = dynamic_cast<StructuredLinearImpl*>(m)) {
      structured->ResetFactors(gen);
      structured->ResetGuide();
    }
  }
}

// -------------------------------------------------------------------------------------------------
// skipless.

// Var[a(h)] for pre-activations h ~ N(0, std^2) per coordinate (SwiGLU: gate and up independent,
// both of that std, so the product has mean 0), by quadrature on a grid fine enough for 1e-8.
double ActivationVariance(Activation activation, double std) {
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const torch::Tensor z = torch::linspace(-12.0, 12.0, 24001, f64);
  const torch::Tensor weight = torch::exp(-0.5 * z * z) / std::sqrt(2.0 * std::numbers::pi) * 1e-3;
  if (activation == Activation::kSwiglu) {
    return (torch::silu(std * z).square() * weight).sum().item<double>() * std * std;
  }
  const torch::Tensor a = Activate(std * z, activation);
  const double mean = (a * weight).sum().item<double>();
  return (a.square() * weight).sum().item<double>() - mean * mean;
}

// The matrix (out x in) = gain * M with M having orthonormal rows or columns: for isotropic inputs
// of per-coordinate std s, outputs have std gain * s * sqrt(min(1, in / out)).
torch::Tensor Orthogonal(int64_t out, int64_t in, double gain, at::Generator& gen) {
  return gain * RandomOrthogonal(out, in, gen);
}

// The gain taking per-coordinate std `in_std` to `out_std` through an orthogonal (out x in) map.
double OrthogonalGain(int64_t in, int64_t out, double in_std, double out_std) {
  return out_std / in_std * std::sqrt(std::max(1.0, static_cast<double>(out) / in));
}

// As Orthogonal, with every row summing to zero (out < in): the all-ones input maps to zero.
torch::Tensor OrthogonalBlindToConstants(int64_t out, int64_t in, double gain, at::Generator& gen) {
  torch::Tensor a = torch::randn({out, in}, gen, torch::kFloat64);
  a = a - a.mean(1, /*keepdim=*/true);  // rows orthogonal to (1, ..., 1)
  const auto [u, s, vh] = torch::linalg_svd(a, /*full_matrices=*/false);
  return (gain * u.mm(vh)).to(torch::kFloat32);  // the polar factor keeps a's row space
}

// An FFN linear of the skipless rule: dense ones gain * orthogonal (`blind_to_constants`: the rows
// sum to zero); structured ones their paper init, rescaled to the dense one's Frobenius norm,
// gain * sqrt(min(in, out)).
void InitFfnLinear(FfnLinearImpl& layer, double gain, bool blind_to_constants, at::Generator& gen) {
  const int64_t in = layer.in_features, out = layer.out_features;
  if (auto* dense = dynamic_cast<DenseLinearImpl*>(&layer)) {
    dense->weight.copy_(blind_to_constants && out < in
                            ? OrthogonalBlindToConstants(out, in, gain, gen)
                            : Orthogonal(out, in, gain, gen));
  } else if (auto* structured = dynamic_cast<StructuredLinearImpl*>(&layer)) {
    structured->ResetFactors(gen);
    const double norm = structured->DenseWeight().norm().item<double>();
    structured->ScaleMap(gain * std::sqrt(static_cast<double>(std::min(in, out))) / norm);
    structured->ResetGuide();
  }
  ZeroIfDefined(layer.bias);
}

// S (d x e): column j of key/value head g sums channel j of the r query heads of group g, each with
// weight 1/sqrt(r), so that S has orthonormal columns.
torch::Tensor GroupSum(int64_t n_head, int64_t n_kv_head, int64_t head_dim) {
  const int64_t r = n_head / n_kv_head;
  torch::Tensor s = torch::zeros({n_head * head_dim, n_kv_head * head_dim});
  for (int64_t h = 0; h < n_head; ++h) {
    const int64_t g = h / r;
    s.slice(0, h * head_dim, (h + 1) * head_dim).slice(1, g * head_dim, (g + 1) * head_dim) +=
        torch::eye(head_dim) / std::sqrt(static_cast<double>(r));
  }
  return s;
}

void InitSkiplessBlock(SkiplessBlockImpl& block, const ModelSpec& spec, double in_std,
                       at::Generator& gen) {
  const int64_t d = spec.d_model, e = spec.kv_width();
  const double identity = spec.skipless.identity_init;
  const double branch = block.parallel ? 1.0 / std::sqrt(2.0) : 1.0;
  const bool has_p = static_cast<bool>(block.p);
  // Row convention of the paper (x Q) in torch's (out x in) layout: weight = (matrix)^T.
  // R (d x d) relates queries to keys; it is the identity when either is the block input itself.
  const torch::Tensor basis = block.q && block.k ? RandomOrthogonal(d, d, gen) : torch::eye(d);
  if (block.q) {
    const double scale = block.k ? 1.0 : identity;  // kp: the key is the input; Q starts at it
    block.q->weight.copy_((scale / in_std * basis).t());
  }
  if (block.k) {
    const torch::Tensor sum = GroupSum(spec.n_head, spec.kv_heads(), spec.head_dim());
    block.k->weight.copy_((identity / in_std * basis.mm(sum)).t());  // K = identity_init R S / s_in
  }
  if (block.v) {
    block.v->weight.copy_(Orthogonal(e, d, (has_p ? 1.0 : branch) / in_std, gen));
  }
  if (has_p) block.p->weight.copy_(Orthogonal(d, d, branch, gen));
  for (auto* projection : {&block.q, &block.k, &block.v, &block.p}) {
    if (*projection) ZeroIfDefined((*projection)->bias);
  }
  // M reads the attention output (serial; the input itself for vp) or the block input (parallel).
  const double m_in_std = block.parallel || !block.v ? in_std : 1.0;
  FfnLinearImpl& m = *block.mlp->c_fc;
  FfnLinearImpl& o = *block.mlp->c_proj;
  InitFfnLinear(m, OrthogonalGain(d, m.out_features, m_in_std, kSkiplessPreactivationStd),
                /*blind_to_constants=*/false, gen);
  // GELU's output has a mean, the same for every token. O ignores it at init (and brings the rest
  // to variance 1); passed on, it would add up through the blocks into a component all tokens share
  // (the tokens' mean cosine after 8 blocks falls from 0.77 to 0.17 with identity_init 4).
  const double act_std = std::sqrt(ActivationVariance(spec.activation, kSkiplessPreactivationStd));
  InitFfnLinear(o, OrthogonalGain(o.in_features, d, act_std, branch), /*blind_to_constants=*/true,
                gen);
}

void InitSkipless(SkiplessGptImpl& model, at::Generator& gen) {
  const ModelSpec& spec = model.spec();
  const double embedding_std = spec.tied_embeddings ? kStd : 1.0;
  const double table_std = model.wpe ? embedding_std / std::sqrt(2.0) : embedding_std;
  model.wte->weight.normal_(0.0, table_std, gen);
  if (model.wpe) model.wpe->weight.normal_(0.0, table_std, gen);
  for (int64_t i = 0; i < spec.n_layer; ++i) {
    InitSkiplessBlock(model.block(i), spec, i == 0 ? embedding_std : 1.0, gen);
  }
  model.ln_f->weight.fill_(1.0);
  ZeroIfDefined(model.ln_f->bias);
  if (model.lm_head) model.lm_head->weight.normal_(0.0, kStd, gen);
}

}  // namespace

void InitializeParameters(LanguageModelImpl& model, at::Generator& gen) {
  torch::NoGradGuard no_grad;
  if (auto* skipless = dynamic_cast<SkiplessGptImpl*>(&model)) {
    InitSkipless(*skipless, gen);
  } else {
    InitGptFamily(model, gen);
  }
}

}  // namespace isoflop
