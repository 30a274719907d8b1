// isoflop-decode-bench: batch-1 greedy decoding with a KV cache of a Mistral-shaped skipless
// transformer, before and after removing Q and P (issue 9, item 4; papers.md 2.1-2.5).
//
// The serial skipless block of papers.md 2.1, with SwiGLU (Mistral's FFN) and GQA:
//   full     a = MHA(x Q, x K, x V) P;      y = (silu(a M_g) * (a M_u)) O
//   qp       a = MHA(x,   x K, x V);        y = (silu(a M*_g) * (a M*_u)) O     (Q, P removed)
// Q and P are d x d, K and V d x e (e = n_kv_head * head_dim), M = (M_g | M_u) d x 2f, O f x d;
// removing Q and P drops 2 d^2 weights a layer (the accountant's figure). The weights are random
// bf16 (decoding speed does not depend on their values); there is no position encoding (a rotary
// rotation costs a few elementwise operations on (1, d) a layer) and no final norm. Token embedding
// reads one row of wte; the head multiplies by the whole (V x d) lm_head.
//
// One decode step (embed, every layer with its KV-cache append, head, argmax) runs entirely on the
// device against static buffers, the position and the token as device scalars, and is captured once
// as a CUDA graph and replayed, so host launches do not pace it. Reported per variant: tokens/s,
// the weight bytes a token streams (every matrix read once; wte's one row aside), those bytes per
// second against a device-to-device copy's bandwidth (bytes read + written), and the speed-up of qp
// over full against their weight-byte ratio.
//
//   isoflop-decode-bench [--layers 32] [--d 4096] [--heads 32] [--kv-heads 8] [--ffn 14336]
//                        [--vocab 32000] [--context 512] [--tokens 256] [--device cuda]
//   isoflop-decode-bench --check [--device cpu]   # cached decoding = full forward, float32, tiny
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace isoflop {
namespace {

struct Shape {
  int64_t layers = 32, d = 4096, heads = 32, kv_heads = 8, ffn = 14336, vocab = 32000;
  int64_t head_dim() const { return d / heads; }
  int64_t kv_width() const { return kv_heads * head_dim(); }
};

// One layer's matrices, row-major as torch.nn.Linear keeps them (out x in).
struct Layer {
  torch::Tensor q, k, v, p;  // (d, d), (e, d), (e, d), (d, d); q and p undefined when removed
  torch::Tensor m;           // (2f, d): gate rows first, then up
  torch::Tensor o;           // (d, f)
};

struct Model {
  Shape shape;
  bool removed_qp = false;
  torch::Tensor wte, lm_head;  // (V, d) each (untied, as Mistral)
  std::vector<Layer> layers;

  // Bytes one decoded token reads: every matrix once, but wte only its one row.
  int64_t WeightBytesPerToken() const {
    int64_t n = lm_head.numel() + shape.d;
    for (const Layer& l : layers) {
      for (const torch::Tensor& t : {l.q, l.k, l.v, l.p, l.m, l.o})
        n += t.defined() ? t.numel() : 0;
    }
    return n * static_cast<int64_t>(lm_head.element_size());
  }
};

Model RandomModel(const Shape& s, bool removed_qp, const torch::TensorOptions& options) {
  Model model{s, removed_qp, {}, {}, {}};
  auto matrix = [&](int64_t out, int64_t in) {
    return torch::randn({out, in}, options) / std::sqrt(static_cast<double>(in));
  };
  model.wte = torch::randn({s.vocab, s.d}, options);
  model.lm_head = matrix(s.vocab, s.d);
  for (int64_t i = 0; i < s.layers; ++i) {
    Layer l;
    if (!removed_qp) l.q = matrix(s.d, s.d);
    l.k = matrix(s.kv_width(), s.d);
    l.v = matrix(s.kv_width(), s.d);
    if (!removed_qp) l.p = matrix(s.d, s.d);
    l.m = matrix(2 * s.ffn, s.d);
    l.o = matrix(s.d, s.ffn);
    model.layers.push_back(std::move(l));
  }
  return model;
}

// The block after attention: a (n, d) -> (n, d). y = (silu(a' M_g) * (a' M_u)) O, a' = a P.
torch::Tensor Ffn(const Layer& l, const Shape& s, torch::Tensor a) {
  if (l.p.defined()) a = torch::mm(a, l.p.t());
  const torch::Tensor h = torch::mm(a, l.m.t());  // (n, 2f)
  return torch::mm(torch::silu(h.narrow(1, 0, s.ffn)) * h.narrow(1, s.ffn, s.ffn), l.o.t());
}

// Reference: the whole sequence at once, causal attention, no cache. idx (T) -> logits (T, V).
torch::Tensor FullForward(const Model& model, const torch::Tensor& idx) {
  const Shape& s = model.shape;
  const int64_t T = idx.size(0), hs = s.head_dim();
  torch::Tensor x = model.wte.index_select(0, idx);  // (T, d)
  for (const Layer& l : model.layers) {
    const torch::Tensor q = l.q.defined() ? torch::mm(x, l.q.t()) : x;
    const torch::Tensor k = torch::mm(x, l.k.t()), v = torch::mm(x, l.v.t());
    const torch::Tensor a = torch::scaled_dot_product_attention(
        q.view({1, T, s.heads, hs}).transpose(1, 2), k.view({1, T, s.kv_heads, hs}).transpose(1, 2),
        v.view({1, T, s.kv_heads, hs}).transpose(1, 2), {}, 0.0, /*is_causal=*/true, std::nullopt,
        /*enable_gqa=*/true);  // (1, H, T, hs)
    x = Ffn(l, s, a.transpose(1, 2).reshape({T, s.d}));
  }
  return torch::mm(x, model.lm_head.t());
}

// The decoder's state: per-layer K and V caches of `context` positions, the position and the token
// being fed, all on the device at fixed addresses (what a captured graph needs).
struct DecodeState {
  std::vector<torch::Tensor> k_cache, v_cache;  // (1, kv_heads, context, hs) each
  torch::Tensor pos;                            // (1) int64: where this step's K and V go
  torch::Tensor token;                          // (1) int64: the token fed at pos
  torch::Tensor logits;                         // (1, V): the last step's output
  torch::Tensor positions;                      // (context) int64: 0 .. context-1, for the mask
};

DecodeState NewState(const Model& model, int64_t context, const torch::TensorOptions& options) {
  const Shape& s = model.shape;
  DecodeState st;
  for (int64_t i = 0; i < s.layers; ++i) {
    st.k_cache.push_back(torch::zeros({1, s.kv_heads, context, s.head_dim()}, options));
    st.v_cache.push_back(torch::zeros({1, s.kv_heads, context, s.head_dim()}, options));
  }
  const auto ids = options.dtype(torch::kInt64);
  st.pos = torch::zeros({1}, ids);
  st.token = torch::zeros({1}, ids);
  st.positions = torch::arange(context, ids);
  return st;
}

// One greedy step: feeds st.token at st.pos, writes st.logits, then advances: token <- argmax,
// pos <- pos + 1. Device operations only: no host synchronisation, capturable.
void DecodeStep(const Model& model, DecodeState& st) {
  const Shape& s = model.shape;
  const int64_t hs = s.head_dim();
  const torch::Tensor mask = (st.positions <= st.pos).view({1, 1, 1, -1});  // attend to 0..pos
  torch::Tensor x = model.wte.index_select(0, st.token);                    // (1, d)
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Layer& l = model.layers[i];
    const torch::Tensor q = l.q.defined() ? torch::mm(x, l.q.t()) : x;         // (1, d)
    const torch::Tensor k = torch::mm(x, l.k.t()), v = torch::mm(x, l.v.t());  // (1, e)
    st.k_cache[i].index_copy_(2, st.pos, k.view({1, s.kv_heads, 1, hs}));
    st.v_cache[i].index_copy_(2, st.pos, v.view({1, s.kv_heads, 1, hs}));
    const torch::Tensor a = torch::scaled_dot_product_attention(
        q.view({1, s.heads, 1, hs}), st.k_cache[i], st.v_cache[i], mask, 0.0, false, std::nullopt,
        /*enable_gqa=*/true);  // (1, H, 1, hs)
    x = Ffn(l, s, a.reshape({1, s.d}));
  }
  st.logits = torch::mm(x, model.lm_head.t());  // (1, V)
  st.token.copy_(st.logits.argmax(1));
  st.pos.add_(1);
}

// --check: at every step of a cached greedy decode, the logits equal the full forward's over the
// same prefix, for the full and the qp model. float32 on `device`.
int Check(const torch::Device& device) {
  Shape s;
  s.layers = 3, s.d = 64, s.heads = 8, s.kv_heads = 2, s.ffn = 96, s.vocab = 100;
  const auto options = torch::TensorOptions().device(device).dtype(torch::kFloat32);
  int failures = 0;
  for (bool removed : {false, true}) {
    torch::manual_seed(1);
    const Model model = RandomModel(s, removed, options);
    DecodeState st = NewState(model, /*context=*/24, options);
    std::vector<int64_t> fed = {7};
    st.token.fill_(7);
    double worst = 0;
    for (int step = 0; step < 20; ++step) {
      DecodeStep(model, st);
      const torch::Tensor idx = torch::tensor(fed, options.dtype(torch::kInt64));
      const torch::Tensor want = FullForward(model, idx)[-1];
      worst = std::max(worst, ((st.logits[0] - want).norm() / want.norm()).item<double>());
      fed.push_back(st.token.item<int64_t>());
      if (fed.back() != want.argmax().item<int64_t>()) ++failures;
    }
    std::printf(
        "{\"bench\": \"decode-check\", \"variant\": \"%s\", \"max_relative_error\": %.3g}\n",
        removed ? "qp" : "full", worst);
    if (!(worst < 1e-4)) ++failures;
  }
  return failures == 0 ? 0 : 1;
}

// Device-to-device copy bandwidth, bytes read + written per second (METHOD.md's convention).
double CopyBandwidth(const torch::Device& device) {
  const torch::Tensor a = torch::randn({int64_t{1} << 30}, torch::TensorOptions().device(device));
  torch::Tensor b = torch::empty_like(a);
  for (int i = 0; i < 3; ++i) b.copy_(a);
  at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
  start.record();
  for (int i = 0; i < 10; ++i) b.copy_(a);
  stop.record();
  stop.synchronize();
  return 10.0 * 2.0 * static_cast<double>(a.nbytes()) / (start.elapsed_time(stop) / 1e3);
}

struct Timing {
  double tokens_per_s;
  int64_t weight_bytes;
};

Timing TimeDecode(const Shape& s, bool removed, int64_t context, int64_t tokens,
                  const torch::Device& device) {
  const auto options = torch::TensorOptions().device(device).dtype(torch::kBFloat16);
  torch::manual_seed(0);
  const Model model = RandomModel(s, removed, options);
  DecodeState st = NewState(model, context, options);
  at::cuda::CUDAGraph graph;
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, device.index());
  {
    c10::cuda::CUDAStreamGuard guard(side);
    for (int i = 0; i < 3; ++i) DecodeStep(model, st);  // warm-up, as PyTorch's capture recipe
    torch::cuda::synchronize();
    graph.capture_begin();
    DecodeStep(model, st);
    graph.capture_end();
  }
  st.pos.fill_(0);
  st.token.fill_(1);
  for (int i = 0; i < 8; ++i) graph.replay();
  st.pos.fill_(0);
  at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
  start.record();
  for (int64_t i = 0; i < tokens; ++i) graph.replay();
  stop.record();
  stop.synchronize();
  return {static_cast<double>(tokens) / (start.elapsed_time(stop) / 1e3),
          model.WeightBytesPerToken()};
}

int Main(int argc, char** argv) {
  CLI::App app{"batch-1 greedy decoding of a Mistral-shaped skipless model, with and without Q, P"};
  Shape s;
  int64_t context = 512, tokens = 256;
  std::string device_name = torch::cuda::is_available() ? "cuda" : "cpu";
  bool check = false;
  app.add_option("--layers", s.layers)->capture_default_str();
  app.add_option("--d", s.d)->capture_default_str();
  app.add_option("--heads", s.heads)->capture_default_str();
  app.add_option("--kv-heads", s.kv_heads)->capture_default_str();
  app.add_option("--ffn", s.ffn, "SwiGLU hidden width f")->capture_default_str();
  app.add_option("--vocab", s.vocab)->capture_default_str();
  app.add_option("--context", context, "KV-cache length")->capture_default_str();
  app.add_option("--tokens", tokens, "timed decode steps (< context)")->capture_default_str();
  app.add_option("--device", device_name)->capture_default_str();
  app.add_flag("--check", check, "cached decoding against the full forward, tiny float32 models");
  CLI11_PARSE(app, argc, argv);
  const torch::Device device(device_name);
  torch::NoGradGuard no_grad;
  if (check) return Check(device);
  if (!device.is_cuda() || tokens + 12 > context) {
    std::fprintf(stderr,
                 "isoflop-decode-bench: timing needs --device cuda and --tokens < context - 12\n");
    return 1;
  }
  const double copy = CopyBandwidth(device);
  const Timing full = TimeDecode(s, false, context, tokens, device);
  const Timing qp = TimeDecode(s, true, context, tokens, device);
  const double byte_ratio = static_cast<double>(full.weight_bytes) / qp.weight_bytes;
  for (const auto& [name, t] : {std::pair{"full", full}, std::pair{"qp", qp}}) {
    const double streamed = t.tokens_per_s * static_cast<double>(t.weight_bytes);
    std::printf(
        "{\"bench\": \"decode\", \"variant\": \"%s\", \"layers\": %ld, \"tokens_per_s\": %.2f, "
        "\"weight_bytes\": %ld, \"weight_bytes_per_s\": %.4g, \"copy_bandwidth\": %.4g, "
        "\"of_copy_bandwidth\": %.4f, \"bandwidth_limit_tokens_per_s\": %.2f}\n",
        name, static_cast<long>(s.layers), t.tokens_per_s, static_cast<long>(t.weight_bytes),
        streamed, copy, streamed / copy, copy / static_cast<double>(t.weight_bytes));
  }
  const double speedup = qp.tokens_per_s / full.tokens_per_s;
  std::printf(
      "{\"bench\": \"decode-speedup\", \"speedup\": %.4f, \"weight_byte_ratio\": %.4f, "
      "\"of_byte_ratio\": %.4f}\n",
      speedup, byte_ratio, speedup / byte_ratio);
  return 0;
}

}  // namespace
}  // namespace isoflop

int main(int argc, char** argv) {
  return isoflop::Main(argc, argv);
}
