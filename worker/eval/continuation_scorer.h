// ScoreContinuations: the log-likelihood of each request's continuation under a LibTorch language
// model, many requests per forward pass (benchmark.h's ContinuationScorer).
//
// A request is read as one sequence, context then continuation; the model's logits at the
// positions before each continuation token give
//   logprob = sum_t log_softmax(logits[p_t])[c_t],   greedy = (argmax logits[p_t] == c_t for all t)
// where c_t is the t-th continuation token and p_t the position of the token just before it.
//
// Truncation: a request longer than seq_len + 1 tokens keeps its last seq_len + 1 (lm-eval-harness
// cuts from the left too), so the model reads at most seq_len of them; when the continuation alone
// is longer than seq_len, only its last seq_len tokens are scored.
//
// Batching: requests are sorted by length, longest first, and packed into batches of at most
// `batch_tokens` padded tokens (rows x longest row; always at least one row). Rows are padded on
// the right: under causal attention no position sees the padding after it, and every row's
// positions start at 0, so a request's score does not depend on the requests beside it.
// Log-softmax is taken only at the scored positions, in float32 (float64 when the logits are), so
// a batch never materialises more than the model's own (rows, T, V) logits.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "worker/eval/benchmark.h"

namespace isoflop {

// The model as the scorer sees it: ids (B, T) int64 on ScorerOptions::device -> logits (B, T, V).
// The caller owns eval mode, no-grad and autocast: the trainer wraps its model in the same three
// as for validation.
using LogitsFunction = std::function<torch::Tensor(const torch::Tensor& ids)>;

struct ScorerOptions {
  int64_t seq_len = 0;       // the model's context length: longer requests lose their oldest tokens
  int64_t batch_tokens = 0;  // padded tokens per forward pass: rows x longest row
  torch::Device device = torch::kCPU;
};

// One score per request, in order. Every request's context must be non-empty (Tokenize makes an
// empty context [EOT]): the first continuation token needs a position to be predicted from.
std::vector<ContinuationScore> ScoreContinuations(const LogitsFunction& logits,
                                                  std::span<const TokenizedRequest> requests,
                                                  const ScorerOptions& options);

}  // namespace isoflop
