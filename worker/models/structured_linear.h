// The linear layers of the feed-forward network: dense, or one of the structured maps of the
// structured-FFN paper (Wei et al. 2024, papers.md 3.1-3.4), with self-guided training and
// pre-merge for decoding.
//
// Row convention as in torch.nn.Linear: a layer maps x (..., in) -> (..., out), and its dense
// equivalent W is (out x in), y = x W^T + b. Parameters = multiply-accumulates per token:
//   dense            W (out x in)                                    in * out
//   LowRank(R)       y = U (V x),  V (R x in), U (out x R)           (in + out) R
//   BlockShuffle(B)  block-diagonal, stride-B shuffle, block-diag.   min(in, out) (in + out) / B
//   BlockDense(R,B)  B blocks in/B -> R/B, concatenated, U (out x R)  R (out + in / B)
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/model_spec.h"

namespace isoflop {

// One FFN linear, (..., in) -> (..., out); the Mlp does not need to know how W is stored.
class FfnLinearImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  // The layer's map as one (out x in) matrix, bias excluded; exact (permutations included).
  virtual torch::Tensor DenseWeight() = 0;
  // Multiplies the map by s (bias untouched), spreading s evenly over the factors.
  virtual void ScaleMap(double s) = 0;

  const int64_t in_features;
  const int64_t out_features;
  torch::Tensor bias;  // (out), undefined without spec.bias

 protected:
  FfnLinearImpl(int64_t in, int64_t out, bool bias);
};

// nanoGPT's dense linear: y = x W^T + b.
class DenseLinearImpl : public FfnLinearImpl {
 public:
  DenseLinearImpl(int64_t in, int64_t out, bool bias);
  torch::Tensor forward(const torch::Tensor& x) override;
  torch::Tensor DenseWeight() override { return weight; }
  void ScaleMap(double s) override;

  torch::Tensor weight;               // (out, in)
  bool float32_weight_grads = false;  // LinearMap's float32 weight gradients (linear_map.h)
};

// The u ~ U(0, 1) draws with which reduce_flop decides, per layer and call, whether to compute the
// guide (papers.md 3.4). One stream is shared by all layers of a model. Host-side on purpose: a
// device-side draw would need a device-to-host copy on every call. State() round-trips exactly.
class GuideSampler {
 public:
  explicit GuideSampler(uint64_t seed) : engine_(seed) {}
  void Seed(uint64_t seed) { engine_.seed(seed); }
  double Uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }  // 53 random bits
  std::string State() const;
  bool SetState(const std::string& state);  // false (and unchanged) when `state` does not parse

 private:
  std::mt19937_64 engine_;
};

// alpha(t) of self-guided training at optimizer step t (0-based) with G guided steps: cosine
// 0.5 (1 + cos(pi t / G)) or linear 1 - t / G for t < G, then 0 (guide off). Both average
// 1/2 + 1/(2G) over the guided steps: the 0.5 of the accountant's mean_alpha (accountant.h).
double GuideAlpha(AlphaSchedule schedule, int64_t step, int64_t guided_steps);

// A structured FFN linear: the map U(V x) in its own factors, a bias added after it, and optionally
//   - a dense guide W (out x in) for self-guided training, initialised to the exact product of the
//     factors: o = alpha W x + (1 - alpha) U(V x) + b (papers.md 3.4). With reduce_flop, a training
//     call draws u ~ U(0, 1) and computes only U(V x) + b (no (1 - alpha) scaling) when u >= alpha.
//     Eval calls compute the blend while alpha > 0: the function the guided model stands for.
//   - a pre-merged dense copy of the map, for eval-mode calls of few tokens (papers.md 3.3).
class StructuredLinearImpl : public FfnLinearImpl {
 public:
  torch::Tensor forward(const torch::Tensor& x) final;  // (..., in) -> (..., out)
  torch::Tensor DenseWeight() final;                    // Map applied to the identity: exact
  void ScaleMap(double s) final;
  // The paper's init of the factors (LowRank "svd", the block layers "ortho"); zeroes the bias.
  virtual void ResetFactors(at::Generator& gen) = 0;

  // Guide W := DenseWeight(). Call once the factors are final (after ResetFactors, ScaleMap).
  void ResetGuide();
  void set_alpha(double alpha) { alpha_ = alpha; }
  double alpha() const { return alpha_; }
  void set_guide_sampler(std::shared_ptr<GuideSampler> sampler) { sampler_ = std::move(sampler); }

  // Computes the merged (out x in) matrix now. Eval-mode calls of at most max_tokens tokens use it
  // while alpha == 0 and the factors are unchanged since (their version counters tell).
  void Premerge(int64_t max_tokens);
  // The largest call (in tokens) for which the merged dense form is faster than the factors, as
  // isoflop-ffn-bench measured it on an H200 at widths 2048-5120, bf16 (bench/results/gpu_ffn.md;
  // the median over the widths, rounded to a power of two).
  virtual int64_t premerge_tokens() const = 0;
  bool UsesMerged(const torch::Tensor& x) const;  // whether forward(x) would take the merged path

  torch::Tensor guide;  // (out, in), undefined unless self-guided training is on

 protected:
  StructuredLinearImpl(int64_t in, int64_t out, bool bias, const SelfGuidedSpec& self_guided);
  // The structured product W x on rows: x (n, in) -> (n, out), bias excluded.
  virtual torch::Tensor Map(const torch::Tensor& x) = 0;
  virtual std::vector<torch::Tensor> Factors() const = 0;

 private:
  bool UsesGuide();

  bool reduce_flop_ = false;
  double alpha_ = 0.0;
  std::shared_ptr<GuideSampler> sampler_;
  torch::Tensor merged_;  // (out, in); not a registered buffer: derived, and rebuilt after a move
  int64_t merged_max_tokens_ = 0;
  std::vector<uint32_t> merged_versions_;
};

// LowRank(R): y = U (V x). Init "svd": W0 ~ N(0, 0.02^2) (out x in), W0 = U_s S Vh; V = sqrt(S_R)
// Vh_R, U = U_s,R sqrt(S_R), so U V is the best rank-R approximation of W0.
class LowRankImpl : public StructuredLinearImpl {
 public:
  LowRankImpl(int64_t in, int64_t out, int64_t rank, bool bias, const SelfGuidedSpec& self_guided);
  void ResetFactors(at::Generator& gen) override;
  int64_t premerge_tokens() const override { return 256; }  // 0-512 measured

  torch::Tensor V;  // (R, in)
  torch::Tensor U;  // (out, R)

 protected:
  torch::Tensor Map(const torch::Tensor& x) override;
  std::vector<torch::Tensor> Factors() const override { return {U, V}; }
};

// BlockShuffle(B) (Monarch), papers.md 3.1 exactly. With p = in/B, q = min(in, out)/B, s = out/B:
//   stage 1  block-diagonal: block b maps x[b p : (b+1) p] (p) -> h_b (q); h is block-major (B q)
//   shuffle  h viewed as a q x B grid and transposed: stage-2 block c reads h[c], h[c+B], ...
//   stage 2  block-diagonal: block c maps its q inputs -> y_c (s)
//   output   interleaved: out[j B + c] = y_c[j]
// Init "ortho": every block is the polar factor of a N(0, 0.02^2) draw (all singular values 1).
class BlockShuffleImpl : public StructuredLinearImpl {
 public:
  BlockShuffleImpl(int64_t in, int64_t out, int64_t blocks, bool bias,
                   const SelfGuidedSpec& self_guided);
  void ResetFactors(at::Generator& gen) override;
  int64_t premerge_tokens() const override { return 512; }  // 64-16384 measured

  const int64_t blocks;
  torch::Tensor w1;  // (B, q, p)
  torch::Tensor w2;  // (B, s, q)

 protected:
  torch::Tensor Map(const torch::Tensor& x) override;
  std::vector<torch::Tensor> Factors() const override { return {w1, w2}; }
};

// BlockDense(R, B): x split into B blocks of in/B, block b maps to R/B, the results concatenated
// block-major to width R (no shuffle), then a dense U (out x R). Init "ortho" for blocks and U.
class BlockDenseImpl : public StructuredLinearImpl {
 public:
  BlockDenseImpl(int64_t in, int64_t out, int64_t rank, int64_t blocks, bool bias,
                 const SelfGuidedSpec& self_guided);
  void ResetFactors(at::Generator& gen) override;
  int64_t premerge_tokens() const override { return 1024; }  // 256-4096 measured

  const int64_t blocks;
  torch::Tensor w1;  // (B, R/B, in/B)
  torch::Tensor U;   // (out, R)

 protected:
  torch::Tensor Map(const torch::Tensor& x) override;
  std::vector<torch::Tensor> Factors() const override { return {w1, U}; }
};

// The FFN linear in -> out of a block: dense, or spec.ffn's structured map when `structured` (the
// block's BlockShape::structured_ffn), guided when spec.self_guided is on.
std::shared_ptr<FfnLinearImpl> MakeFfnLinear(int64_t in, int64_t out, bool structured,
                                             const ModelSpec& spec);

// The polar factor of a Gaussian (rows x cols) draw: orthonormal rows or columns, whichever fewer.
torch::Tensor RandomOrthogonal(int64_t rows, int64_t cols, at::Generator& gen);

}  // namespace isoflop
