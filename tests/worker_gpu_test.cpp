// The worker's CUDA-only paths, checked on a GPU (each test skips without one): the fused head and
// cross-entropy (worker/models/lm_head_loss.h) and the LayerNorm kernel (fused_layer_norm.h)
// against float64 on the CPU, and whole-step CUDA graphs (worker/runtime/step_graph.h) against
// eager steps of the same run. cluster/gpu_checks.sh
// builds and runs this binary on the GPU machine.
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "tests/worker_testing.h"
#include "worker/models/fused_layer_norm.h"
#include "worker/models/linear_map.h"
#include "worker/models/lm_head_loss.h"
#include "worker/models/model_registry.h"
#include "worker/runtime/trainer.h"

namespace isoflop {
namespace {

namespace F = torch::nn::functional;

#define REQUIRE_CUDA()                                                                  \
  if (!torch::cuda::is_available() || !FusedLmHeadLossAvailable(torch::Device("cuda"))) \
  GTEST_SKIP() << "needs a CUDA device and the worker's CUDA kernels"

double RelativeError(const torch::Tensor& got, const torch::Tensor& want) {
  const torch::Tensor g = got.to(torch::kCPU, torch::kFloat64), w = want.to(torch::kFloat64);
  return ((g - w).norm() / w.norm()).item<double>();
}

// Float64 reference of mean cross-entropy of h W^T over the counted rows, with its gradients, on
// the same bf16-rounded operands the fused path multiplies.
struct Reference {
  double loss;
  torch::Tensor dh, dw;
};
Reference ReferenceLoss(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& y,
                        double upstream) {
  torch::Tensor h64 = h.to(torch::kBFloat16).to(torch::kCPU, torch::kFloat64).requires_grad_();
  torch::Tensor w64 = w.to(torch::kBFloat16).to(torch::kCPU, torch::kFloat64).requires_grad_();
  const torch::Tensor loss = F::cross_entropy(torch::mm(h64, w64.t()), y.to(torch::kCPU),
                                              F::CrossEntropyFuncOptions().ignore_index(-1));
  (loss * upstream).backward();
  return {loss.item<double>(), h64.grad(), w64.grad()};
}

void CheckFusedAgainstReference(int64_t rows, int64_t width, int64_t vocab, bool ignore_some) {
  torch::manual_seed(static_cast<uint64_t>(rows + vocab));
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  // Logits of a few units, as a trained head's: softmax neither flat nor one-hot.
  torch::Tensor h = (torch::randn({rows, width}, cuda) * 2.0).requires_grad_();
  torch::Tensor w =
      (torch::randn({vocab, width}, cuda) / std::sqrt(double(width))).requires_grad_();
  torch::Tensor y = torch::randint(0, vocab, {rows}, cuda.dtype(torch::kInt64));
  if (ignore_some) y.index_put_({torch::arange(0, rows, 7, cuda.dtype(torch::kInt64))}, -1);
  const double upstream = 0.25;  // a loss divided by 4 micro-batches, say

  const torch::Tensor loss = LmHeadLoss(h, w, y);
  (loss * upstream).backward();
  const Reference ref = ReferenceLoss(h.detach(), w.detach(), y, upstream);

  EXPECT_EQ(loss.scalar_type(), torch::kFloat32);
  EXPECT_NEAR(loss.item<double>(), ref.loss, 2e-3 * ref.loss) << rows << "x" << vocab;
  EXPECT_TRUE(torch::isfinite(h.grad()).all().item<bool>());
  EXPECT_EQ(h.grad().scalar_type(), torch::kFloat32);  // gradients in the inputs' dtypes
  EXPECT_EQ(w.grad().scalar_type(), torch::kFloat32);
  EXPECT_LT(RelativeError(h.grad(), ref.dh), 2e-2) << rows << "x" << vocab;
  EXPECT_LT(RelativeError(w.grad(), ref.dw), 2e-2) << rows << "x" << vocab;
}

TEST(FusedLmHeadLoss, MatchesFloat64AtGpt2Vocabulary) {
  REQUIRE_CUDA();
  CheckFusedAgainstReference(/*rows=*/2048, /*width=*/256, /*vocab=*/50304, false);
}

TEST(FusedLmHeadLoss, MatchesFloat64AtAVocabularyTooLongForSharedMemory) {
  REQUIRE_CUDA();
  // 131072 bf16 logits a row are 256 KiB, over any GPU's shared memory a block: the kernel's
  // uncached vector path (16-byte loads, the row read twice).
  CheckFusedAgainstReference(/*rows=*/256, /*width=*/64, /*vocab=*/131072, false);
}

TEST(FusedLmHeadLoss, MatchesFloat64WithIgnoredRowsAndAnUnalignedVocabulary) {
  REQUIRE_CUDA();
  CheckFusedAgainstReference(1000, 64, 1001, true);  // 1001 % 8 != 0: the scalar path
  CheckFusedAgainstReference(1000, 64, 1000, true);
}

TEST(FusedLmHeadLoss, TrainingLossEqualsThePlainPathUnderAutocast) {
  REQUIRE_CUDA();
  // The whole model: Loss (fused on CUDA in bf16) against NextTokenLoss(forward) on the same batch.
  RunConfig run;
  run.model.n_layer = 2;
  run.model.d_model = 64;
  run.model.n_head = 2;
  run.model.seq_len = 32;
  run.model.vocab_size = 512;
  auto model = BuildModel(run.model, 3).value();
  model->to(torch::kCUDA);
  const torch::Tensor idx = torch::randint(
      0, 512, {4, 33}, torch::TensorOptions().device(torch::kCUDA).dtype(torch::kInt64));
  at::autocast::set_autocast_enabled(at::kCUDA, true);
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  const double fused = model->Loss(idx.narrow(1, 0, 32), idx.narrow(1, 1, 32)).item<double>();
  const double plain =
      NextTokenLoss(model->forward(idx.narrow(1, 0, 32)), idx.narrow(1, 1, 32)).item<double>();
  at::autocast::set_autocast_enabled(at::kCUDA, false);
  at::autocast::clear_cache();
  EXPECT_NEAR(fused, plain, 1e-2 * plain);
}

// LinearMap under bf16 autocast (float32 weight gradients straight from the GEMM) against
// F::linear under autocast and against float64, with and without a bias.
TEST(LinearMap, MatchesAutocastLinearAndFloat64) {
  REQUIRE_CUDA();
  torch::manual_seed(7);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  for (const bool with_bias : {false, true}) {
    const torch::Tensor x0 = torch::randn({4, 64, 96}, cuda);
    const torch::Tensor w0 = torch::randn({80, 96}, cuda) / std::sqrt(96.0);
    const torch::Tensor b0 = with_bias ? torch::randn({80}, cuda) : torch::Tensor();
    const torch::Tensor r = torch::randn({4, 64, 80}, cuda);
    struct Grads {
      torch::Tensor y, dx, dw, db;
    };
    auto run = [&](bool mapped, torch::ScalarType dtype) {
      torch::Tensor x = x0.to(dtype).requires_grad_();
      torch::Tensor w = w0.to(dtype).requires_grad_();
      torch::Tensor b = with_bias ? b0.to(dtype).requires_grad_() : torch::Tensor();
      const bool autocast = dtype == torch::kFloat32;
      at::autocast::set_autocast_enabled(at::kCUDA, autocast);
      at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
      torch::Tensor y = mapped ? LinearMap(x, w, b, /*float32_weight_grad=*/true)
                               : torch::nn::functional::linear(x, w, b);
      at::autocast::set_autocast_enabled(at::kCUDA, false);
      at::autocast::clear_cache();
      (y.to(dtype) * r.to(dtype)).sum().backward();
      return Grads{y.detach(), x.grad(), w.grad(), with_bias ? b.grad() : torch::Tensor()};
    };
    const Grads mapped = run(true, torch::kFloat32), plain = run(false, torch::kFloat32);
    const Grads exact = run(false, torch::kFloat64);
    EXPECT_EQ(mapped.y.scalar_type(), torch::kBFloat16);
    EXPECT_EQ(mapped.dx.scalar_type(), torch::kFloat32);
    EXPECT_EQ(mapped.dw.scalar_type(), torch::kFloat32);
    auto error = [](const torch::Tensor& got, const torch::Tensor& want) {
      return RelativeError(got, want.cpu());
    };
    EXPECT_LT(error(mapped.y, plain.y), 1e-3) << "the same bf16 forward";
    for (const auto& [got, want, name] :
         {std::tuple{mapped.y, exact.y, "y"}, std::tuple{mapped.dx, exact.dx, "dx"},
          std::tuple{mapped.dw, exact.dw, "dw"}}) {
      EXPECT_LT(error(got, want), 1e-2) << name << (with_bias ? " with bias" : "");
    }
    // No worse than autocast's own weight gradient (rounded to bf16 before its float32 copy).
    EXPECT_LE(error(mapped.dw, exact.dw), error(plain.dw, exact.dw) * 1.05 + 1e-6);
    if (with_bias) {
      EXPECT_LT(error(mapped.db, exact.db), 1e-2);
    }
  }
}

// The LayerNorm kernel (float32 in, bf16 out under autocast) against torch::layer_norm in float64:
// the output to bf16 rounding, the gradients of x, weight and bias to bf16-gradient precision.
void CheckFusedLayerNorm(int64_t rows, int64_t width, bool with_bias) {
  torch::manual_seed(static_cast<uint64_t>(rows + width));
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  torch::Tensor x = (torch::randn({rows, width}, cuda) * 3 + 1).requires_grad_();
  torch::Tensor w = (torch::rand({width}, cuda) + 0.5).requires_grad_();
  torch::Tensor b =
      with_bias ? (torch::randn({width}, cuda) * 0.1).requires_grad_() : torch::Tensor();
  const torch::Tensor upstream = torch::randn({rows, width}, cuda).to(torch::kBFloat16);

  at::autocast::set_autocast_enabled(at::kCUDA, true);
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  ASSERT_TRUE(FusedLayerNormApplies(x, w));
  const torch::Tensor y = FusedLayerNorm(x, w, b, 1e-5);
  at::autocast::set_autocast_enabled(at::kCUDA, false);
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  (y.to(torch::kFloat32) * upstream.to(torch::kFloat32)).sum().backward();

  auto f64 = [](const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat64); };
  torch::Tensor x64 = f64(x).requires_grad_(), w64 = f64(w).requires_grad_();
  torch::Tensor b64 = with_bias ? f64(b).requires_grad_() : torch::Tensor();
  const torch::Tensor want = torch::layer_norm(x64, {width}, w64, b64, 1e-5);
  (want * f64(upstream)).sum().backward();
  EXPECT_LT(RelativeError(y, want.detach()), 1e-2) << rows << "x" << width;
  EXPECT_LT(RelativeError(x.grad(), x64.grad()), 1e-3) << rows << "x" << width;
  EXPECT_LT(RelativeError(w.grad(), w64.grad()), 1e-3) << rows << "x" << width;
  if (with_bias) {
    EXPECT_LT(RelativeError(b.grad(), b64.grad()), 1e-3) << rows << "x" << width;
  }
  EXPECT_EQ(x.grad().scalar_type(), torch::kFloat32);
}

// The residual add fused in: s = x + branch (bf16) and y = LayerNorm(s), with gradients flowing
// into both outputs (s feeds the next residual add).
void CheckFusedAddLayerNorm(int64_t rows, int64_t width, bool with_bias) {
  torch::manual_seed(static_cast<uint64_t>(rows * width));
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  torch::Tensor x = (torch::randn({rows, width}, cuda) * 3 + 1).requires_grad_();
  torch::Tensor branch = torch::randn({rows, width}, cuda).to(torch::kBFloat16).requires_grad_();
  torch::Tensor w = (torch::rand({width}, cuda) + 0.5).requires_grad_();
  torch::Tensor b =
      with_bias ? (torch::randn({width}, cuda) * 0.1).requires_grad_() : torch::Tensor();
  const torch::Tensor up_y = torch::randn({rows, width}, cuda).to(torch::kBFloat16);
  const torch::Tensor up_s = torch::randn({rows, width}, cuda);

  at::autocast::set_autocast_enabled(at::kCUDA, true);
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  ASSERT_TRUE(FusedAddLayerNormApplies(x, branch, w));
  const auto [sum, y] = FusedAddLayerNorm(x, branch, w, b, 1e-5);
  at::autocast::set_autocast_enabled(at::kCUDA, false);
  EXPECT_EQ(sum.scalar_type(), torch::kFloat32);
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  ((y.to(torch::kFloat32) * up_y.to(torch::kFloat32)).sum() + (sum * up_s).sum()).backward();

  auto f64 = [](const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat64); };
  torch::Tensor x64 = f64(x).requires_grad_(), br64 = f64(branch).requires_grad_();
  torch::Tensor w64 = f64(w).requires_grad_();
  torch::Tensor b64 = with_bias ? f64(b).requires_grad_() : torch::Tensor();
  const torch::Tensor s64 = x64 + br64;
  const torch::Tensor want = torch::layer_norm(s64, {width}, w64, b64, 1e-5);
  ((want * f64(up_y)).sum() + (s64 * f64(up_s)).sum()).backward();
  EXPECT_LT(RelativeError(sum, s64.detach()), 1e-6) << rows << "x" << width;
  EXPECT_LT(RelativeError(y, want.detach()), 1e-2) << rows << "x" << width;
  EXPECT_LT(RelativeError(x.grad(), x64.grad()), 1e-3) << rows << "x" << width;
  EXPECT_LT(RelativeError(branch.grad(), br64.grad()), 1e-2) << rows << "x" << width;  // bf16
  EXPECT_EQ(branch.grad().scalar_type(), torch::kBFloat16);
  EXPECT_LT(RelativeError(w.grad(), w64.grad()), 1e-3) << rows << "x" << width;
  if (with_bias) {
    EXPECT_LT(RelativeError(b.grad(), b64.grad()), 1e-3) << rows << "x" << width;
  }
}

TEST(FusedLayerNorm, MatchesFloat64ForwardAndBackward) {
  REQUIRE_CUDA();
  CheckFusedLayerNorm(/*rows=*/1000, /*width=*/768, /*with_bias=*/false);  // 1000 % 16 != 0
  CheckFusedLayerNorm(4096, 384, true);
  CheckFusedLayerNorm(7, 128, true);
  CheckFusedLayerNorm(333, 1280, false);
  CheckFusedAddLayerNorm(1000, 768, false);
  CheckFusedAddLayerNorm(4096, 384, true);
  CheckFusedAddLayerNorm(7, 256, true);
}

struct LossRecorder : TrainingObserver {
  std::vector<double> losses;
  void OnStep(int64_t, double, double, double loss, double) override { losses.push_back(loss); }
};

RunConfig GpuRun(const ScratchDir& dir) {
  WriteShard(dir / "train.bin", MarkovTokens(200000, 512, 1));
  RunConfig run;
  run.name = "dense/tiny/C1/s0";
  run.sweep = "gpu-test";
  run.seed = 7;
  run.model.n_layer = 2;
  run.model.d_model = 128;
  run.model.n_head = 4;
  run.model.seq_len = 64;
  run.model.vocab_size = 512;
  run.train.batch_tokens = 4 * 64 * 2;  // two micro-batches: accumulation inside the graph
  run.train.micro_batch = 4;
  run.train.optimizer.lr = 3e-3;
  run.train.schedule.warmup = 0.1;
  run.train.log_every = 1;
  run.train.checkpoint_every_tokens = 1e12;
  run.data.train = dir / "train.bin";
  run.data.tokenizer = "bytes";
  run.data.fingerprint = "sha256:test";
  run.budget.steps = 40;
  return run;
}

// Trains `run` to the end with `options` on the GPU; the loss of every step.
std::vector<double> TrainLosses(const RunConfig& run, TrainerOptions options, bool expect_graph) {
  options.device = "cuda";
  auto trainer = Trainer::Create(run, options);
  EXPECT_TRUE(trainer.ok()) << trainer.status().ToString();
  if (!trainer.ok()) return {};
  LossRecorder recorder;
  auto outcome = (*trainer)->Run(&recorder);
  EXPECT_TRUE(outcome.ok()) << outcome.status().ToString();
  EXPECT_EQ((*trainer)->uses_step_graph(), expect_graph);
  return recorder.losses;
}

// The same run with and without the captured step: the graph replays the same kernels, so the
// losses agree to bf16 noise (flash attention's backward is not bitwise deterministic).
TEST(StepGraph, ReplayedStepsTrainLikeEagerSteps) {
  REQUIRE_CUDA();
  ScratchDir dir;
  const RunConfig run = GpuRun(dir);
  std::vector<std::vector<double>> losses;
  for (bool graph : {false, true}) {
    TrainerOptions options;
    options.run_dir = dir / (graph ? "graph" : "eager");
    options.cuda_graph = graph;
    losses.push_back(TrainLosses(run, options, graph));
  }
  ASSERT_EQ(losses[0].size(), 40u);
  ASSERT_EQ(losses[1].size(), 40u);
  for (size_t i = 0; i < 40; ++i) {
    EXPECT_NEAR(losses[1][i], losses[0][i], 2e-2 * losses[0][i]) << "step " << i + 1;
  }
  EXPECT_LT(losses[1].back(), losses[1].front() - 1.0);  // and it learns
}

// ParallelGPT with a stream per path computes what it computes on one stream, eagerly and inside a
// captured graph (fork and join through events).
TEST(ParallelGpt, PathsOnTheirOwnStreamsTrainLikeOneStream) {
  REQUIRE_CUDA();
  ScratchDir dir;
  RunConfig run = GpuRun(dir);
  run.model.arch = Arch::kPgpt;
  run.model.n_layer = 4;
  run.model.paths = 2;
  std::vector<std::vector<double>> losses;
  for (auto [streams, graph] : {std::pair{false, false}, {true, false}, {true, true}}) {
    TrainerOptions options;
    options.run_dir = dir / ("s" + std::to_string(streams) + "g" + std::to_string(graph));
    options.path_streams = streams;
    options.cuda_graph = graph;
    losses.push_back(TrainLosses(run, options, graph));
  }
  for (size_t k = 1; k < losses.size(); ++k) {
    ASSERT_EQ(losses[k].size(), losses[0].size());
    for (size_t i = 0; i < losses[0].size(); ++i) {
      EXPECT_NEAR(losses[k][i], losses[0][i], 2e-2 * losses[0][i]) << "case " << k << " step " << i;
    }
  }
}

}  // namespace
}  // namespace isoflop
