// Skipless transformers (papers.md section 2): the weight-removal transform computes the same
// function, in float64 to 1e-10, with 2 d^2 fewer weights per block (d^2 for the parallel exact
// conversion) as the accountant says; and the identity-biased init lets a deep skipless stack
// learn.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <memory>
#include <string>

#include "common/accountant.h"
#include "tests/worker_models_testing.h"
#include "worker/models/skipless.h"
#include "worker/models/weight_removal.h"

namespace isoflop {
namespace {

using testing::Build;
using testing::OverfitOneBatch;
using testing::RandomTokens;
using testing::RelativeError;

// 4 blocks, d 64, 4 heads of 16, SwiGLU, RoPE, biases on (so the bias folding is exercised),
// untied.
ModelSpec SkiplessSpec(int64_t n_kv_head, bool parallel = false) {
  ModelSpec s;
  s.arch = Arch::kSkipless;
  s.n_layer = 4;
  s.d_model = 64;
  s.n_head = 4;
  s.n_kv_head = n_kv_head;
  s.vocab_size = 96;
  s.seq_len = 24;
  s.positions = Positions::kRotary;
  s.activation = Activation::kSwiglu;
  s.bias = true;
  s.skipless.parallel = parallel;
  return s;
}

// A random model rather than a freshly initialised one: the init makes Q orthogonal and every bias
// zero, which would hide mistakes in the inverses and in the bias folding.
std::shared_ptr<SkiplessGptImpl> RandomSkipless(const ModelSpec& spec) {
  auto model = std::dynamic_pointer_cast<SkiplessGptImpl>(Build(spec, 17));
  torch::NoGradGuard no_grad;
  at::Generator gen = at::detail::createCPUGenerator(23);
  for (torch::Tensor& p : model->parameters()) {
    const double scale = p.dim() == 2 ? 0.3 / std::sqrt(static_cast<double>(p.size(1))) : 0.1;
    p.add_(torch::randn(p.sizes(), gen) * scale);
  }
  model->to(torch::kFloat64);
  model->eval();
  return model;
}

struct Case {
  std::string name;
  ModelSpec spec;
  SkiplessRemoval removal;
};

class WeightRemoval : public ::testing::TestWithParam<Case> {};

TEST_P(WeightRemoval, MergedModelComputesTheSameLogitsInFloat64) {
  const Case& c = GetParam();
  auto model = RandomSkipless(c.spec);
  const torch::Tensor idx = RandomTokens(3, c.spec.seq_len, c.spec.vocab_size, 8);
  torch::NoGradGuard no_grad;
  const torch::Tensor before = model->forward(idx);
  Result<std::shared_ptr<SkiplessGptImpl>> merged = RemoveWeights(*model, c.removal);
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  EXPECT_EQ((*merged)->spec().skipless.removed, c.removal);
  EXPECT_EQ((*merged)->wte->weight.scalar_type(), torch::kFloat64);
  EXPECT_FALSE((*merged)->is_training());
  EXPECT_LT(RelativeError((*merged)->forward(idx), before), 1e-10);
}

TEST_P(WeightRemoval, DropsExactlyTheAccountantsDifference) {
  const Case& c = GetParam();
  auto model = RandomSkipless(c.spec);
  auto merged = RemoveWeights(*model, c.removal);
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  const int64_t drop = CountParameters(*model).total - CountParameters(**merged).total;
  EXPECT_EQ(drop, Accountant::Params(c.spec).total - Accountant::Params((*merged)->spec()).total);
  const int64_t d = c.spec.d_model, L = c.spec.n_layer;
  const int64_t per_matrix = d * d + d;  // weights and bias of one d x d projection
  EXPECT_EQ(drop, (c.removal == SkiplessRemoval::kQ ? 1 : 2) * per_matrix * L);
}

ModelSpec WithLearnedPositionsAndGelu(ModelSpec s) {
  s.positions = Positions::kLearned;
  s.activation = Activation::kGelu;
  return s;
}

INSTANTIATE_TEST_SUITE_P(
    Skipless, WeightRemoval,
    ::testing::Values(Case{"serial_mha_qp", SkiplessSpec(4), SkiplessRemoval::kQP},
                      Case{"serial_mqa_qp", SkiplessSpec(1), SkiplessRemoval::kQP},
                      Case{"serial_gqa_qp", SkiplessSpec(2), SkiplessRemoval::kQP},
                      Case{"serial_mha_kp", SkiplessSpec(4), SkiplessRemoval::kKP},
                      Case{"serial_mha_vp", SkiplessSpec(4), SkiplessRemoval::kVP},
                      Case{"serial_gqa_qp_learned_gelu",
                           WithLearnedPositionsAndGelu(SkiplessSpec(2)), SkiplessRemoval::kQP},
                      Case{"parallel_mha_q", SkiplessSpec(4, true), SkiplessRemoval::kQ},
                      Case{"parallel_gqa_q_learned_gelu",
                           WithLearnedPositionsAndGelu(SkiplessSpec(2, true)),
                           SkiplessRemoval::kQ}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

// In float32 the same transform loses digits to cond(Q) (papers.md 2.6): still close, far from
// 1e-10.
TEST(WeightRemovalPrecision, Float32ModelIsMergedThroughFloat64) {
  auto model = RandomSkipless(SkiplessSpec(2));
  model->to(torch::kFloat32);
  const torch::Tensor idx = RandomTokens(2, 24, 96, 8);
  torch::NoGradGuard no_grad;
  const torch::Tensor before = model->forward(idx);
  auto merged = RemoveWeights(*model, SkiplessRemoval::kQP);
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  EXPECT_EQ((*merged)->wte->weight.scalar_type(), torch::kFloat32);
  EXPECT_LT(RelativeError((*merged)->forward(idx), before), 1e-4);
}

TEST(WeightRemovalPreconditions, RefusesWhatIsNotAnExactConversion) {
  auto parallel = RandomSkipless(SkiplessSpec(4, true));
  auto qp = RemoveWeights(*parallel, SkiplessRemoval::kQP);  // Fig. 3a: from scratch only
  EXPECT_EQ(qp.status().code(), Status::Code::kInvalidArgument);

  auto gqa = RandomSkipless(SkiplessSpec(2));
  EXPECT_FALSE(RemoveWeights(*gqa, SkiplessRemoval::kKP).ok());  // K is d x e, not invertible
  EXPECT_FALSE(RemoveWeights(*gqa, SkiplessRemoval::kQ).ok());   // q is for parallel blocks

  ModelSpec tied = SkiplessSpec(4);
  tied.tied_embeddings = true;
  EXPECT_FALSE(RemoveWeights(*RandomSkipless(tied), SkiplessRemoval::kQP).ok());

  ModelSpec structured = SkiplessSpec(4);
  structured.ffn.type = FfnType::kLowRank;
  structured.ffn.rank = 16;
  auto lowrank = RemoveWeights(*RandomSkipless(structured), SkiplessRemoval::kQP);
  EXPECT_EQ(lowrank.status().code(), Status::Code::kFailedPrecondition);

  ModelSpec removed = SkiplessSpec(4);
  removed.skipless.removed = SkiplessRemoval::kQP;
  EXPECT_EQ(RemoveWeights(*RandomSkipless(removed), SkiplessRemoval::kKP).status().code(),
            Status::Code::kFailedPrecondition);
}

// -------------------------------------------------------------------------------------------------
// Training a deep skipless stack (papers.md 2.6: the main risk).

ModelSpec DeepSkipless(double identity_init) {
  ModelSpec s;
  s.arch = Arch::kSkipless;
  s.n_layer = 8;
  s.d_model = 64;
  s.n_head = 4;
  s.vocab_size = 64;
  s.seq_len = 32;
  s.skipless.identity_init = identity_init;
  return s;
}

// He et al.'s point, at a size a test can afford: eight norm-free blocks learn with this init, and
// do not learn at all from GPT-2's N(0, 0.02^2) everywhere (the signal is gone after a few blocks;
// its loss stays at ln 64 to three decimals). The step is small because every update multiplies
// through all later blocks (papers.md 2.6).
TEST(SkiplessTraining, EightLayersFitABatch) {
  const torch::Tensor batch = RandomTokens(4, 33, 64, 21);
  auto model = Build(DeepSkipless(1.0));
  const auto [first, last] = OverfitOneBatch(*model, batch, 200, 2e-4);
  EXPECT_LT(first, 4.5);  // ln 64 = 4.16: the init does not blow the logits up
  EXPECT_LT(last, 3.3) << "from " << first;

  auto gpt2_init = Build(DeepSkipless(1.0));
  {
    torch::NoGradGuard no_grad;
    at::Generator gen = at::detail::createCPUGenerator(5);
    for (auto& item : gpt2_init->named_parameters()) {
      if (item.key().ends_with("bias")) continue;
      if (item.key() == "ln_f.weight") continue;
      item.value().normal_(0.0, 0.02, gen);
    }
  }
  const auto [gpt2_first, gpt2_last] = OverfitOneBatch(*gpt2_init, batch, 100, 2e-4);
  EXPECT_GT(gpt2_last, 4.0) << "from " << gpt2_first;
}

// What the identity bias is for: after eight blocks at init, the tokens still have different
// representations. With uniform attention (identity_init 0) each block averages over the past, and
// the positions' representations collapse onto one direction.
TEST(SkiplessTraining, IdentityBiasedInitKeepsTokensApart) {
  auto similarity = [](double identity_init) {
    auto model = std::dynamic_pointer_cast<SkiplessGptImpl>(Build(DeepSkipless(identity_init)));
    torch::NoGradGuard no_grad;
    const torch::Tensor idx = torch::arange(32).view({1, 32});  // 32 distinct tokens
    torch::Tensor x = model->wte(idx) + model->wpe->weight.slice(0, 0, 32);
    for (int64_t i = 0; i < 8; ++i) x = model->block(i).forward(x);
    const torch::Tensor unit = x[0] / x[0].norm(2, -1, true);            // (T, d)
    return ((unit.mm(unit.t()).sum() - 32) / (32 * 31)).item<double>();  // mean cosine over pairs
  };
  const double biased = similarity(4.0), uniform = similarity(0.0);
  EXPECT_LT(biased, 0.4);
  EXPECT_GT(uniform, 0.9);
}

}  // namespace
}  // namespace isoflop
