#include "worker/models/weight_removal.h"

#include <string>
#include <vector>

#include "worker/models/structured_linear.h"

namespace isoflop {

namespace {

// y = x w + b in the paper's row convention, float64: w (in x out), b (out), zeros without a bias.
struct Affine {
  torch::Tensor w;
  torch::Tensor b;
};

Affine Read(const torch::Tensor& weight, const torch::Tensor& bias) {
  const torch::Tensor w = weight.to(torch::kFloat64).t();  // torch's (out x in) -> (in x out)
  return {w, bias.defined() ? bias.to(torch::kFloat64) : torch::zeros({w.size(1)}, w.options())};
}
Affine Read(const torch::nn::Linear& linear) {
  return Read(linear->weight, linear->bias);
}

void Write(const Affine& a, const torch::Tensor& weight, const torch::Tensor& bias) {
  weight.copy_(a.w.t());
  if (bias.defined()) bias.copy_(a.b);
}
void Write(const Affine& a, const torch::nn::Linear& linear) {
  Write(a, linear->weight, linear->bias);
}

// x -> (x X + b_X) replaces the input of `y`: y* = X^-1 y, b_y* = b_y - b_X X^-1 y.
Affine AfterInverse(const Affine& x, const Affine& y) {
  const torch::Tensor w = torch::linalg_solve(x.w, y.w);  // X^-1 Y
  return {w, y.b - x.b.matmul(w)};
}

// Output `y` then feeds the next block's removed X': y* = y X', b_y* = b_y X' + b_X' (b_X' only
// once per sum of branches, so `with_bias` is false for the parallel P branch).
Affine Before(const Affine& y, const Affine& next, bool with_bias) {
  torch::Tensor b = y.b.matmul(next.w);
  return {y.w.mm(next.w), with_bias ? b + next.b : b};
}

torch::nn::Linear Removed(SkiplessBlockImpl& block, SkiplessRemoval removal) {
  switch (removal) {
    case SkiplessRemoval::kKP:
      return block.k;
    case SkiplessRemoval::kVP:
      return block.v;
    default:
      return block.q;
  }
}

DenseLinearImpl& Dense(const std::shared_ptr<FfnLinearImpl>& layer) {
  return *std::dynamic_pointer_cast<DenseLinearImpl>(layer);
}

}  // namespace

Result<std::shared_ptr<SkiplessGptImpl>> RemoveWeights(SkiplessGptImpl& model,
                                                       SkiplessRemoval removal) {
  const ModelSpec& spec = model.spec();
  if (spec.skipless.removed != SkiplessRemoval::kNone) {
    return Status::FailedPrecondition(
        std::string("weight removal needs a model with every projection, this one has removed ") +
        ToString(spec.skipless.removed) + " already");
  }
  if (spec.ffn.type != FfnType::kDense) {
    return Status::FailedPrecondition(
        std::string("weight removal folds P and Q into FFN matrices, which must be dense, not ") +
        ToString(spec.ffn.type));
  }
  if (spec.skipless.parallel && removal == SkiplessRemoval::kQP) {
    return Status::InvalidArgument(
        "parallel qp (papers.md Fig. 3a) is not an exact conversion: P Q' cannot be absorbed "
        "into the per-head values; remove q, or train qp from scratch");
  }
  ModelSpec merged_spec = spec;
  merged_spec.skipless.removed = removal;
  if (Status st = merged_spec.Validate(); !st.ok()) return st;

  torch::NoGradGuard no_grad;
  auto merged = std::make_shared<SkiplessGptImpl>(merged_spec);
  merged->to(model.wte->weight.device(), model.wte->weight.scalar_type());

  const int64_t L = spec.n_layer;
  std::vector<Affine> x(L);  // the removed projection of each block
  for (int64_t i = 0; i < L; ++i) x[i] = Read(Removed(model.block(i), removal));
  try {
    // The embedding feeds block 1's removed X: every row E_t X_1 + b_X1, positions wpe X_1.
    const torch::Tensor wte = model.wte->weight.to(torch::kFloat64);
    merged->wte->weight.copy_(wte.mm(x[0].w) + x[0].b);
    if (model.wpe) merged->wpe->weight.copy_(model.wpe->weight.to(torch::kFloat64).mm(x[0].w));

    for (int64_t i = 0; i < L; ++i) {
      SkiplessBlockImpl& src = model.block(i);
      SkiplessBlockImpl& dst = merged->block(i);
      // Kept projections read x X + b_X in place of x.
      if (dst.q) Write(AfterInverse(x[i], Read(src.q)), dst.q);
      if (dst.k) Write(AfterInverse(x[i], Read(src.k)), dst.k);
      if (dst.v) Write(AfterInverse(x[i], Read(src.v)), dst.v);
      DenseLinearImpl& m_src = Dense(src.mlp->c_fc);
      DenseLinearImpl& o_src = Dense(src.mlp->c_proj);
      DenseLinearImpl& m_dst = Dense(dst.mlp->c_fc);
      DenseLinearImpl& o_dst = Dense(dst.mlp->c_proj);
      const Affine m = Read(m_src.weight, m_src.bias);
      Affine o = Read(o_src.weight, o_src.bias);
      if (spec.skipless.parallel) {
        // M* = X^-1 M: in parallel blocks M reads the block input.
        Write(AfterInverse(x[i], m), m_dst.weight, m_dst.bias);
        Affine p = Read(src.p);
        if (i + 1 < L) p = Before(p, x[i + 1], /*with_bias=*/false);  // P* = P X'
        Write(p, dst.p);
      } else {
        const Affine p = Read(src.p);
        Write({p.w.mm(m.w), p.b.matmul(m.w) + m.b}, m_dst.weight, m_dst.bias);  // M* = P M
      }
      if (i + 1 < L) o = Before(o, x[i + 1], /*with_bias=*/true);  // O* = O X'
      Write(o, o_dst.weight, o_dst.bias);
    }
  } catch (const c10::Error& e) {
    return Status::FailedPrecondition(
        std::string("weight removal: a removed projection is not invertible: ") +
        e.what_without_backtrace());
  }

  merged->ln_f->weight.copy_(model.ln_f->weight);
  if (model.ln_f->bias.defined()) merged->ln_f->bias.copy_(model.ln_f->bias);
  merged->lm_head->weight.copy_(model.lm_head->weight);  // untied: Validate() forbids tying here
  merged->train(model.is_training());
  return merged;
}

}  // namespace isoflop
