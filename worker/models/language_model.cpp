#include "worker/models/language_model.h"

#include <string>
#include <unordered_set>

#include "worker/models/autocast_state.h"
#include "worker/models/fused_layer_norm.h"
#include "worker/models/lm_head_loss.h"
#include "worker/models/structured_linear.h"

namespace isoflop {

namespace F = torch::nn::functional;

LayerNormImpl::LayerNormImpl(int64_t width, bool bias) : width(width) {
  weight = register_parameter("weight", torch::ones({width}));
  if (bias) this->bias = register_parameter("bias", torch::zeros({width}));
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& x) {
  // Under bf16 autocast on CUDA: float32 in, bf16 out in one kernel (fused_layer_norm.h).
  if (fused && FusedLayerNormApplies(x, weight)) return FusedLayerNorm(x, weight, bias, 1e-5);
  return torch::layer_norm(x, {width}, weight, bias, /*eps=*/1e-5);
}

std::pair<torch::Tensor, torch::Tensor> LayerNormImpl::AddForward(const torch::Tensor& x,
                                                                  const torch::Tensor& branch) {
  if (fused && FusedAddLayerNormApplies(x, branch, weight)) {
    return FusedAddLayerNorm(x, branch, weight, bias, 1e-5);
  }
  const torch::Tensor s = x + branch;
  return {s, forward(s)};
}

LanguageModelImpl::LanguageModelImpl(const ModelSpec& spec) : spec_(spec) {
  wte = register_module("wte", torch::nn::Embedding(spec.vocab_size, spec.d_model));
  if (spec.positions == Positions::kLearned) {
    wpe = register_module("wpe", torch::nn::Embedding(spec.seq_len, spec.d_model));
  }
  ln_f = register_module("ln_f", LayerNorm(spec.final_width(), spec.bias));
  if (!spec.tied_embeddings) {
    lm_head = register_module(
        "lm_head", torch::nn::Linear(
                       torch::nn::LinearOptions(spec.final_width(), spec.vocab_size).bias(false)));
  }
  if (spec.self_guided.mode != SelfGuidedMode::kOff) {
    guide_sampler_ = std::make_shared<GuideSampler>(/*seed=*/0);
  }
}

torch::Tensor LanguageModelImpl::Embed(const torch::Tensor& idx) {
  TORCH_CHECK(idx.dim() == 2 && idx.size(1) <= spec_.seq_len,
              "idx must be (B, T) with T <= ", spec_.seq_len, ", got ", idx.sizes());
  torch::Tensor x = wte(idx);                             // (B, T) -> (B, T, d)
  if (wpe) x = x + wpe->weight.slice(0, 0, idx.size(1));  // + (T, d): learned absolute positions
  return x;
}

DecodeState LanguageModelImpl::NewDecodeState(int64_t capacity) {
  TORCH_CHECK(CanDecode(), "this architecture cannot decode with a KV cache");
  TORCH_CHECK(capacity >= 1 && capacity <= spec_.seq_len, "decode capacity must be in [1, ",
              spec_.seq_len, "], got ", capacity);
  const auto ids = torch::TensorOptions().device(wte->weight.device()).dtype(torch::kInt64);
  DecodeState state;
  state.positions = torch::arange(capacity, ids);
  state.at.pos = torch::zeros({1}, ids);
  state.at.mask = torch::zeros({1, 1, 1, capacity}, ids.dtype(torch::kBool));
  state.caches.resize(static_cast<size_t>(spec_.n_layer));
  return state;
}

torch::Tensor LanguageModelImpl::DecodeStep(const torch::Tensor& token, DecodeState& state) {
  TORCH_CHECK(token.dim() == 2 && token.size(1) == 1, "token must be (B, 1), got ", token.sizes());
  TORCH_CHECK(state.steps_taken < state.positions.size(0), "decoding past the cache's capacity of ",
              state.positions.size(0), " positions");
  ++state.steps_taken;
  // mask[t] = t <= pos: this position attends to itself and every earlier one.
  torch::le_out(state.at.mask, state.positions.view({1, 1, 1, -1}), state.at.pos);
  torch::Tensor x = wte(token);                                // (B, 1) -> (B, 1, d)
  if (wpe) x = x + wpe->weight.index_select(0, state.at.pos);  // + (1, d): position pos
  const torch::Tensor logits = Unembed(DecodeBody(x, state));  // (B, 1, V)
  state.at.pos.add_(1);
  return logits.select(1, 0);  // (B, V)
}

const torch::Tensor& LanguageModelImpl::HeadWeight() const {
  return lm_head ? lm_head->weight : wte->weight;
}

torch::Tensor LanguageModelImpl::Unembed(const torch::Tensor& x) {
  const torch::Tensor h = ln_f(x);    // (B, T, d_final)
  return F::linear(h, HeadWeight());  // (B, T, d_final) -> (B, T, V)
}

torch::Tensor LanguageModelImpl::Loss(const torch::Tensor& idx, const torch::Tensor& targets) {
  const torch::Tensor x = Body(idx);  // (B, T, d_final)
  const bool bf16 = x.scalar_type() == torch::kBFloat16 || Bf16AutocastOn(x.device().type());
  if (!bf16 || !FusedLmHeadLossAvailable(x.device())) return NextTokenLoss(Unembed(x), targets);
  const torch::Tensor h = ln_f(x);  // (B, T, d_final)
  // (B*T, d_final), (V, d_final), (B*T) -> the mean loss
  return LmHeadLoss(h.reshape({-1, h.size(-1)}), HeadWeight(), targets.reshape({-1}));
}

void LanguageModelImpl::set_alpha(double alpha) {
  for (const auto& module : modules(/*include_self=*/false)) {
    if (auto* layer = dynamic_cast<StructuredLinearImpl*>(module.get())) layer->set_alpha(alpha);
  }
}

void LanguageModelImpl::SeedGuideSampler(uint64_t seed) {
  if (!guide_sampler_) return;
  guide_sampler_->Seed(seed);
  for (const auto& module : modules(/*include_self=*/false)) {
    if (auto* layer = dynamic_cast<StructuredLinearImpl*>(module.get())) {
      layer->set_guide_sampler(guide_sampler_);
    }
  }
}

void LanguageModelImpl::PremergeStructuredLayers(int64_t max_tokens) {
  for (const auto& module : modules(/*include_self=*/false)) {
    if (auto* layer = dynamic_cast<StructuredLinearImpl*>(module.get()))
      layer->Premerge(max_tokens > 0 ? max_tokens : layer->premerge_tokens());
  }
}

void LanguageModelImpl::set_fused_layer_norm(bool on) {
  for (const auto& module : modules(/*include_self=*/false)) {
    if (auto* norm = dynamic_cast<LayerNormImpl*>(module.get())) norm->fused = on;
  }
}

void LanguageModelImpl::set_float32_weight_grads(bool on) {
  for (const auto& module : modules(/*include_self=*/false)) {
    if (auto* attn = dynamic_cast<CausalSelfAttentionImpl*>(module.get()))
      attn->float32_weight_grads = on;
    if (auto* linear = dynamic_cast<DenseLinearImpl*>(module.get()))
      linear->float32_weight_grads = on;
  }
}

torch::Tensor NextTokenLoss(const torch::Tensor& logits, const torch::Tensor& targets) {
  return F::cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}),
                          F::CrossEntropyFuncOptions().ignore_index(-1));
}

ModelParameterCount CountParameters(const torch::nn::Module& model) {
  ModelParameterCount count;
  std::unordered_set<const void*> seen;  // LibTorch lists a shared tensor once per owner
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    if (!seen.insert(item.value().unsafeGetTensorImpl()).second) continue;
    const std::string& name = item.key();
    const bool is_guide = name == "guide" || name.ends_with(".guide");
    (is_guide ? count.guide : count.total) += item.value().numel();
  }
  return count;
}

}  // namespace isoflop
