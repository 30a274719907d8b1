// Every model variant of the three seed papers, built through the registry: its tensors number
// exactly what the accountant counts, it maps (B, T) tokens to (B, T, V) logits causally and
// deterministically, and it fits one batch. Then the equivalences papers.md states per variant.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "common/accountant.h"
#include "tests/worker_models_testing.h"
#include "worker/models/gpt.h"
#include "worker/models/lgpt.h"
#include "worker/models/linear_map.h"
#include "worker/models/pgpt.h"

namespace isoflop {
namespace {

// Tiny tensors: a thread pool only adds contention (the suite shares 2 cores), and one thread keeps
// CPU results independent of the machine.
class SingleThreaded : public ::testing::Environment {
 public:
  void SetUp() override { torch::set_num_threads(1); }
};
const auto* const kSingleThreaded = ::testing::AddGlobalTestEnvironment(new SingleThreaded);

using testing::Build;
using testing::OverfitLearningRate;
using testing::OverfitOneBatch;
using testing::OverfitSteps;
using testing::RandomTokens;
using testing::TinySpec;

struct Variant {
  std::string name;
  ModelSpec spec;
};

std::vector<Variant> AllVariants() {
  std::vector<Variant> v;
  auto add = [&](std::string name, auto&& edit, Arch arch = Arch::kGpt) {
    ModelSpec s = TinySpec(arch);
    edit(s);
    v.push_back({std::move(name), s});
  };
  // gpt (papers.md 1.2) and the options common to all variants.
  add("gpt_learned_untied_gelu_mha_bias", [](ModelSpec& s) { s.bias = true; });
  add("gpt_rotary_tied_swiglu_gqa", [](ModelSpec& s) {
    s.positions = Positions::kRotary;
    s.tied_embeddings = true;
    s.activation = Activation::kSwiglu;
    s.n_kv_head = 2;
  });
  add("gpt_mqa_narrow_attention_gelu_tanh", [](ModelSpec& s) {
    s.n_kv_head = 1;
    s.attn_dim = 16;
    s.activation = Activation::kGeluTanh;
  });
  add("gpt_rotary_gqa_wide_attention_bias", [](ModelSpec& s) {
    s.positions = Positions::kRotary;
    s.n_kv_head = 2;
    s.attn_dim = 64;
    s.bias = true;
  });
  // pgpt, lgpt, cgpt (papers.md 1.3).
  add(
      "pgpt_two_paths", [](ModelSpec&) {}, Arch::kPgpt);
  add(
      "pgpt_three_paths_rotary",
      [](ModelSpec& s) {
        s.n_layer = 3;
        s.paths = 3;
        s.positions = Positions::kRotary;
      },
      Arch::kPgpt);
  add(
      "lgpt", [](ModelSpec& s) { s.n_layer = 4; }, Arch::kLgpt);
  add(
      "lgpt_stage_per_block_rotary_gqa",
      [](ModelSpec& s) {
        s.n_layer = 2;
        s.blocks_per_stage = 1;
        s.n_head = 2;
        s.n_kv_head = 1;
        s.positions = Positions::kRotary;
      },
      Arch::kLgpt);
  add(
      "cgpt_kernel1", [](ModelSpec& s) { s.n_layer = 4; }, Arch::kCgpt);
  add(
      "cgpt_kernel3",
      [](ModelSpec& s) {
        s.n_layer = 4;
        s.conv_kernel = 3;
      },
      Arch::kCgpt);
  // skipless (papers.md 2.1-2.4): serial and parallel, with every removal trained from scratch.
  add(
      "skipless_serial", [](ModelSpec& s) { s.bias = true; }, Arch::kSkipless);
  add(
      "skipless_serial_qp_gqa_swiglu_rotary",
      [](ModelSpec& s) {
        s.skipless.removed = SkiplessRemoval::kQP;
        s.n_kv_head = 2;
        s.activation = Activation::kSwiglu;
        s.positions = Positions::kRotary;
      },
      Arch::kSkipless);
  add(
      "skipless_serial_kp", [](ModelSpec& s) { s.skipless.removed = SkiplessRemoval::kKP; },
      Arch::kSkipless);
  add(
      "skipless_serial_vp_bias",
      [](ModelSpec& s) {
        s.skipless.removed = SkiplessRemoval::kVP;
        s.bias = true;
      },
      Arch::kSkipless);
  add(
      "skipless_serial_tied_mqa",
      [](ModelSpec& s) {
        s.tied_embeddings = true;
        s.n_kv_head = 1;
      },
      Arch::kSkipless);
  add(
      "skipless_parallel", [](ModelSpec& s) { s.skipless.parallel = true; }, Arch::kSkipless);
  add(
      "skipless_parallel_q_gqa",
      [](ModelSpec& s) {
        s.skipless.parallel = true;
        s.skipless.removed = SkiplessRemoval::kQ;
        s.n_kv_head = 2;
      },
      Arch::kSkipless);
  add(
      "skipless_parallel_qp",
      [](ModelSpec& s) {
        s.skipless.parallel = true;
        s.skipless.removed = SkiplessRemoval::kQP;
      },
      Arch::kSkipless);
  add(
      "skipless_serial_lowrank_ffn",
      [](ModelSpec& s) {
        s.ffn.type = FfnType::kLowRank;
        s.ffn.rank = 8;
      },
      Arch::kSkipless);
  // Structured FFN (papers.md 3.1-3.4): f = 4d = 128.
  add("lowrank_first_dense_bias", [](ModelSpec& s) {
    s.ffn.type = FfnType::kLowRank;
    s.ffn.rank = 16;
    s.bias = true;
  });
  add("lowrank_all_structured_rotary_tied", [](ModelSpec& s) {
    s.ffn.type = FfnType::kLowRank;
    s.ffn.rank = 8;
    s.ffn.first_layer_dense = false;
    s.positions = Positions::kRotary;
    s.tied_embeddings = true;
  });
  add("blockshuffle_b2_first_dense", [](ModelSpec& s) {
    s.ffn.type = FfnType::kBlockShuffle;
    s.ffn.blocks = 2;
  });
  add("blockshuffle_b4_all_structured_swiglu", [](ModelSpec& s) {
    s.ffn.type = FfnType::kBlockShuffle;
    s.ffn.blocks = 4;
    s.ffn.first_layer_dense = false;
    s.activation = Activation::kSwiglu;
  });
  add("blockdense_first_dense_bias", [](ModelSpec& s) {
    s.ffn.type = FfnType::kBlockDense;
    s.ffn.rank = 16;
    s.ffn.blocks = 2;
    s.bias = true;
  });
  add("blockdense_all_structured_gqa", [](ModelSpec& s) {
    s.ffn.type = FfnType::kBlockDense;
    s.ffn.rank = 16;
    s.ffn.blocks = 4;
    s.ffn.first_layer_dense = false;
    s.n_kv_head = 2;
  });
  add("lowrank_self_guided_fixedstep", [](ModelSpec& s) {
    s.ffn.type = FfnType::kLowRank;
    s.ffn.rank = 8;
    s.ffn.first_layer_dense = false;
    s.self_guided.mode = SelfGuidedMode::kFixedStep;
  });
  add("blockshuffle_self_guided_fixedflop_bias", [](ModelSpec& s) {
    s.ffn.type = FfnType::kBlockShuffle;
    s.ffn.blocks = 2;
    s.bias = true;
    s.self_guided.mode = SelfGuidedMode::kFixedFlop;
    s.self_guided.ratio = 0.3;
  });
  add("blockdense_self_guided_linear_no_reduce_flop", [](ModelSpec& s) {
    s.ffn.type = FfnType::kBlockDense;
    s.ffn.rank = 16;
    s.ffn.blocks = 2;
    s.ffn.first_layer_dense = false;
    s.self_guided.mode = SelfGuidedMode::kFixedStep;
    s.self_guided.schedule = AlphaSchedule::kLinear;
    s.self_guided.reduce_flop = false;
  });
  add(
      "pgpt_lowrank_self_guided",
      [](ModelSpec& s) {
        s.ffn.type = FfnType::kLowRank;
        s.ffn.rank = 8;
        s.self_guided.mode = SelfGuidedMode::kFixedStep;
      },
      Arch::kPgpt);
  add(
      "lgpt_blockshuffle",
      [](ModelSpec& s) {
        s.n_layer = 4;
        s.ffn.type = FfnType::kBlockShuffle;
        s.ffn.blocks = 2;
      },
      Arch::kLgpt);
  return v;
}

class EveryVariant : public ::testing::TestWithParam<Variant> {};

// Decoding one position at a time through the KV caches gives, at every position, the full
// forward's logits of the prefix (the last row of forward(idx[:, :t + 1])).
void ExpectCachedDecodingMatchesForward(LanguageModelImpl& model, int64_t steps) {
  const ModelSpec& spec = model.spec();
  const torch::Tensor idx = RandomTokens(2, steps, spec.vocab_size, 13);
  const torch::Tensor full = model.forward(idx);  // (2, steps, V)
  DecodeState state = model.NewDecodeState(steps);
  for (int64_t t = 0; t < steps; ++t) {
    const torch::Tensor logits = model.DecodeStep(idx.narrow(1, t, 1), state);  // (2, V)
    ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{2, spec.vocab_size}));
    EXPECT_TRUE(torch::allclose(logits, full.select(1, t), 1e-4, 1e-5))
        << "position " << t << ": max difference "
        << (logits - full.select(1, t)).abs().max().item<double>();
  }
  EXPECT_EQ(state.at.pos.item<int64_t>(), steps);
  // The cache is full: one more step is refused before it writes anything.
  EXPECT_THROW(model.DecodeStep(idx.narrow(1, 0, 1), state), c10::Error);
  EXPECT_EQ(state.at.pos.item<int64_t>(), steps);
}

// Off the GPU (and without bf16 autocast) LinearMap is F::linear, whether or not its float32
// weight-gradient path is asked for; that path itself is tested on the GPU (worker_gpu_test).
TEST(LinearMap, IsFLinearOffTheGpu) {
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({2, 3, 8});
  const torch::Tensor w = torch::randn({5, 8}).requires_grad_();
  const torch::Tensor b = torch::randn({5}).requires_grad_();
  for (const bool float32_weight_grad : {false, true}) {
    for (const torch::Tensor& bias : {b, torch::Tensor()}) {
      const torch::Tensor want = torch::nn::functional::linear(x, w, bias);
      const torch::Tensor got = LinearMap(x, w, bias, float32_weight_grad);
      EXPECT_TRUE(torch::equal(got, want));
      EXPECT_EQ(got.grad_fn()->name(), want.grad_fn()->name());
    }
  }
}

TEST_P(EveryVariant, CachedDecodingEqualsTheFullForward) {
  const auto model = Build(GetParam().spec);
  model->eval();
  torch::NoGradGuard no_grad;
  if (!model->CanDecode()) {  // cgpt with conv_kernel > 1
    EXPECT_THROW(model->NewDecodeState(8), c10::Error);
    return;
  }
  ExpectCachedDecodingMatchesForward(*model, model->spec().seq_len);
}

TEST_P(EveryVariant, ParametersAreExactlyTheAccountants) {
  const ModelSpec& spec = GetParam().spec;
  ASSERT_TRUE(spec.Validate().ok()) << spec.Validate().ToString();
  const auto model = Build(spec);
  const ModelParameterCount built = CountParameters(*model);
  const ParamCount counted = Accountant::Params(spec);
  EXPECT_EQ(built.total, counted.total);
  EXPECT_EQ(built.guide, counted.guide);
}

TEST_P(EveryVariant, MapsTokensToLogits) {
  const ModelSpec& spec = GetParam().spec;
  const auto model = Build(spec);
  for (int64_t T : {spec.seq_len, int64_t{5}}) {
    const torch::Tensor logits = model->forward(RandomTokens(3, T, spec.vocab_size, 7));
    EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{3, T, spec.vocab_size}));
    EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
  }
  EXPECT_THROW(model->forward(RandomTokens(1, spec.seq_len + 1, spec.vocab_size, 7)), c10::Error);
}

// Changing token t changes no logit before t, and does change the logits at t.
TEST_P(EveryVariant, IsCausal) {
  const ModelSpec& spec = GetParam().spec;
  const auto model = Build(spec);
  model->eval();
  torch::NoGradGuard no_grad;
  const int64_t t = 9;
  const torch::Tensor idx = RandomTokens(2, spec.seq_len, spec.vocab_size, 3);
  torch::Tensor changed = idx.clone();
  changed.select(1, t).add_(1).remainder_(spec.vocab_size);
  const torch::Tensor before = model->forward(idx), after = model->forward(changed);
  EXPECT_TRUE(torch::allclose(before.slice(1, 0, t), after.slice(1, 0, t), 0.0, 1e-6));
  EXPECT_GT((before.select(1, t) - after.select(1, t)).abs().max().item<double>(), 1e-6);
}

TEST_P(EveryVariant, IsDeterministicForASeed) {
  const ModelSpec& spec = GetParam().spec;
  const auto a = Build(spec, 42), b = Build(spec, 42), c = Build(spec, 43);
  const auto pa = a->named_parameters(), pb = b->named_parameters(), pc = c->named_parameters();
  bool any_differs_with_seed = false;
  for (const auto& item : pa) {
    EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
    any_differs_with_seed = any_differs_with_seed || !torch::equal(item.value(), pc[item.key()]);
  }
  EXPECT_TRUE(any_differs_with_seed);
  const torch::Tensor idx = RandomTokens(2, spec.seq_len, spec.vocab_size, 5);
  a->train();
  b->train();
  EXPECT_TRUE(torch::equal(a->forward(idx), b->forward(idx)));
}

// From ln(64) = 4.16 to under 1.5 nats per token on 32 random tokens, below the 3.4 that knowing
// only which tokens occur would give: the model memorises the batch.
TEST_P(EveryVariant, OverfitsOneBatch) {
  const ModelSpec& spec = GetParam().spec;
  const auto model = Build(spec);
  const auto [first, last] =
      OverfitOneBatch(*model, RandomTokens(2, spec.seq_len + 1, spec.vocab_size, 11),
                      OverfitSteps(spec), OverfitLearningRate(spec));
  EXPECT_GT(first, 3.5);
  EXPECT_LT(last, 1.5) << "from " << first;
}

INSTANTIATE_TEST_SUITE_P(Models, EveryVariant, ::testing::ValuesIn(AllVariants()),
                         [](const ::testing::TestParamInfo<Variant>& info) {
                           return info.param.name;
                         });

// -------------------------------------------------------------------------------------------------

TEST(BuildModel, RejectsAnInvalidSpec) {
  ModelSpec spec = TinySpec();
  spec.n_head = 5;  // does not divide d_model 32
  const Result<std::shared_ptr<LanguageModelImpl>> model = BuildModel(spec, 1);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), Status::Code::kInvalidArgument);
}

TEST(BuildModel, FollowsTheInitRules) {
  ModelSpec spec = TinySpec();
  spec.n_layer = 8;
  spec.d_model = 256;
  spec.bias = true;
  const auto model = Build(spec);
  auto params = model->named_parameters();
  EXPECT_NEAR(params["wte.weight"].std().item<double>(), 0.02, 0.001);
  EXPECT_NEAR(params["blocks.0.attn.c_attn.weight"].std().item<double>(), 0.02, 0.001);
  EXPECT_NEAR(params["blocks.3.attn.c_proj.weight"].std().item<double>(), 0.02 / 4, 0.0005);
  EXPECT_NEAR(params["blocks.3.mlp.c_proj.weight"].std().item<double>(), 0.02 / 4, 0.0005);
  EXPECT_TRUE(torch::equal(params["blocks.3.ln_2.weight"], torch::ones({256})));
  EXPECT_TRUE(torch::equal(params["blocks.3.mlp.c_fc.bias"], torch::zeros({1024})));
}

TEST(Loss, IsTheMeanCrossEntropyIgnoringMinusOne) {
  const torch::Tensor logits = torch::randn({2, 3, 5});
  torch::Tensor targets = torch::tensor({1, 2, 3, 4, 0, 1}, torch::kInt64).view({2, 3});
  const double all = NextTokenLoss(logits, targets).item<double>();
  const torch::Tensor logp = torch::log_softmax(logits.view({6, 5}), -1);
  double expected = 0;
  for (int i = 0; i < 6; ++i)
    expected -= logp[i][targets.view({6})[i].item<int64_t>()].item<double>();
  EXPECT_NEAR(all, expected / 6, 1e-6);
  targets[1][2] = -1;  // ignored
  EXPECT_NEAR(NextTokenLoss(logits, targets).item<double>(),
              (expected + logp[5][1].item<double>()) / 5, 1e-6);
}

// papers.md 1.3: a kernel-1 Conv1d is a per-token linear map, so cgpt with k = 1 computes what lgpt
// computes once the halving weights are copied over ((out, in) -> (out, in, 1)).
TEST(ConvGpt, KernelOneIsLinearGpt) {
  ModelSpec lgpt_spec = TinySpec(Arch::kLgpt);
  lgpt_spec.n_layer = 4;
  lgpt_spec.bias = true;
  ModelSpec cgpt_spec = lgpt_spec;
  cgpt_spec.arch = Arch::kCgpt;
  const auto lgpt = Build(lgpt_spec, 1);
  const auto cgpt = Build(cgpt_spec, 2);
  {
    torch::NoGradGuard no_grad;
    auto target = cgpt->named_parameters();
    int copied = 0;
    for (const auto& item : lgpt->named_parameters()) {
      std::string name = item.key();
      torch::Tensor source = item.value();
      if (name.starts_with("halve.")) {  // halve.s.weight -> halve.s.conv.weight
        name.insert(name.rfind('.'), ".conv");
        if (source.dim() == 2) source = source.unsqueeze(-1);
      }
      ASSERT_TRUE(target.contains(name)) << name;
      target[name].copy_(source);
      ++copied;
    }
    EXPECT_EQ(copied, static_cast<int>(target.size()));
  }
  const torch::Tensor idx = RandomTokens(2, 16, 64, 9);
  const torch::Tensor a = lgpt->forward(idx), b = cgpt->forward(idx);
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-6);
  EXPECT_GT(a.abs().max().item<double>(), 1e-3);
}

TEST(ConvGpt, KernelThreeSeesTheTwoPreviousPositionsOnly) {
  CausalConv1d conv(2, 1, 3);
  torch::NoGradGuard no_grad;
  conv->conv->weight.copy_(
      torch::tensor({1.0f, 10.0f, 100.0f, 1000.0f, 10000.0f, 100000.0f}).view({1, 2, 3}));
  conv->conv->bias.zero_();
  // x (1, T=4, C=2): channel 0 = 1, 2, 3, 4; channel 1 = 0.
  const torch::Tensor x =
      torch::stack({torch::arange(1, 5).to(torch::kFloat32), torch::zeros({4})}, 1).unsqueeze(0);
  // out[t] = 1 x[t-2] + 10 x[t-1] + 100 x[t] (channel 0), zeros before the start.
  const torch::Tensor expected = torch::tensor({100.0f, 210.0f, 321.0f, 432.0f}).view({1, 4, 1});
  EXPECT_TRUE(torch::equal(conv->forward(x), expected));
}

// RunBlocks fuses each residual add into the LayerNorm that reads its sum
// (LayerNormImpl::AddForward); it computes the pre-LN stack of papers.md 1.2 all the same, block by
// block.
TEST(Gpt, RunBlocksIsThePreLnStack) {
  ModelSpec spec = TinySpec();
  spec.n_layer = 3;
  spec.bias = true;
  auto model = std::dynamic_pointer_cast<GptImpl>(Build(spec));
  torch::NoGradGuard no_grad;
  const torch::Tensor x0 = torch::randn({2, 16, spec.d_model});
  torch::Tensor want = x0;
  for (const auto& module : *model->blocks) {
    BlockImpl& block = *module->as<BlockImpl>();
    want = want + block.attn(block.ln_1(want));  // x = x + attn(ln_1(x))
    want = want + block.mlp(block.ln_2(want));   // x = x + mlp(ln_2(x))
    EXPECT_TRUE(torch::allclose(
        block.forward(x0),
        x0 + block.attn(block.ln_1(x0)) + block.mlp(block.ln_2(x0 + block.attn(block.ln_1(x0)))),
        1e-5, 1e-6));
  }
  EXPECT_TRUE(torch::allclose(RunBlocks(*model->blocks, x0), want, 1e-5, 1e-6));
  const auto [sum, normed] = model->blocks[0]->as<BlockImpl>()->ln_2->AddForward(x0, want);
  EXPECT_TRUE(torch::equal(sum, x0 + want));
  EXPECT_TRUE(torch::allclose(normed, model->blocks[0]->as<BlockImpl>()->ln_2(x0 + want)));
}

ModelSpec TwoPathSpec() {
  ModelSpec spec = TinySpec(Arch::kPgpt);
  spec.bias = true;
  return spec;
}

// y = s x1 + (1 - s) x2 with s = sigmoid(0.5) at init; more paths mix with equal weights at init.
TEST(ParallelGpt, MixesPathsWithSigmoidWeights) {
  auto two = std::dynamic_pointer_cast<ParallelGptImpl>(Build(TwoPathSpec()));
  const torch::Tensor w = two->MixingWeights();
  EXPECT_NEAR(w[0].item<double>(), 1.0 / (1.0 + std::exp(-0.5)), 1e-6);
  EXPECT_NEAR(w[1].item<double>(), 1.0 - 1.0 / (1.0 + std::exp(-0.5)), 1e-6);
  EXPECT_EQ(two->mix.numel(), 1);

  // The forward pass is exactly the documented mix of the two paths.
  torch::NoGradGuard no_grad;
  const torch::Tensor idx = RandomTokens(2, 16, 64, 3);
  const torch::Tensor x0 = two->wte(idx) + two->wpe->weight.slice(0, 0, 16);
  auto path = [&](int p) {
    return RunBlocks(*two->paths[p]->as<torch::nn::ModuleListImpl>(),
                     two->adapters[p]->as<torch::nn::LinearImpl>()->forward(x0));
  };
  const torch::Tensor s = torch::sigmoid(two->mix);
  const torch::Tensor y = s * path(0) + (1 - s) * path(1);
  EXPECT_TRUE(torch::allclose(two->forward(idx), two->lm_head(two->ln_f(y)), 1e-5, 1e-6));

  ModelSpec spec = TinySpec(Arch::kPgpt);
  spec.n_layer = 4;
  spec.paths = 4;
  auto four = std::dynamic_pointer_cast<ParallelGptImpl>(Build(spec));
  EXPECT_TRUE(torch::allclose(four->MixingWeights(), torch::full({4}, 0.25)));
}

// pgpt-1: only the heaviest path runs, and its output still goes through ln_f (the paper's code
// skipped ln_f).
TEST(ParallelGpt, SinglePathInferenceRunsTheHeaviestPathThroughLnF) {
  auto model = std::dynamic_pointer_cast<ParallelGptImpl>(Build(TwoPathSpec()));
  model->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor idx = RandomTokens(2, 16, 64, 3);
  const torch::Tensor x0 = model->wte(idx) + model->wpe->weight.slice(0, 0, 16);
  auto path_logits = [&](int p) {
    const torch::Tensor y = RunBlocks(*model->paths[p]->as<torch::nn::ModuleListImpl>(),
                                      model->adapters[p]->as<torch::nn::LinearImpl>()->forward(x0));
    return model->lm_head(model->ln_f(y));
  };
  const torch::Tensor mixed = model->forward(idx);
  model->set_single_path(true);
  EXPECT_TRUE(torch::allclose(model->forward(idx), path_logits(0), 1e-5, 1e-6));  // s = 0.62
  model->mix.fill_(-1.0);                                                         // s = 0.27
  EXPECT_TRUE(torch::allclose(model->forward(idx), path_logits(1), 1e-5, 1e-6));
  EXPECT_FALSE(torch::allclose(mixed, path_logits(0), 1e-3, 1e-3));
}

// pgpt-1 decoding runs the path its state chose (the heaviest when the state was made).
TEST(ParallelGpt, SinglePathDecodingEqualsSinglePathForward) {
  auto model = std::dynamic_pointer_cast<ParallelGptImpl>(Build(TwoPathSpec()));
  model->eval();
  torch::NoGradGuard no_grad;
  model->set_single_path(true);
  EXPECT_EQ(model->NewDecodeState(4).path, 0);  // s = 0.62
  model->mix.fill_(-1.0);                       // s = 0.27
  EXPECT_EQ(model->NewDecodeState(4).path, 1);
  ExpectCachedDecodingMatchesForward(*model, 12);
  model->set_single_path(false);
  EXPECT_EQ(model->NewDecodeState(4).path, -1);
  ExpectCachedDecodingMatchesForward(*model, 12);
}

}  // namespace
}  // namespace isoflop
