// Benchmark: zero-shot multiple-choice and cloze items read from JSONL (system.md section 7), and
// the metrics that the scores of their continuations add up to. Needs no LibTorch: the model
// enters only through a ContinuationScorer (continuation_scorer.h implements it).
//
// Every item becomes candidates, each a (context, continuation) pair of text whose continuation is
// scored by the model as  log P(continuation | context) = sum_t log p(c_t | context, c_<t)  over
// the continuation's own tokens. The four file formats of shared/data/README.md, told apart by
// their keys (one format per file; other keys are ignored):
//
//   choices          {"query", "choices": [k], "gold"}: candidate i = (query + D, choices[i]); the
//                    most likely continuation is the answer. acc, and acc_norm, which ranks by
//                    log-likelihood per character of the choice (lm-eval-harness's acc_norm:
//                    Unicode code points of the choice text alone, as Python's len() counts them).
//   context_options  {"context_options": [k], "continuation", "gold"} (WinoGrande's partial
//                    scoring): candidate i = (context_options[i], " " + continuation); the context
//                    under which the shared continuation is most likely is the answer. acc only:
//                    every candidate scores the same text, so normalising changes nothing.
//   cloze            {"context", "continuation"} (LAMBADA): one candidate (context,
//                    " " + continuation). acc: greedy decoding reproduces every continuation token
//                    exactly; ppl: exp(-mean over items of log P(continuation | context)), the
//                    per-item perplexity that lm-eval-harness reports for LAMBADA.
//   hellaswag        {"activity_label", "ctx_a", "ctx_b", "endings": [k], "label"}: scored as
//                    `choices` with query = activity_label + ": " + ctx_a + " " + Capitalize(ctx_b)
//                    and the endings as choices, after lm-eval-harness's clean-up of WikiHow
//                    artifacts (CleanHellaSwagText). acc and acc_norm.
//
// D, the delimiter between query and choice, is llm-foundry's for these files
// (scripts/eval/yamls/tasks_v0.3.yaml, where the shared files come from): "\nAnswer: " for the
// question-answer sets arc_easy, arc_challenge, piqa, boolq and mmlu (chosen by the file's name),
// " " for every other file. Whitespace that ends a context moves to the front of its continuation,
// as lm-eval-harness does, so every continuation starts with its space and BPE tokenizes it as in
// running text: "Question: ...\nAnswer:" | " Sunlight is ...".
//
// Ties in any argmax go to the lowest index (numpy's argmax), so a model that gives all candidates
// the same score always answers 0.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/run_config.h"
#include "common/status.h"
#include "common/text/tokenizer.h"

namespace isoflop {

enum class BenchmarkFormat { kChoices, kContextOptions, kCloze, kHellaSwag };
const char* ToString(BenchmarkFormat);

struct BenchmarkCandidate {
  std::string context;
  std::string continuation;  // scored; starts with the whitespace moved off the context
  // acc_norm's divisor: code points of the choice text alone, without delimiter (at least 1).
  int64_t norm_chars = 1;
};

struct BenchmarkItem {
  int64_t line = 0;                            // 1-based line of the JSONL file, for messages
  std::vector<BenchmarkCandidate> candidates;  // cloze: exactly one
  int64_t gold = 0;                            // index into candidates; 0 for cloze
};

struct Benchmark {
  std::string name;  // BenchmarkSpec::name: records are NAME/acc, NAME/acc_norm, NAME/ppl
  std::string path;
  BenchmarkFormat format = BenchmarkFormat::kChoices;
  std::vector<BenchmarkItem> items;
};

// Reads spec.path: the first spec.limit items (all when 0), blank lines skipped. Errors name the
// file and, for an item, its line: NotFound / IOError for the file; InvalidArgument for a line
// that is not JSON, matches no format, mixes formats with the lines before it, lacks a key, has a
// key of the wrong type or a gold index out of range; InvalidArgument for a file without items.
Result<Benchmark> ReadBenchmark(const BenchmarkSpec& spec);

// "\nAnswer: " or " " for the file at `path` (see above).
std::string_view QueryChoiceDelimiter(std::string_view path);

// lm-eval-harness's HellaSwag preprocess(): strip surrounding whitespace, " [title]" -> ". ",
// drop every "[...]" (shortest match), then each "  " -> " " in one pass.
std::string CleanHellaSwagText(std::string_view text);
// Python's str.capitalize() for ASCII: the first letter upper case, every other letter lower case.
// Bytes outside ASCII are kept as they are.
std::string Capitalize(std::string_view text);

// -------------------------------------------------------------------------------------------------
// Scoring.

// One scoring request in token ids: the model reads context then continuation and is scored on the
// continuation's tokens only.
struct TokenizedRequest {
  std::vector<TokenId> context;       // never empty: an empty context is [EOT], as lm-eval-harness
  std::vector<TokenId> continuation;  // what is scored
};

struct ContinuationScore {
  double logprob = 0;   // sum over the continuation's tokens of log p(token | everything before)
  bool greedy = false;  // the argmax at every continuation position is the continuation's token
};

// Scores requests, one score per request in the same order.
using ContinuationScorer =
    std::function<std::vector<ContinuationScore>(std::span<const TokenizedRequest>)>;

// Context and continuation encoded separately (so each candidate's continuation tokens are the
// same whatever its context ends with, as in lm-eval-harness).
TokenizedRequest Tokenize(const BenchmarkCandidate& candidate, Tokenizer& tokenizer);

struct BenchmarkResult {
  std::string name;
  int64_t items = 0;     // items scored: the `count` of every metric's record
  int64_t requests = 0;  // continuations scored (candidates of all items)
  std::vector<std::pair<std::string, double>> metrics;  // {"acc", 0.27}, {"acc_norm", ...}, ...
};

// The metrics of `benchmark` (see the format table above) from one score per candidate, items in
// order and candidates in order within an item. InvalidArgument when the count is wrong.
Result<BenchmarkResult> ComputeBenchmarkMetrics(const Benchmark& benchmark,
                                                std::span<const ContinuationScore> scores);

// Tokenize every candidate, score all of them in one call of `scorer` (which batches them), and
// compute the metrics.
Result<BenchmarkResult> EvaluateBenchmark(const Benchmark& benchmark, Tokenizer& tokenizer,
                                          const ContinuationScorer& scorer);

}  // namespace isoflop
