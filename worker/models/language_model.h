// LanguageModel: the interface every architecture of the seed papers implements, and their shared
// ends.
//
// A model maps token ids to next-token logits: idx (B, T) int64, T <= spec.seq_len -> (B, T, V).
// Every variant embeds tokens at d_model (wte, plus wpe for learned positions), runs its own stack,
// and ends in ln_f and lm_head at its final width (spec.final_width(): d_model / 2^stages for
// lgpt/cgpt). The shared ends live here, so every variant names them alike ("wte.weight",
// "ln_f.weight", "lm_head.weight") and they mirror the accountant's AddEmbeddings and AddHead.
//
// Models are built by BuildModel (model_registry.h), never constructed directly by callers: the
// constructors allocate shapes, and the initialisation rules live in one place (init.h).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "common/model_spec.h"
#include "worker/models/attention.h"

namespace isoflop {

class GuideSampler;

// nanoGPT's LayerNorm: a weight always, a bias only when spec.bias (torch::nn::LayerNorm has both
// or neither). eps 1e-5, as in papers.md 1.2.
struct LayerNormImpl : torch::nn::Module {
  LayerNormImpl(int64_t width, bool bias);
  // (..., width) -> (..., width); under bf16 autocast on CUDA float32 in, bf16 out when `fused`.
  torch::Tensor forward(const torch::Tensor& x);
  // The residual add before the norm: (s, forward(s)) for s = x + branch, in one kernel where
  // FusedAddLayerNormApplies (and `fused`).
  std::pair<torch::Tensor, torch::Tensor> AddForward(const torch::Tensor& x,
                                                     const torch::Tensor& branch);

  int64_t width;
  bool fused = true;     // FusedLayerNorm where it applies (fused_layer_norm.h)
  torch::Tensor weight;  // (width)
  torch::Tensor bias;    // (width), undefined without spec.bias
};
TORCH_MODULE(LayerNorm);

// The state of a batch of sequences decoded one position at a time (LanguageModelImpl::DecodeStep):
// the position as a device scalar and one key/value cache per attention layer, at fixed addresses.
struct DecodeState {
  DecodePosition at;            // pos starts at 0; DecodeStep advances it
  torch::Tensor positions;      // (capacity) int64: 0 .. capacity-1, for the mask
  std::vector<KvCache> caches;  // one per block, in the model's block order (pgpt: path-major)
  int64_t path = -1;            // pgpt-1: the only path that runs; -1: every path
  // DecodeStep calls made on the host, checked against the capacity there: an index past the
  // cache would otherwise write out of bounds on the device. A replayed CUDA graph of a step does
  // not count (its caller keeps pos below the capacity).
  int64_t steps_taken = 0;
};

class LanguageModelImpl : public torch::nn::Module {
 public:
  // idx (B, T) int64, T <= spec().seq_len -> logits (B, T, vocab_size).
  torch::Tensor forward(const torch::Tensor& idx) { return Unembed(Body(idx)); }

  // The mean next-token loss of idx against targets, both (B, T) (NextTokenLoss's convention):
  // NextTokenLoss(forward(idx), targets) computed without the float32 logits where LmHeadLoss can
  // (lm_head_loss.h: CUDA, bf16), else exactly that.
  torch::Tensor Loss(const torch::Tensor& idx, const torch::Tensor& targets);

  const ModelSpec& spec() const { return spec_; }

  // Incremental decoding with a KV cache: every architecture except cgpt with conv_kernel > 1,
  // whose convolution would need a cache of its own.
  virtual bool CanDecode() const { return true; }
  // A state for sequences of at most `capacity` <= seq_len positions, at position 0, on the
  // model's device. The caches are allocated by the first DecodeStep, in its activations' dtype.
  virtual DecodeState NewDecodeState(int64_t capacity);
  // Feeds token (B, 1) int64 at position state.at.pos and returns the next-token logits (B, V),
  // then advances the position: forward(prefix)[:, -1] computed from the cached earlier positions.
  // Device operations only, so that a step can be captured as a CUDA graph once the caches exist.
  // The caller keeps pos below the capacity; a host call past it is refused (steps_taken).
  torch::Tensor DecodeStep(const torch::Tensor& token, DecodeState& state);

  // Self-guided training (papers.md 3.4): the blend weight alpha of every structured FFN linear's
  // dense guide, o = alpha W x + (1 - alpha) U(V x) + b. The trainer sets it once per optimizer
  // step from GuideAlpha (structured_linear.h); 0 turns the guides off for good. No-op without any.
  void set_alpha(double alpha);
  // Seeds the u ~ U(0, 1) draws of reduce_flop: one stream for all layers, one draw per layer and
  // call. All data-parallel ranks must use the same seed, so that they skip the same guides.
  void SeedGuideSampler(uint64_t seed);
  // The shared draw stream, for checkpoints (GuideSampler::State / SetState). Null without guides.
  const std::shared_ptr<GuideSampler>& guide_sampler() const { return guide_sampler_; }

  // Pre-merge for decoding (papers.md 3.3): folds every structured FFN linear into one dense
  // (out x in) matrix, used in eval mode for calls of at most `max_tokens` tokens (0: each layer's
  // measured threshold, StructuredLinearImpl::premerge_tokens). Call after training and after
  // moving the model to its device; a merge made stale by later weight updates is never used.
  void PremergeStructuredLayers(int64_t max_tokens = 0);
  // Whether every LayerNorm takes the fused kernel where it applies (on by default).
  void set_fused_layer_norm(bool on);
  // Whether gpt attention and dense FFN linears take LinearMap's float32 weight gradients where
  // they apply (off by default: linear_map.h).
  void set_float32_weight_grads(bool on);

  torch::nn::Embedding wte{nullptr};  // (V, d_model)
  torch::nn::Embedding wpe{nullptr};  // (T, d_model); null with rotary positions
  LayerNorm ln_f{nullptr};            // at the final width
  // (V, d_final), no bias; null when tied: the logits multiply by wte.weight.
  torch::nn::Linear lm_head{nullptr};

 protected:
  explicit LanguageModelImpl(const ModelSpec& spec);

  // Each architecture's own part: idx (B, T) -> the last hidden state (B, T, d_final), before ln_f.
  virtual torch::Tensor Body(const torch::Tensor& idx) = 0;
  // Body for one position through the caches: the embedded x0 (B, 1, d_model) -> (B, 1, d_final).
  virtual torch::Tensor DecodeBody(const torch::Tensor& x0, DecodeState& state) = 0;

  torch::Tensor Embed(const torch::Tensor& idx);  // (B, T) -> (B, T, d_model)
  torch::Tensor Unembed(const torch::Tensor& x);  // (B, T, d_final) -> (B, T, V)
  const torch::Tensor& HeadWeight() const;        // (V, d_final): lm_head's, or wte's when tied

  ModelSpec spec_;
  std::shared_ptr<GuideSampler> guide_sampler_;
};

// Mean next-token cross-entropy over all positions: logits (B, T, V), targets (B, T) int64 holding
// the token that follows each position; targets equal to -1 are ignored (nanoGPT's convention).
torch::Tensor NextTokenLoss(const torch::Tensor& logits, const torch::Tensor& targets);

// Parameter elements of a model by the accountant's rule (accountant.h): every tensor counted once
// however often it is shared; self-guided training's dense guides ("guide" parameters) apart.
struct ModelParameterCount {
  int64_t total = 0;  // compare with Accountant::Params(spec).total
  int64_t guide = 0;  // compare with Accountant::Params(spec).guide
};
ModelParameterCount CountParameters(const torch::nn::Module& model);

}  // namespace isoflop
