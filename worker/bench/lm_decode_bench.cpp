// isoflop-lm-decode-bench: batch-1 greedy decoding with a KV cache through the worker's own models
// (BuildModel, LanguageModelImpl::DecodeStep), gpt against ParallelGPT at equal parameters (issue
// 9, item 5; papers.md 1.3):
//   gpt            one stack of n_layer blocks
//   pgpt           two paths of n_layer / 2 blocks, one after the other on one stream
//   pgpt-streams   the same two paths, each on a CUDA stream of its own (forked and joined in the
//   graph) pgpt-1         drop a path: only the heaviest path runs, then ln_f and the head
// bf16 weights (the model converted, as a decoding server would hold it), random but seeded; one
// decode step (embedding, every block with its cache append, ln_f, head, argmax fed back) is
// captured as a CUDA graph and replayed. Reported per model: tokens/s, the weight bytes a token
// reads (every matrix that runs, once; one row of the embeddings unless the head is tied to wte),
// those bytes per second against the copy bandwidth, and the ratio to gpt.
//
//   isoflop-lm-decode-bench [--layers 12] [--d 768] [--heads 12] [--vocab 50304] [--context 512]
//                           [--tokens 256] [--device cuda]
//   isoflop-lm-decode-bench --check [--device cuda]  # graph-replayed decoding = eager = forward
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "common/model_spec.h"
#include "worker/bench/decode_timing.h"
#include "worker/models/model_registry.h"
#include "worker/models/pgpt.h"

namespace isoflop {
namespace {

struct Mode {
  const char* name;
  Arch arch;
  bool streams;
  bool single_path;
};
constexpr Mode kModes[] = {{"gpt", Arch::kGpt, false, false},
                           {"pgpt", Arch::kPgpt, false, false},
                           {"pgpt-streams", Arch::kPgpt, true, false},
                           {"pgpt-1", Arch::kPgpt, false, true}};

ModelSpec Spec(const Mode& mode, int64_t layers, int64_t d, int64_t heads, int64_t vocab,
               int64_t seq_len) {
  ModelSpec spec;
  spec.arch = mode.arch;
  spec.n_layer = layers;
  spec.d_model = d;
  spec.n_head = heads;
  spec.vocab_size = vocab;
  spec.seq_len = seq_len;
  spec.tied_embeddings = true;  // GPT-2's and bench/gpu/pgpt_speed.yaml's
  if (mode.arch == Arch::kPgpt) spec.paths = 2;
  return spec;
}

std::shared_ptr<LanguageModelImpl> Build(const Mode& mode, const ModelSpec& spec,
                                         const torch::Device& device, torch::ScalarType dtype) {
  std::shared_ptr<LanguageModelImpl> model = BuildModel(spec, /*seed=*/1).value();
  model->to(device, dtype);
  model->eval();
  if (auto pgpt = std::dynamic_pointer_cast<ParallelGptImpl>(model)) {
    pgpt->set_path_streams(mode.streams);
    pgpt->set_single_path(mode.single_path);
  }
  return model;
}

// Bytes of weights one decoded token reads: every parameter of the modules that run, except the
// embedding rows it does not look up (wte's, unless the head multiplies by it, and wpe's).
int64_t WeightBytesPerToken(LanguageModelImpl& model, int64_t path) {
  const ModelSpec& spec = model.spec();
  int64_t elements = 0;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    const torch::Tensor& w = item.value();
    if (name == "wpe.weight" || (name == "wte.weight" && !spec.tied_embeddings)) {
      elements += w.size(1);  // one row
      continue;
    }
    if (path >= 0 && (name.starts_with("paths.") || name.starts_with("adapters.")) &&
        !name.starts_with((name.starts_with("paths.") ? "paths." : "adapters.") +
                          std::to_string(path) + ".")) {
      continue;  // pgpt-1: the dropped path's weights stay unread
    }
    elements += w.numel();
  }
  return elements * static_cast<int64_t>(model.wte->weight.element_size());
}

// The greedy loop's state: the cache, the token fed next (fed back from the argmax).
struct Greedy {
  DecodeState state;
  torch::Tensor token;   // (1, 1) int64
  torch::Tensor logits;  // (1, V) of the last step

  void Step(LanguageModelImpl& model) {
    logits = model.DecodeStep(token, state);
    token.copy_(logits.argmax(1).view({1, 1}));
  }
  void Reset() {
    state.at.pos.fill_(0);
    state.steps_taken = 0;
    token.fill_(1);
  }
};

Greedy NewGreedy(LanguageModelImpl& model, int64_t context, const torch::Device& device) {
  Greedy g{model.NewDecodeState(context),
           torch::ones({1, 1}, torch::TensorOptions().device(device).dtype(torch::kInt64)),
           {}};
  return g;
}

// --check: every mode at a tiny float32 size decodes 20 greedy tokens eagerly and, on CUDA, from a
// captured graph; at every step the logits equal the full forward of the prefix.
int Check(const torch::Device& device) {
  int failures = 0;
  for (const Mode& mode : kModes) {
    const ModelSpec spec = Spec(mode, 4, 64, 4, 100, 32);
    const auto model = Build(mode, spec, device, torch::kFloat32);
    for (bool graph : {false, true}) {
      if (graph && !device.is_cuda()) continue;
      Greedy g = NewGreedy(*model, 24, device);
      std::unique_ptr<at::cuda::CUDAGraph> captured;
      if (graph) {  // warm-up steps allocate the caches, then capture one step and start over
        const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, device.index());
        c10::cuda::CUDAStreamGuard guard(side);
        for (int i = 0; i < 3; ++i) g.Step(*model);
        torch::cuda::synchronize();
        captured = std::make_unique<at::cuda::CUDAGraph>();
        captured->capture_begin();
        g.Step(*model);
        captured->capture_end();
        torch::cuda::synchronize();
      }
      g.Reset();
      std::vector<int64_t> fed = {1};
      double worst = 0;
      for (int step = 0; step < 20; ++step) {
        if (captured) {
          captured->replay();
        } else {
          g.Step(*model);
        }
        const torch::Tensor idx = torch::tensor(fed, torch::kInt64).view({1, -1}).to(device);
        const torch::Tensor want = model->forward(idx)[0][-1];  // (V)
        worst = std::max(worst, ((g.logits[0] - want).norm() / want.norm()).item<double>());
        fed.push_back(g.token.item<int64_t>());
        if (fed.back() != want.argmax().item<int64_t>()) ++failures;
      }
      std::printf(
          "{\"bench\": \"lm-decode-check\", \"model\": \"%s\", \"graph\": %s, "
          "\"max_relative_error\": %.3g}\n",
          mode.name, graph ? "true" : "false", worst);
      if (!(worst < 1e-4)) ++failures;
    }
  }
  return failures == 0 ? 0 : 1;
}

int Main(int argc, char** argv) {
  CLI::App app{"batch-1 KV-cache decoding of gpt and ParallelGPT (both paths, streams, pgpt-1)"};
  int64_t layers = 12, d = 768, heads = 12, vocab = 50304, context = 512, tokens = 256;
  std::string device_name = torch::cuda::is_available() ? "cuda" : "cpu";
  bool check = false;
  app.add_option("--layers", layers, "gpt's blocks; pgpt has two paths of half as many")
      ->capture_default_str();
  app.add_option("--d", d)->capture_default_str();
  app.add_option("--heads", heads)->capture_default_str();
  app.add_option("--vocab", vocab)->capture_default_str();
  app.add_option("--context", context, "KV-cache length")->capture_default_str();
  app.add_option("--tokens", tokens, "timed decode steps (< context - 12)")->capture_default_str();
  app.add_option("--device", device_name)->capture_default_str();
  app.add_flag("--check", check, "decoding (eager and graph) against the full forward, tiny");
  CLI11_PARSE(app, argc, argv);
  const torch::Device device(device_name);
  torch::NoGradGuard no_grad;
  if (check) return Check(device);
  if (!device.is_cuda() || tokens + 12 > context || layers % 2 != 0) {
    std::fprintf(stderr,
                 "isoflop-lm-decode-bench: timing needs --device cuda, --tokens < context - 12 "
                 "and an even --layers\n");
    return 1;
  }
  const double copy = bench::CopyBandwidth(device);
  double gpt_tokens_per_s = 0;
  for (const Mode& mode : kModes) {
    torch::manual_seed(0);
    const ModelSpec spec = Spec(mode, layers, d, heads, vocab, context);
    const auto model = Build(mode, spec, device, torch::kBFloat16);
    Greedy g = NewGreedy(*model, context, device);
    const double tokens_per_s =
        bench::ReplayedStepsPerSecond([&] { g.Step(*model); }, [&] { g.Reset(); }, tokens, device);
    if (mode.arch == Arch::kGpt) gpt_tokens_per_s = tokens_per_s;
    const int64_t bytes = WeightBytesPerToken(*model, g.state.path);
    const int64_t params = CountParameters(*model).total;
    const double streamed = tokens_per_s * static_cast<double>(bytes);
    std::printf(
        "{\"bench\": \"lm-decode\", \"model\": \"%s\", \"layers\": %ld, \"d\": %ld, "
        "\"params\": %ld, \"tokens_per_s\": %.1f, \"ms_per_token\": %.4f, \"weight_bytes\": %ld, "
        "\"weight_bytes_per_s\": %.4g, \"of_copy_bandwidth\": %.4f, \"vs_gpt\": %.4f}\n",
        mode.name, static_cast<long>(layers), static_cast<long>(d), static_cast<long>(params),
        tokens_per_s, 1e3 / tokens_per_s, static_cast<long>(bytes), streamed, streamed / copy,
        tokens_per_s / gpt_tokens_per_s);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace isoflop

int main(int argc, char** argv) {
  return isoflop::Main(argc, argv);
}
