// Structured FFN linears (papers.md 3.1-3.4): each map is what the paper's text says, index by
// index; parameters equal MACs; the inits are the paper's; the self-guided guide starts as the
// exact product of the factors, blends as o = alpha W x + (1 - alpha) U(V x) + b and costs what the
// accountant charges; and the pre-merged dense matrix computes the same layer.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <numbers>
#include <string>
#include <tuple>
#include <vector>

#include "common/accountant.h"
#include "tests/worker_models_testing.h"
#include "worker/models/structured_linear.h"

namespace isoflop {
namespace {

using testing::Build;
using testing::RandomTokens;
using testing::RelativeError;
using testing::TinySpec;

SelfGuidedSpec Guided(bool reduce_flop = true) {
  SelfGuidedSpec sg;
  sg.mode = SelfGuidedMode::kFixedStep;
  sg.reduce_flop = reduce_flop;
  return sg;
}

template <typename Layer>
std::shared_ptr<Layer> Initialised(std::shared_ptr<Layer> layer, uint64_t seed = 3) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  layer->ResetFactors(gen);
  torch::NoGradGuard no_grad;
  if (layer->bias.defined()) layer->bias.normal_(0.0, 1.0, gen);  // a visible bias
  layer->ResetGuide();
  return layer;
}

int64_t Elements(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const torch::Tensor& p : m.parameters()) n += p.numel();
  return n;
}

// papers.md 3.1's BlockShuffle, written out with explicit indices: stage 1 block b reads x[b p +
// i]; stage-2 block c reads stage-1 outputs c, c + B, c + 2B, ... of the block-major h; out[j B +
// c].
torch::Tensor BlockShuffleByIndex(const BlockShuffleImpl& layer, const torch::Tensor& x) {
  const int64_t B = layer.blocks, q = layer.w1.size(1), p = layer.w1.size(2), s = layer.w2.size(1);
  auto w1 = layer.w1.accessor<float, 3>();
  auto w2 = layer.w2.accessor<float, 3>();
  torch::Tensor out = torch::zeros({x.size(0), layer.out_features});
  for (int64_t n = 0; n < x.size(0); ++n) {
    std::vector<double> h(B * q, 0.0);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < q; ++j)
        for (int64_t i = 0; i < p; ++i)
          h[b * q + j] += w1[b][j][i] * x[n][b * p + i].item<double>();
    for (int64_t c = 0; c < B; ++c)
      for (int64_t j = 0; j < s; ++j) {
        double y = 0.0;
        for (int64_t i = 0; i < q; ++i) y += w2[c][j][i] * h[c + i * B];  // stride-B gather
        out[n][j * B + c] = y;                                            // interleaved output
      }
  }
  return out;
}

TEST(BlockShuffle, IsTheMonarchMapOfThePaper) {
  for (auto [in, out, blocks] :
       std::vector<std::tuple<int64_t, int64_t, int64_t>>{{8, 24, 2}, {24, 8, 4}, {12, 12, 3}}) {
    auto layer =
        Initialised(std::make_shared<BlockShuffleImpl>(in, out, blocks, false, SelfGuidedSpec{}));
    EXPECT_EQ(Elements(*layer), std::min(in, out) * (in + out) / blocks);
    const torch::Tensor x = torch::randn({5, in});
    EXPECT_TRUE(torch::allclose(layer->forward(x), BlockShuffleByIndex(*layer, x), 1e-5, 1e-5))
        << in << " -> " << out;
    // The dense equivalent carries the permutations: x W^T is the same map.
    EXPECT_TRUE(torch::allclose(x.mm(layer->DenseWeight().t()), layer->forward(x), 1e-5, 1e-5));
  }
}

TEST(BlockDense, IsBlocksConcatenatedThenDense) {
  auto layer = Initialised(std::make_shared<BlockDenseImpl>(12, 20, 8, 4, true, SelfGuidedSpec{}));
  EXPECT_EQ(Elements(*layer), 8 * (20 + 12 / 4) + 20);  // R (out + in / B) + bias
  const torch::Tensor x = torch::randn({5, 12});
  std::vector<torch::Tensor> parts;
  for (int64_t b = 0; b < 4; ++b)
    parts.push_back(x.slice(1, 3 * b, 3 * (b + 1)).mm(layer->w1[b].t()));
  const torch::Tensor expected = torch::cat(parts, 1).mm(layer->U.t()) + layer->bias;
  EXPECT_TRUE(torch::allclose(layer->forward(x), expected, 1e-5, 1e-6));
}

TEST(LowRank, IsUTimesVxWithTheSvdInit) {
  auto layer = Initialised(std::make_shared<LowRankImpl>(48, 16, 4, false, SelfGuidedSpec{}));
  EXPECT_EQ(Elements(*layer), (48 + 16) * 4);
  const torch::Tensor x = torch::randn({5, 48});
  EXPECT_TRUE(torch::allclose(layer->forward(x), x.mm(layer->V.t()).mm(layer->U.t()), 1e-5, 1e-6));
  // V = sqrt(S_R) Vh_R, U = U_R sqrt(S_R): both Gram matrices are diag(S_R), decreasing, of the
  // size of the singular values of a 16 x 48 N(0, 0.02^2) matrix (0.02 (sqrt(48) +- sqrt(16)) at
  // the edges).
  const torch::Tensor gram_u = layer->U.t().mm(layer->U), gram_v = layer->V.mm(layer->V.t());
  EXPECT_TRUE(torch::allclose(gram_u, gram_v, 1e-4, 1e-7));
  EXPECT_TRUE(torch::allclose(gram_u, torch::diag(torch::diag(gram_u)), 1e-4, 1e-7));
  const torch::Tensor s = torch::diag(gram_u);
  EXPECT_GT(s[0].item<double>(), s[3].item<double>());
  EXPECT_GT(s[0].item<double>(), 0.02 * std::sqrt(48.0));
  EXPECT_LT(s[0].item<double>(), 0.02 * (std::sqrt(48.0) + std::sqrt(16.0)) * 1.2);
}

TEST(OrthoInit, EveryBlockHasUnitSingularValues) {
  auto shuffle = Initialised(std::make_shared<BlockShuffleImpl>(8, 24, 2, false, SelfGuidedSpec{}));
  auto dense = Initialised(std::make_shared<BlockDenseImpl>(12, 20, 8, 4, false, SelfGuidedSpec{}));
  for (const torch::Tensor& m : {shuffle->w1[0], shuffle->w2[1], dense->w1[2], dense->U}) {
    const torch::Tensor s = torch::linalg_svdvals(m);
    EXPECT_TRUE(torch::allclose(s, torch::ones_like(s), 1e-5, 1e-5)) << m.sizes();
  }
}

// -------------------------------------------------------------------------------------------------
// Self-guided training.

std::vector<std::shared_ptr<StructuredLinearImpl>> GuidedLayers(const SelfGuidedSpec& sg) {
  return {Initialised(std::make_shared<LowRankImpl>(16, 24, 4, true, sg)),
          Initialised(std::make_shared<BlockShuffleImpl>(16, 24, 2, true, sg)),
          Initialised(std::make_shared<BlockDenseImpl>(16, 24, 8, 2, true, sg))};
}

// papers.md 3.3 notes that the paper's BlockShuffle guide misses the permutations; ours is the
// exact product, so at any alpha the blend equals the structured layer alone.
TEST(SelfGuided, GuideStartsAsTheExactProductOfTheFactors) {
  for (const auto& layer : GuidedLayers(Guided())) {
    EXPECT_EQ(layer->guide.sizes(), (std::vector<int64_t>{24, 16}));
    layer->eval();
    const torch::Tensor x = torch::randn({7, 16});
    layer->set_alpha(0.0);
    const torch::Tensor structured = layer->forward(x);
    layer->set_alpha(0.37);
    EXPECT_TRUE(torch::allclose(layer->forward(x), structured, 1e-5, 1e-5));
  }
}

TEST(SelfGuided, BlendsGuideAndStructuredPath) {
  for (const auto& layer : GuidedLayers(Guided())) {
    torch::NoGradGuard no_grad;
    layer->guide.normal_();
    layer->eval();
    const torch::Tensor x = torch::randn({2, 3, 16});
    layer->set_alpha(0.0);
    const torch::Tensor structured = layer->forward(x) - layer->bias;  // U(V x)
    layer->set_alpha(0.3);
    const torch::Tensor expected =
        0.3 * x.matmul(layer->guide.t()) + 0.7 * structured + layer->bias;
    EXPECT_TRUE(torch::allclose(layer->forward(x), expected, 1e-5, 1e-5));
  }
}

// reduce_flop: in training, a call uses the guide with probability alpha and otherwise outputs
// U(V x) + b alone, without the (1 - alpha) factor.
TEST(SelfGuided, ReduceFlopUsesTheGuideWithProbabilityAlpha) {
  auto layer = GuidedLayers(Guided())[0];
  torch::NoGradGuard no_grad;
  layer->guide.normal_();
  const torch::Tensor x = torch::randn({4, 16});
  layer->set_alpha(0.0);
  const torch::Tensor structured = layer->forward(x);
  layer->set_alpha(0.3);
  const torch::Tensor blended =
      0.3 * x.mm(layer->guide.t()) + 0.7 * (structured - layer->bias) + layer->bias;
  layer->train();
  int guided = 0;
  const int calls = 4000;
  for (int i = 0; i < calls; ++i) {
    const torch::Tensor y = layer->forward(x);
    if (torch::allclose(y, structured)) continue;
    EXPECT_TRUE(torch::allclose(y, blended, 1e-5, 1e-5));
    ++guided;
  }
  EXPECT_NEAR(static_cast<double>(guided) / calls, 0.3, 0.03);
}

TEST(SelfGuided, AfterGuidanceTheGuideIsUnused) {
  auto layer = GuidedLayers(Guided(/*reduce_flop=*/false))[1];
  layer->train();
  layer->set_alpha(0.5);
  layer->forward(torch::randn({4, 16})).sum().backward();
  EXPECT_TRUE(layer->guide.grad().defined());
  layer->guide.mutable_grad() = torch::Tensor();
  layer->set_alpha(0.0);
  layer->forward(torch::randn({4, 16})).sum().backward();
  EXPECT_FALSE(layer->guide.grad().defined());
}

TEST(SelfGuided, AlphaSchedules) {
  const int64_t G = 1000;
  EXPECT_DOUBLE_EQ(GuideAlpha(AlphaSchedule::kCosine, 0, G), 1.0);
  EXPECT_NEAR(GuideAlpha(AlphaSchedule::kCosine, G / 2, G), 0.5, 1e-12);
  EXPECT_NEAR(GuideAlpha(AlphaSchedule::kCosine, G / 4, G),
              0.5 * (1 + std::cos(std::numbers::pi / 4)), 1e-12);
  EXPECT_DOUBLE_EQ(GuideAlpha(AlphaSchedule::kLinear, G / 4, G), 0.75);
  for (AlphaSchedule schedule : {AlphaSchedule::kCosine, AlphaSchedule::kLinear}) {
    EXPECT_EQ(GuideAlpha(schedule, G, G), 0.0);
    EXPECT_EQ(GuideAlpha(schedule, 5 * G, G), 0.0);
  }
}

// The accountant charges mean_alpha (0.5) of the guide's cost per guided step; over a whole
// schedule the mean alpha is that, and reduce_flop's draws make the guide's use frequency that too.
TEST(SelfGuided, ScheduleCostsWhatTheAccountantCharges) {
  ModelSpec spec = TinySpec();
  spec.ffn.type = FfnType::kLowRank;
  spec.ffn.rank = 8;
  spec.self_guided = Guided();
  const int64_t G = 4000;
  auto layer = GuidedLayers(Guided())[0];
  torch::NoGradGuard no_grad;
  layer->guide.normal_();
  layer->train();
  const torch::Tensor x = torch::randn({1, 16});
  layer->set_alpha(0.0);
  const torch::Tensor structured = layer->forward(x);
  for (AlphaSchedule schedule : {AlphaSchedule::kCosine, AlphaSchedule::kLinear}) {
    spec.self_guided.schedule = schedule;
    const double mean_alpha = Accountant::Training(spec).mean_alpha;
    ASSERT_EQ(mean_alpha, 0.5);
    double sum = 0.0;
    int64_t used = 0;
    for (int64_t t = 0; t < G; ++t) {
      const double alpha = GuideAlpha(schedule, t, G);
      sum += alpha;
      layer->set_alpha(alpha);
      used += !torch::equal(layer->forward(x), structured);
    }
    EXPECT_NEAR(sum / G, mean_alpha, 1.0 / G);
    EXPECT_NEAR(static_cast<double>(used) / G, mean_alpha, 0.025);
  }
}

TEST(SelfGuided, ModelSetsAlphaEverywhereAndDrawsFromOneSeededStream) {
  ModelSpec spec = TinySpec();
  spec.ffn.type = FfnType::kBlockShuffle;
  spec.ffn.blocks = 2;
  spec.ffn.first_layer_dense = false;
  spec.self_guided = Guided();
  auto a = Build(spec, 5);
  a->set_alpha(0.25);
  int layers = 0;
  for (const auto& m : a->modules()) {
    if (auto* layer = dynamic_cast<StructuredLinearImpl*>(m.get())) {
      EXPECT_EQ(layer->alpha(), 0.25);
      ++layers;
    }
  }
  EXPECT_EQ(layers, 4);

  // The draws continue from a checkpointed state exactly.
  ASSERT_NE(a->guide_sampler(), nullptr);
  const std::string state = a->guide_sampler()->State();
  const double u1 = a->guide_sampler()->Uniform();
  GuideSampler other(99);
  ASSERT_TRUE(other.SetState(state));
  EXPECT_EQ(other.Uniform(), u1);
  EXPECT_FALSE(other.SetState("not a state"));
}

// -------------------------------------------------------------------------------------------------
// Pre-merge (papers.md 3.3).

TEST(Premerge, MergedLayerComputesTheStructuredLayer) {
  for (const auto& layer : GuidedLayers(SelfGuidedSpec{})) {
    layer->eval();
    const torch::Tensor small = torch::randn({2, 8, 16}), large = torch::randn({4, 200, 16});
    const torch::Tensor structured = layer->forward(small);
    layer->Premerge(/*max_tokens=*/512);
    EXPECT_TRUE(layer->UsesMerged(small));
    EXPECT_FALSE(layer->UsesMerged(large));  // 800 tokens: the structured form is faster
    EXPECT_LT(RelativeError(layer->forward(small), structured), 1e-6);
    layer->train();
    EXPECT_FALSE(layer->UsesMerged(small));
    layer->eval();
    {
      torch::NoGradGuard no_grad;
      for (auto& p : layer->parameters()) p.add_(0.01);  // as an optimizer step would
    }
    EXPECT_FALSE(layer->UsesMerged(small));  // stale: never used
  }
}

TEST(Premerge, MergedModelComputesTheStructuredModel) {
  for (FfnType type : {FfnType::kLowRank, FfnType::kBlockShuffle, FfnType::kBlockDense}) {
    ModelSpec spec = TinySpec();
    spec.bias = true;
    spec.ffn.type = type;
    spec.ffn.rank = 16;
    spec.ffn.blocks = 2;
    auto model = Build(spec);
    model->eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor idx = RandomTokens(2, 16, 64, 4);
    const torch::Tensor structured = model->forward(idx);
    model->PremergeStructuredLayers();
    EXPECT_LT(RelativeError(model->forward(idx), structured), 1e-6) << ToString(type);
    // Each layer's own measured threshold: merged up to it, factored beyond.
    for (const auto& module : model->modules(/*include_self=*/false)) {
      auto* layer = dynamic_cast<StructuredLinearImpl*>(module.get());
      if (layer == nullptr) continue;
      const int64_t limit = layer->premerge_tokens();
      EXPECT_TRUE(layer->UsesMerged(torch::zeros({limit, layer->in_features}))) << ToString(type);
      EXPECT_FALSE(layer->UsesMerged(torch::zeros({limit + 1, layer->in_features})));
    }
  }
}

}  // namespace
}  // namespace isoflop
