#include "worker/eval/continuation_scorer.h"

#include <algorithm>

namespace isoflop {
namespace {

// Where one request sits in its batch: the tokens the model reads and which of them are scored.
struct Window {
  int64_t first = 0;   // index into context ++ continuation of the first token read
  int64_t length = 0;  // tokens read (the model's input); the last one's successor is the end
  int64_t scored = 0;  // the last `scored` input positions predict continuation tokens
};

Window WindowOf(const TokenizedRequest& request, int64_t seq_len) {
  const int64_t total = static_cast<int64_t>(request.context.size() + request.continuation.size());
  const int64_t kept = std::min(total, seq_len + 1);  // input tokens plus the final target
  Window w;
  w.first = total - kept;
  w.length = kept - 1;
  w.scored = std::min(static_cast<int64_t>(request.continuation.size()), w.length);
  return w;
}

// Token i of context ++ continuation.
int64_t TokenAt(const TokenizedRequest& request, int64_t i) {
  const int64_t context = static_cast<int64_t>(request.context.size());
  return i < context ? request.context[static_cast<size_t>(i)]
                     : request.continuation[static_cast<size_t>(i - context)];
}

}  // namespace

std::vector<ContinuationScore> ScoreContinuations(const LogitsFunction& logits_of,
                                                  std::span<const TokenizedRequest> requests,
                                                  const ScorerOptions& options) {
  TORCH_CHECK(options.seq_len > 0, "ScoreContinuations: seq_len must be positive");
  std::vector<Window> windows;
  windows.reserve(requests.size());
  for (const TokenizedRequest& request : requests) {
    TORCH_CHECK(!request.context.empty(), "ScoreContinuations: a request has an empty context");
    windows.push_back(WindowOf(request, options.seq_len));
  }
  // Longest first, so that each batch pads its rows to nearly their own length. An empty
  // continuation needs no forward pass: its score is the empty sum, vacuously greedy.
  std::vector<ContinuationScore> scores(requests.size(), ContinuationScore{0.0, true});
  std::vector<size_t> order;
  for (size_t i = 0; i < requests.size(); ++i) {
    if (windows[i].scored > 0) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return windows[a].length > windows[b].length; });

  for (size_t begin = 0; begin < order.size();) {
    const int64_t width = windows[order[begin]].length;  // the longest row of this batch
    const int64_t rows = std::min(static_cast<int64_t>(order.size() - begin),
                                  std::max<int64_t>(1, options.batch_tokens / width));
    const size_t end = begin + static_cast<size_t>(rows);

    // Host side: the padded ids (pad 0: any valid id, never seen by an earlier position) and, for
    // every scored position, its flat index in (rows * width), its target and its row.
    torch::Tensor ids = torch::zeros({rows, width}, torch::kInt64);
    auto ids_view = ids.accessor<int64_t, 2>();
    std::vector<int64_t> positions, targets, row_of;
    for (int64_t r = 0; r < rows; ++r) {
      const TokenizedRequest& request = requests[order[begin + static_cast<size_t>(r)]];
      const Window& w = windows[order[begin + static_cast<size_t>(r)]];
      for (int64_t j = 0; j < w.length; ++j) ids_view[r][j] = TokenAt(request, w.first + j);
      for (int64_t j = w.length - w.scored; j < w.length; ++j) {
        positions.push_back(r * width + j);
        targets.push_back(TokenAt(request, w.first + j + 1));
        row_of.push_back(r);
      }
    }
    const torch::Tensor position_t = torch::tensor(positions, torch::kInt64).to(options.device);
    const torch::Tensor target_t = torch::tensor(targets, torch::kInt64).to(options.device);

    const torch::Tensor logits = logits_of(ids.to(options.device));  // (rows, width, V)
    TORCH_CHECK(logits.dim() == 3 && logits.size(0) == rows && logits.size(1) == width,
                "ScoreContinuations: logits of shape ", logits.sizes(), " for ids of shape ",
                ids.sizes());
    torch::Tensor picked =
        logits.reshape({rows * width, logits.size(2)}).index_select(0, position_t);
    if (picked.scalar_type() != torch::kFloat64) picked = picked.to(torch::kFloat32);  // (K, V)
    const torch::Tensor token_logprob = picked.log_softmax(-1)
                                            .gather(1, target_t.unsqueeze(1))
                                            .squeeze(1)
                                            .to(torch::kFloat64)
                                            .cpu();                        // (K)
    const torch::Tensor token_hit = picked.argmax(-1).eq(target_t).cpu();  // (K)

    // Per-row sums on the host, in position order: the same on every device and every run.
    const auto logprob_view = token_logprob.accessor<double, 1>();
    const auto hit_view = token_hit.accessor<bool, 1>();
    for (size_t k = 0; k < row_of.size(); ++k) {
      ContinuationScore& score = scores[order[begin + static_cast<size_t>(row_of[k])]];
      score.logprob += logprob_view[static_cast<int64_t>(k)];
      score.greedy = score.greedy && hit_view[static_cast<int64_t>(k)];
    }
    begin = end;
  }
  return scores;
}

}  // namespace isoflop
