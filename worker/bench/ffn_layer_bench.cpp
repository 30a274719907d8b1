// isoflop-ffn-bench: forward + backward time of the worker's feed-forward network (worker/models/
// ffn.h: c_fc, GELU, c_proj) with dense and structured linears, bf16, on one GPU (issue 9, item 3).
//
// For every width d (f = 4d) and every structured setting of the structured-FFN paper (63% and 32%
// of the dense FFN's parameters: lowrank, blockdense, blockshuffle), it times y = mlp(x);
// y.backward(g) on x (tokens, d), with CUDA events around each repetition, and prints one JSON line
// with the median time, the FLOP ratio to dense (the accountant's multiply-accumulates: parameters
// of c_fc and c_proj) and the measured speed-up. With --premerge it also finds, for each structured
// layer pair, the token count below which the pre-merged dense form (eval mode,
// structured_linear.h) is faster than the factored one: the threshold the worker's
// PremergeStructuredLayers uses.
//
//   isoflop-ffn-bench [--tokens 30720] [--widths 2048,3072,5120] [--reps 20] [--premerge]
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "common/model_spec.h"
#include "worker/models/ffn.h"
#include "worker/models/structured_linear.h"
#include "worker/runtime/kernel_profile.h"

namespace isoflop {
namespace {

struct Setting {
  std::string name;
  FfnType type;
  std::function<int64_t(int64_t)> rank;  // of d
  int64_t blocks;
};

// sweeps/structured_ffn.yaml's settings (papers.md 3.2).
std::vector<Setting> Settings() {
  auto round_div = [](int64_t d, int64_t k) { return (d + k / 2) / k; };
  return {
      {"dense", FfnType::kDense, [](int64_t) { return 0; }, 0},
      {"lowrank-63", FfnType::kLowRank, [](int64_t d) { return d / 2; }, 0},
      {"blockdense-63", FfnType::kBlockDense, [=](int64_t d) { return 2 * round_div(d, 3); }, 2},
      {"blockshuffle-63", FfnType::kBlockShuffle, [](int64_t) { return 0; }, 2},
      {"lowrank-32", FfnType::kLowRank, [](int64_t d) { return d / 4; }, 0},
      {"blockdense-32", FfnType::kBlockDense, [=](int64_t d) { return 2 * round_div(d, 6); }, 2},
      {"blockshuffle-32", FfnType::kBlockShuffle, [](int64_t) { return 0; }, 4},
  };
}

ModelSpec SpecFor(int64_t d, const Setting& s) {
  ModelSpec spec;
  spec.n_layer = 2;
  spec.d_model = d;
  spec.n_head = d / 128;
  spec.seq_len = 1024;
  spec.vocab_size = 50304;
  spec.bias = false;
  spec.ffn.type = s.type;
  spec.ffn.rank = s.rank(d);
  spec.ffn.blocks = s.blocks;
  spec.ffn.first_layer_dense = true;  // block 1 below is structured
  return spec;
}

// Median of `reps` timings (ms) of fn, after 3 untimed calls.
double MedianMs(const std::function<void()>& fn, int reps) {
  for (int i = 0; i < 3; ++i) fn();
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
    start.record();
    fn();
    stop.record();
    stop.synchronize();
    ms.push_back(start.elapsed_time(stop));
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

int64_t MapMacs(const MlpImpl& mlp) {  // multiply-accumulates per token of c_fc and c_proj
  int64_t macs = 0;
  for (const auto& p : mlp.named_parameters()) {
    if (p.value().dim() >= 2) macs += p.value().numel();
  }
  return macs;
}

int Main(int argc, char** argv) {
  CLI::App app{"forward + backward time of the worker's dense and structured FFNs (bf16, one GPU)"};
  int64_t tokens = 30720;
  std::vector<int64_t> widths = {2048, 3072, 5120};
  int reps = 20;
  bool premerge = false;
  std::string profile_dir;
  app.add_option("--tokens", tokens, "rows of x")->capture_default_str();
  app.add_option("--widths", widths, "model widths d (f = 4d)")->delimiter(',');
  app.add_option("--reps", reps, "timed repetitions (median reported)")->capture_default_str();
  app.add_flag("--premerge", premerge, "also find the pre-merge threshold of each layer");
  app.add_option("--profile", profile_dir,
                 "also write the GPU kernels of one forward + backward of each layer to "
                 "DIR/ffn_<width>_<variant>.profile.json (kernel_profile.h)");
  CLI11_PARSE(app, argc, argv);
  if (!torch::cuda::is_available()) {
    std::fprintf(stderr, "isoflop-ffn-bench: no CUDA device\n");
    return 1;
  }
  const auto bf16 = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kBFloat16);
  for (int64_t d : widths) {
    double dense_ms = 0;
    int64_t dense_macs = 0;
    for (const Setting& setting : Settings()) {
      const ModelSpec spec = SpecFor(d, setting);
      if (Status st = spec.Validate(); !st.ok()) {
        std::fprintf(stderr, "%s at d %ld: %s\n", setting.name.c_str(), static_cast<long>(d),
                     st.message().c_str());
        continue;
      }
      torch::manual_seed(0);
      Mlp mlp(spec, spec.block(1));
      mlp->to(torch::kCUDA, torch::kBFloat16);
      const torch::Tensor x = torch::randn({tokens, d}, bf16).requires_grad_();
      const torch::Tensor g = torch::randn({tokens, d}, bf16);
      auto step = [&] {
        mlp->forward(x).backward(g);
        for (auto& p : mlp->parameters()) p.mutable_grad().reset();
        x.mutable_grad().reset();
      };
      const double ms = MedianMs(step, reps);
      if (!profile_dir.empty()) {
        const std::string path =
            (std::filesystem::path(profile_dir) /
             ("ffn_" + std::to_string(d) + "_" + setting.name + ".profile.json"))
                .string();
        const Status st = KernelProfile::Record(
            [&] {
              step();
              return Status::OK();
            },
            path);
        if (!st.ok()) std::fprintf(stderr, "isoflop-ffn-bench: %s\n", st.message().c_str());
      }
      const int64_t macs = MapMacs(*mlp);
      if (setting.type == FfnType::kDense) dense_ms = ms, dense_macs = macs;
      const double flop_ratio = static_cast<double>(dense_macs) / static_cast<double>(macs);
      const double speedup = dense_ms / ms;
      const double tflops =
          6.0 * static_cast<double>(macs) * static_cast<double>(tokens) / ms / 1e9;
      std::printf(
          "{\"bench\": \"ffn\", \"impl\": \"worker\", \"width\": %ld, \"variant\": \"%s\", "
          "\"tokens\": %ld, \"ms\": %.4f, \"params\": %ld, \"flop_ratio\": %.4f, \"speedup\": "
          "%.4f, "
          "\"of_flop_ratio\": %.4f, \"tflops\": %.1f}\n",
          static_cast<long>(d), setting.name.c_str(), static_cast<long>(tokens), ms,
          static_cast<long>(macs), flop_ratio, speedup, speedup / flop_ratio, tflops);
      std::fflush(stdout);

      if (!premerge || setting.type == FfnType::kDense) continue;
      // Eval-mode forward of the factored layers against their merged dense form, by token count.
      torch::NoGradGuard no_grad;
      mlp->eval();
      int64_t threshold = 0;
      std::string curve;
      for (int64_t n : {1, 16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384}) {
        const torch::Tensor xn = torch::randn({n, d}, bf16);
        auto* fc = dynamic_cast<StructuredLinearImpl*>(mlp->c_fc.get());
        auto* proj = dynamic_cast<StructuredLinearImpl*>(mlp->c_proj.get());
        fc->Premerge(0);  // factored
        proj->Premerge(0);
        const double factored = MedianMs([&] { mlp->forward(xn); }, reps);
        fc->Premerge(n);
        proj->Premerge(n);
        const double merged = MedianMs([&] { mlp->forward(xn); }, reps);
        if (merged < factored) threshold = n;
        curve += (curve.empty() ? "" : ", ") + std::string("[") + std::to_string(n) + ", " +
                 std::to_string(factored) + ", " + std::to_string(merged) + "]";
      }
      std::printf(
          "{\"bench\": \"premerge\", \"width\": %ld, \"variant\": \"%s\", \"merged_wins_up_to\": "
          "%ld, \"tokens_factored_ms_merged_ms\": [%s]}\n",
          static_cast<long>(d), setting.name.c_str(), static_cast<long>(threshold), curve.c_str());
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace isoflop

int main(int argc, char** argv) {
  return isoflop::Main(argc, argv);
}
