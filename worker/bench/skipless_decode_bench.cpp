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
// Each is measured with three implementations of the step (Step below), in the same call:
//   torch    separate Q, K, V products, scaled_dot_product_attention with a mask, torch::mm
//   fused    one product for Q|K|V (K|V when Q is removed), one cache append for K|V, attention as
//            two batched products per KV head around a softmax (no GQA expansion), torch::mm
//   kernel   fused, on the worker's decode kernels (decode_ops.h): every matrix-vector product
//            on the GEMV kernel, SwiGLU's activation in one kernel, the cache append and the
//            attention in one kernel
// and, as the bound of each matvec implementation, a step of the weight products alone.
//
//   isoflop-decode-bench [--layers 32] [--d 4096] [--heads 32] [--kv-heads 8] [--ffn 14336]
//                        [--vocab 32000] [--context 512] [--tokens 256] [--device cuda]
//   isoflop-decode-bench --check [--device cpu]   # cached decoding = full forward, float32, tiny
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "worker/bench/decode_timing.h"
#include "worker/models/decode_ops.h"

namespace isoflop {
namespace {

struct Shape {
  int64_t layers = 32, d = 4096, heads = 32, kv_heads = 8, ffn = 14336, vocab = 32000;
  int64_t head_dim() const { return d / heads; }
  int64_t kv_width() const { return kv_heads * head_dim(); }
};

// One layer's matrices, row-major as torch.nn.Linear keeps them (out x in). Q, K and V are row
// blocks of one matrix qkv, so that the fused step multiplies by all three at once; the separate
// views are contiguous too.
struct Layer {
  torch::Tensor qkv;  // (d + 2e, d), or (2e, d) without Q: Q rows first, then K, then V
  torch::Tensor q, k, v,
      p;            // views of qkv (d, d), (e, d), (e, d); P (d, d); q, p undefined: removed
  torch::Tensor m;  // (2f, d): gate rows first, then up
  torch::Tensor o;  // (d, f)
};

// How a decode step computes (see the file comment); the last two run the weight products alone.
enum class Step { kTorch, kFused, kKernel, kMatVecOnly, kKernelMatVecOnly };
constexpr bool UsesKernel(Step step) {
  return step == Step::kKernel || step == Step::kKernelMatVecOnly;
}

struct Model {
  Shape shape;
  bool removed_qp = false;
  torch::Tensor wte, lm_head;  // (V, d) each (untied, as Mistral)
  std::vector<Layer> layers;

  // Bytes one decoded token reads: every matrix once, but wte only its one row.
  int64_t WeightBytesPerToken() const {
    int64_t n = lm_head.numel() + shape.d;
    for (const Layer& l : layers) {
      for (const torch::Tensor& t : {l.qkv, l.p, l.m, l.o}) n += t.defined() ? t.numel() : 0;
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
    const int64_t q_rows = removed_qp ? 0 : s.d, e = s.kv_width();
    l.qkv = matrix(q_rows + 2 * e, s.d);
    if (!removed_qp) l.q = l.qkv.narrow(0, 0, q_rows);
    l.k = l.qkv.narrow(0, q_rows, e);
    l.v = l.qkv.narrow(0, q_rows + e, e);
    if (!removed_qp) l.p = matrix(s.d, s.d);
    l.m = matrix(2 * s.ffn, s.d);
    l.o = matrix(s.d, s.ffn);
    model.layers.push_back(std::move(l));
  }
  return model;
}

// x (n, d) W^T for W (out, d): torch::mm, or for one row the GEMV kernel (decode_ops.h).
torch::Tensor Linear(const torch::Tensor& x, const torch::Tensor& w, bool kernel) {
  return kernel ? DecodeMatVec(x, w) : torch::mm(x, w.t());
}

// The block after attention: a (n, d) -> (n, d). y = (silu(a' M_g) * (a' M_u)) O, a' = a P.
torch::Tensor Ffn(const Layer& l, const Shape& s, torch::Tensor a, bool kernel = false) {
  if (l.p.defined()) a = Linear(a, l.p, kernel);
  const torch::Tensor h = Linear(a, l.m, kernel);         // (n, 2f)
  if (kernel) return DecodeMatVec(DecodeSwiGlu(h), l.o);  // the activation in one kernel
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
  std::vector<torch::Tensor> kv_cache;          // (1, 2 kv_heads, context, hs): K heads, then V
  std::vector<torch::Tensor> k_cache, v_cache;  // (1, kv_heads, context, hs) views of kv_cache
  torch::Tensor pos;                            // (1) int64: where this step's K and V go
  torch::Tensor token;                          // (1) int64: the token fed at pos
  torch::Tensor logits;                         // (1, V): the last step's output
  torch::Tensor positions;                      // (context) int64: 0 .. context-1, for the mask
};

DecodeState NewState(const Model& model, int64_t context, const torch::TensorOptions& options) {
  const Shape& s = model.shape;
  DecodeState st;
  for (int64_t i = 0; i < s.layers; ++i) {
    st.kv_cache.push_back(torch::zeros({1, 2 * s.kv_heads, context, s.head_dim()}, options));
    st.k_cache.push_back(st.kv_cache.back().narrow(1, 0, s.kv_heads));
    st.v_cache.push_back(st.kv_cache.back().narrow(1, s.kv_heads, s.kv_heads));
  }
  const auto ids = options.dtype(torch::kInt64);
  st.pos = torch::zeros({1}, ids);
  st.token = torch::zeros({1}, ids);
  st.positions = torch::arange(context, ids);
  return st;
}

// softmax(q K^T / sqrt(hs) + bias) V for one position against layer i's cache, the G = H / kv_heads
// query heads of each KV head together: q (1, d) -> (1, d). bias (1, 1, context): 0 at positions
// 0..pos, -inf after. Query head h reads KV head h / G, as scaled_dot_product_attention's GQA.
torch::Tensor GroupedAttention(const Shape& s, const torch::Tensor& q, const torch::Tensor& k_cache,
                               const torch::Tensor& v_cache, const torch::Tensor& bias) {
  const int64_t hs = s.head_dim(), G = s.heads / s.kv_heads;
  const torch::Tensor qg = q.view({s.kv_heads, G, hs});  // (kv, G, hs)
  const torch::Tensor scores = torch::baddbmm(bias, qg, k_cache[0].transpose(1, 2), /*beta=*/1.0,
                                              /*alpha=*/1.0 / std::sqrt(static_cast<double>(hs)));
  // (kv, G, context) x (kv, context, hs) -> (kv, G, hs)
  return torch::bmm(torch::softmax(scores, -1), v_cache[0]).view({1, s.d});
}

// One greedy step: feeds st.token at st.pos, writes st.logits, then advances: token <- argmax,
// pos <- pos + 1. Device operations only: no host synchronisation, capturable.
void DecodeStep(const Model& model, DecodeState& st, Step step = Step::kTorch) {
  const Shape& s = model.shape;
  const int64_t hs = s.head_dim(), e = s.kv_width();
  const bool kernel = UsesKernel(step);
  const bool matvec_only = step == Step::kMatVecOnly || step == Step::kKernelMatVecOnly;
  const torch::Tensor visible = (st.positions <= st.pos).view({1, 1, -1});  // attend to 0..pos
  torch::Tensor bias;
  if (step == Step::kFused) {
    bias = torch::zeros(visible.sizes(), model.wte.options())
               .masked_fill_(visible.logical_not(), -INFINITY);  // (1, 1, context)
  }
  torch::Tensor x = model.wte.index_select(0, st.token);  // (1, d)
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Layer& l = model.layers[i];
    torch::Tensor q, k, v, kv;  // (1, d), (1, e), (1, e); kv (1, 2e) = (k | v) when fused
    if (step == Step::kTorch) {
      q = l.q.defined() ? torch::mm(x, l.q.t()) : x;
      k = torch::mm(x, l.k.t());
      v = torch::mm(x, l.v.t());
    } else {
      const torch::Tensor qkv = Linear(x, l.qkv, kernel);  // (1, d + 2e) or (1, 2e)
      const int64_t q_rows = l.q.defined() ? s.d : 0;
      q = l.q.defined() ? qkv.narrow(1, 0, s.d) : x;
      k = qkv.narrow(1, q_rows, e);
      v = qkv.narrow(1, q_rows + e, e);
      kv = qkv.narrow(1, q_rows, 2 * e);
    }
    torch::Tensor a;  // (1, d)
    if (matvec_only) {
      a = q.contiguous();  // the weights' bound: attention and the cache are left out
    } else if (step == Step::kTorch) {
      st.k_cache[i].index_copy_(2, st.pos, k.reshape({1, s.kv_heads, 1, hs}));
      st.v_cache[i].index_copy_(2, st.pos, v.reshape({1, s.kv_heads, 1, hs}));
      a = torch::scaled_dot_product_attention(q.view({1, s.heads, 1, hs}), st.k_cache[i],
                                              st.v_cache[i], visible.view({1, 1, 1, -1}), 0.0,
                                              false, std::nullopt, /*enable_gqa=*/true)
              .reshape({1, s.d});  // (1, H, 1, hs) -> (1, d)
    } else if (step == Step::kFused) {
      // k and v are adjacent in qkv's output: one append of (1, 2 kv_heads, 1, hs)
      st.kv_cache[i].index_copy_(2, st.pos, kv.reshape({1, 2 * s.kv_heads, 1, hs}));
      a = GroupedAttention(s, q.contiguous(), st.k_cache[i], st.v_cache[i], bias);
    } else {
      a = DecodeAttention(q, k, v, st.kv_cache[i], st.pos, s.heads, s.kv_heads);
    }
    x = Ffn(l, s, a, kernel);
  }
  st.logits = Linear(x, model.lm_head, kernel);  // (1, V)
  st.token.copy_(st.logits.argmax(1));
  st.pos.add_(1);
}

const char* StepName(Step step) {
  switch (step) {
    case Step::kTorch:
      return "torch";
    case Step::kFused:
      return "fused";
    case Step::kKernel:
      return "kernel";
    case Step::kMatVecOnly:
      return "matvec-only";
    case Step::kKernelMatVecOnly:
      return "kernel-matvec-only";
  }
  return "?";
}

// --check: at every step of a cached greedy decode, the logits equal the full forward's over the
// same prefix, for the full and the qp model and every step implementation. float32 on `device`
// (where the GEMV kernel, bf16 only, is not taken); on CUDA also the kernel against torch::mm in
// bf16, alone at the shapes of the timed model and inside a bf16 decode.
int Check(const torch::Device& device) {
  Shape s;
  s.layers = 3, s.d = 64, s.heads = 8, s.kv_heads = 2, s.ffn = 96, s.vocab = 100;
  int failures = 0;
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    if (dtype == torch::kBFloat16 && !device.is_cuda()) continue;
    const auto options = torch::TensorOptions().device(device).dtype(dtype);
    const double tolerance = dtype == torch::kFloat32 ? 1e-4 : 3e-2;
    for (bool removed : {false, true}) {
      for (Step step : {Step::kTorch, Step::kFused, Step::kKernel}) {
        torch::manual_seed(1);
        const Model model = RandomModel(s, removed, options);
        DecodeState st = NewState(model, /*context=*/24, options);
        std::vector<int64_t> fed = {7};
        st.token.fill_(7);
        double worst = 0;
        for (int i = 0; i < 20; ++i) {
          DecodeStep(model, st, step);
          const torch::Tensor idx = torch::tensor(fed, options.dtype(torch::kInt64));
          const torch::Tensor want = FullForward(model, idx)[-1].to(torch::kFloat32);
          const torch::Tensor got = st.logits[0].to(torch::kFloat32);
          worst = std::max(worst, ((got - want).norm() / want.norm()).item<double>());
          fed.push_back(want.argmax().item<int64_t>());  // the reference's greedy path
          st.token.fill_(fed.back());
        }
        std::printf(
            "{\"bench\": \"decode-check\", \"variant\": \"%s\", \"step\": \"%s\", "
            "\"dtype\": \"%s\", \"max_relative_error\": %.3g}\n",
            removed ? "qp" : "full", StepName(step), dtype == torch::kFloat32 ? "f32" : "bf16",
            worst);
        if (!(worst < tolerance)) ++failures;
      }
    }
  }
  if (DecodeKernelsAvailable(device)) {
    const auto bf16 = torch::TensorOptions().device(device).dtype(torch::kBFloat16);
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{
             {6144, 4096}, {2048, 4096}, {28672, 4096}, {4096, 14336}, {32000, 4096}, {7, 24}}) {
      const torch::Tensor w = torch::randn({rows, cols}, bf16), x = torch::randn({1, cols}, bf16);
      const torch::Tensor want = torch::mm(x.to(torch::kFloat64), w.to(torch::kFloat64).t());
      const torch::Tensor got = DecodeMatVec(x, w).to(torch::kFloat64);
      const double error = ((got - want).norm() / want.norm()).item<double>();
      std::printf(
          "{\"bench\": \"gemv-check\", \"rows\": %ld, \"cols\": %ld, "
          "\"relative_error\": %.3g}\n",
          static_cast<long>(rows), static_cast<long>(cols), error);
      if (!(error < 1e-2)) ++failures;  // bf16 output: about 2e-3
    }
    auto report = [&](const char* what, double error) {
      std::printf("{\"bench\": \"%s-check\", \"relative_error\": %.3g}\n", what, error);
      if (!(error < 1e-2)) ++failures;
    };
    const auto f64 = torch::kFloat64;
    {  // SwiGLU's activation in one kernel against torch::silu and the multiply, at Mistral's f
      const torch::Tensor h = torch::randn({1, 2 * 14336}, bf16);
      const torch::Tensor want = torch::silu(h.narrow(1, 0, 14336)) * h.narrow(1, 14336, 14336);
      const torch::Tensor got = DecodeSwiGlu(h);
      report("swiglu", ((got.to(f64) - want.to(f64)).norm() / want.to(f64).norm()).item<double>());
    }
    {  // attention with the append, 32 query heads on 8 KV heads of 128, at position 300 of 512
      const int64_t H = 32, kv = 8, hs = 128, capacity = 512, p = 300;
      const torch::Tensor q = torch::randn({1, H * hs}, bf16), k = torch::randn({1, kv * hs}, bf16);
      const torch::Tensor v = torch::randn({1, kv * hs}, bf16);
      torch::Tensor cache = torch::randn({1, 2 * kv, capacity, hs}, bf16);
      torch::Tensor reference = cache.to(f64);
      reference.index_put_({0, torch::indexing::Slice(0, kv), p}, k.view({kv, hs}).to(f64));
      reference.index_put_({0, torch::indexing::Slice(kv, 2 * kv), p}, v.view({kv, hs}).to(f64));
      const torch::Tensor pos = torch::full({1}, p, bf16.dtype(torch::kInt64));
      const torch::Tensor keys =
          reference[0].narrow(0, 0, kv).narrow(1, 0, p + 1);  // (kv, p+1, hs)
      const torch::Tensor values = reference[0].narrow(0, kv, kv).narrow(1, 0, p + 1);
      const torch::Tensor scores =
          torch::bmm(q.to(f64).view({kv, H / kv, hs}), keys.transpose(1, 2)) /
          std::sqrt(double(hs));
      const torch::Tensor want = torch::bmm(torch::softmax(scores, -1), values).view({1, H * hs});
      const torch::Tensor got = DecodeAttention(q, k, v, cache, pos, H, kv).to(f64);
      report("decode-attention", ((got - want).norm() / want.norm()).item<double>());
      report("decode-attention-append",
             ((cache.to(f64) - reference).norm() / reference.norm()).item<double>());
    }
  }
  return failures == 0 ? 0 : 1;
}

struct Timing {
  double tokens_per_s;
  int64_t weight_bytes;
};

Timing TimeDecode(const Model& model, Step step, int64_t context, int64_t tokens,
                  const torch::Device& device) {
  const auto options = model.wte.options();
  DecodeState st = NewState(model, context, options);
  const double tokens_per_s = bench::ReplayedStepsPerSecond([&] { DecodeStep(model, st, step); },
                                                            [&] {
                                                              st.pos.fill_(0);
                                                              st.token.fill_(1);
                                                            },
                                                            tokens, device);
  return {tokens_per_s, model.WeightBytesPerToken()};
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
  const double copy = bench::CopyBandwidth(device);
  const auto options = torch::TensorOptions().device(device).dtype(torch::kBFloat16);
  std::vector<Step> steps = {Step::kTorch, Step::kFused, Step::kMatVecOnly};
  if (DecodeKernelsAvailable(device)) {
    steps.push_back(Step::kKernel);
    steps.push_back(Step::kKernelMatVecOnly);
  }
  for (Step step : steps) {
    Timing t[2];
    for (bool removed : {false, true}) {
      torch::manual_seed(0);
      const Model model = RandomModel(s, removed, options);
      t[removed] = TimeDecode(model, step, context, tokens, device);
      const double streamed =
          t[removed].tokens_per_s * static_cast<double>(t[removed].weight_bytes);
      std::printf(
          "{\"bench\": \"decode\", \"variant\": \"%s\", \"step\": \"%s\", \"layers\": %ld, "
          "\"tokens_per_s\": %.2f, \"weight_bytes\": %ld, \"weight_bytes_per_s\": %.4g, "
          "\"copy_bandwidth\": %.4g, \"of_copy_bandwidth\": %.4f, "
          "\"bandwidth_limit_tokens_per_s\": %.2f}\n",
          removed ? "qp" : "full", StepName(step), static_cast<long>(s.layers),
          t[removed].tokens_per_s, static_cast<long>(t[removed].weight_bytes), streamed, copy,
          streamed / copy, copy / static_cast<double>(t[removed].weight_bytes));
      std::fflush(stdout);
    }
    const double byte_ratio = static_cast<double>(t[0].weight_bytes) / t[1].weight_bytes;
    const double speedup = t[1].tokens_per_s / t[0].tokens_per_s;
    std::printf(
        "{\"bench\": \"decode-speedup\", \"step\": \"%s\", \"speedup\": %.4f, "
        "\"weight_byte_ratio\": %.4f, \"of_byte_ratio\": %.4f}\n",
        StepName(step), speedup, byte_ratio, speedup / byte_ratio);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace isoflop

int main(int argc, char** argv) {
  return isoflop::Main(argc, argv);
}
