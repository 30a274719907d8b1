// Zero-shot benchmark scoring on LibTorch models (worker/eval/continuation_scorer.h) and in
// isoflop-worker: the batched scorer reproduces log-likelihoods computed by hand, one prefix and
// one written-out log-softmax at a time; padding, batch size and order change no score;
// truncation keeps the newest tokens; a randomly initialised model scores at chance on the shared
// benchmark files; and isoflop-worker with eval.benchmarks writes NAME/acc records (or refuses a
// bad configuration before training).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/data/token_shard.h"
#include "common/run_config.h"
#include "tests/worker_models_testing.h"
#include "tests/worker_testing.h"
#include "worker/eval/benchmark.h"
#include "worker/eval/benchmark_suite.h"
#include "worker/eval/continuation_scorer.h"

namespace isoflop {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// One intra-op thread, as isoflop-worker runs by default: on a busy machine, OpenMP threads that
// spin while waiting for a core make these small models several times slower.
class OneThread : public ::testing::Environment {
 public:
  void SetUp() override { torch::set_num_threads(1); }
};
[[maybe_unused]] ::testing::Environment* const kOneThread =
    ::testing::AddGlobalTestEnvironment(new OneThread);

fs::path SharedData() {
  return fs::path(ISOFLOP_SHARED_DIR) / "data";
}

LogitsFunction Logits(LanguageModelImpl& model) {
  return [&model](const torch::Tensor& ids) { return model.forward(ids); };
}

ScorerOptions Options(int64_t seq_len, int64_t batch_tokens) {
  ScorerOptions options;
  options.seq_len = seq_len;
  options.batch_tokens = batch_tokens;
  return options;
}

// The tiny model of the model tests (V 64, T 16) in eval mode, in `dtype`.
std::shared_ptr<LanguageModelImpl> TinyModel(torch::ScalarType dtype, uint64_t seed = 3) {
  std::shared_ptr<LanguageModelImpl> model = testing::Build(testing::TinySpec(), seed);
  model->to(dtype);
  model->eval();
  return model;
}

// log p(continuation | context) without the scorer: one forward pass per prefix, and the
// log-softmax of the last position written out as x_t - (m + log sum_j exp(x_j - m)) in double.
ContinuationScore ByHand(LanguageModelImpl& model, std::vector<int64_t> prefix,
                         const std::vector<int64_t>& continuation) {
  ContinuationScore score{0.0, true};
  for (const int64_t token : continuation) {
    const int64_t n = static_cast<int64_t>(prefix.size());
    const torch::Tensor logits =
        model.forward(torch::tensor(prefix, torch::kInt64).view({1, n}))[0][n - 1]
            .to(torch::kFloat64)
            .contiguous();
    const auto x = logits.accessor<double, 1>();
    int64_t argmax = 0;
    for (int64_t j = 1; j < x.size(0); ++j) {
      if (x[j] > x[argmax]) argmax = j;
    }
    double sum = 0;
    for (int64_t j = 0; j < x.size(0); ++j) sum += std::exp(x[j] - x[argmax]);
    score.logprob += x[token] - (x[argmax] + std::log(sum));
    score.greedy = score.greedy && argmax == token;
    prefix.push_back(token);
  }
  return score;
}

TokenizedRequest Request(std::vector<TokenId> context, std::vector<TokenId> continuation) {
  return TokenizedRequest{std::move(context), std::move(continuation)};
}

std::vector<int64_t> Ids(const std::vector<TokenId>& ids) {
  return std::vector<int64_t>(ids.begin(), ids.end());
}

// Random ids in [0, 64) from their own generator.
std::vector<TokenId> RandomIds(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<TokenId> ids(n);
  for (TokenId& id : ids) id = static_cast<TokenId>(rng() % 64);
  return ids;
}

// -------------------------------------------------------------------------------------------------
// The scorer against hand-computed log-likelihoods.

TEST(ContinuationScorer, MatchesLogLikelihoodsComputedByHandInFloat64AndFloat32) {
  torch::NoGradGuard no_grad;
  for (const auto& [dtype, tolerance] :
       {std::pair{torch::kFloat64, 1e-10}, std::pair{torch::kFloat32, 1e-5}}) {
    std::shared_ptr<LanguageModelImpl> model = TinyModel(dtype);
    const std::vector<TokenizedRequest> requests = {
        Request({3, 5, 7}, {11, 2, 60}),
        Request({42}, {42}),
        Request(RandomIds(9, 1), RandomIds(4, 2)),
    };
    const std::vector<ContinuationScore> scores =
        ScoreContinuations(Logits(*model), requests, Options(16, 64));
    ASSERT_EQ(scores.size(), requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      const ContinuationScore expected =
          ByHand(*model, Ids(requests[i].context), Ids(requests[i].continuation));
      EXPECT_NEAR(scores[i].logprob, expected.logprob, tolerance) << "request " << i;
      EXPECT_EQ(scores[i].greedy, expected.greedy) << "request " << i;
      // Near uniform at initialisation: each token costs about log 64.
      EXPECT_NEAR(scores[i].logprob,
                  -std::log(64.0) * static_cast<double>(requests[i].continuation.size()), 1.0);
    }
  }
}

TEST(ContinuationScorer, GreedyHoldsExactlyForTheModelsOwnGreedyContinuation) {
  torch::NoGradGuard no_grad;
  std::shared_ptr<LanguageModelImpl> model = TinyModel(torch::kFloat64);
  // Decode four tokens greedily after the context, one forward pass at a time.
  std::vector<int64_t> sequence = {1, 2, 3};
  for (int i = 0; i < 4; ++i) {
    const int64_t n = static_cast<int64_t>(sequence.size());
    sequence.push_back(
        model->forward(torch::tensor(sequence).view({1, n}))[0][n - 1].argmax().item<int64_t>());
  }
  const std::vector<TokenId> greedy(sequence.begin() + 3, sequence.end());
  std::vector<TokenId> wrong_last = greedy;
  wrong_last.back() = (wrong_last.back() + 1) % 64;
  std::vector<TokenId> wrong_first = greedy;
  wrong_first.front() = (wrong_first.front() + 1) % 64;
  const std::vector<ContinuationScore> scores = ScoreContinuations(
      Logits(*model),
      std::vector<TokenizedRequest>{Request({1, 2, 3}, greedy), Request({1, 2, 3}, wrong_last),
                                    Request({1, 2, 3}, wrong_first)},
      Options(16, 64));
  EXPECT_TRUE(scores[0].greedy);
  EXPECT_FALSE(scores[1].greedy);
  EXPECT_FALSE(scores[2].greedy);
  EXPECT_GT(scores[0].logprob, scores[1].logprob);  // the argmax is the likeliest token
}

TEST(ContinuationScorer, PaddingBatchSizeAndOrderChangeNoScore) {
  torch::NoGradGuard no_grad;
  for (const torch::ScalarType dtype : {torch::kFloat64, torch::kFloat32}) {
    std::shared_ptr<LanguageModelImpl> model = TinyModel(dtype);
    const TokenizedRequest short_one = Request({4, 8}, {15});
    const std::vector<TokenizedRequest> mixed = {
        Request(RandomIds(12, 3), RandomIds(3, 4)), short_one,
        Request(RandomIds(5, 5), RandomIds(2, 6)), short_one,
        Request(RandomIds(1, 7), RandomIds(15, 8))};
    const ContinuationScore alone = ScoreContinuations(
        Logits(*model), std::vector<TokenizedRequest>{short_one}, Options(16, 1 << 20))[0];
    // One batch: every row padded to the longest (15 tokens); then one request per batch.
    const std::vector<ContinuationScore> one_batch =
        ScoreContinuations(Logits(*model), mixed, Options(16, 1 << 20));
    const std::vector<ContinuationScore> one_each =
        ScoreContinuations(Logits(*model), mixed, Options(16, 1));
    ASSERT_EQ(one_batch.size(), mixed.size());
    EXPECT_EQ(one_batch[1].logprob, alone.logprob);
    EXPECT_EQ(one_batch[3].logprob, alone.logprob);
    for (size_t i = 0; i < mixed.size(); ++i) {
      EXPECT_EQ(one_batch[i].logprob, one_each[i].logprob) << "request " << i;
      EXPECT_EQ(one_batch[i].greedy, one_each[i].greedy) << "request " << i;
    }
  }
}

TEST(ContinuationScorer, LongRequestsKeepTheirNewestTokens) {
  torch::NoGradGuard no_grad;
  std::shared_ptr<LanguageModelImpl> model = TinyModel(torch::kFloat64);
  const std::vector<TokenId> context = RandomIds(20, 9), continuation = RandomIds(3, 10);
  const std::vector<TokenId> long_continuation = RandomIds(20, 11);
  const std::vector<ContinuationScore> scores =
      ScoreContinuations(Logits(*model),
                         std::vector<TokenizedRequest>{Request(context, continuation),
                                                       Request({7, 7}, long_continuation)},
                         Options(16, 256));
  // 23 tokens, T 16: the last 17 are kept (16 read, the last only predicted), so the context
  // loses its first 6 tokens.
  const ContinuationScore cut =
      ByHand(*model, std::vector<int64_t>(context.begin() + 6, context.end()), Ids(continuation));
  EXPECT_NEAR(scores[0].logprob, cut.logprob, 1e-10);
  // A continuation longer than T: its last 16 tokens are scored, each after the 16 before it.
  const ContinuationScore tail =
      ByHand(*model, {long_continuation[3]},
             std::vector<int64_t>(long_continuation.begin() + 4, long_continuation.end()));
  EXPECT_NEAR(scores[1].logprob, tail.logprob, 1e-10);
}

// -------------------------------------------------------------------------------------------------
// A random model on the shared benchmark files.

// What a model that knows nothing does: at initialisation every token's log-probability is about
// -log V, so a candidate's score is about -(tokens) log V / d, with d = 1 for acc and the choice's
// characters for acc_norm, plus noise. Without noise the model answers by this length prior
// (fewest tokens, or most characters per token); with much noise it guesses uniformly. Its expected
// accuracy therefore lies between the prior's accuracy on the file and chance 1/k: a length prior
// is no knowledge, but it is not chance either on files whose right answers are systematically
// longer or shorter (openbook_qa: the shortest choice is right for 14% of the first 300 items;
// boolq: " no" is always shorter than " yes" and right for 37%).
struct PriorRates {
  double acc = 0;       // the fewest-tokens prior, ties split evenly
  double acc_norm = 0;  // the fewest-tokens-per-character prior
  double chance = 0;    // mean of 1 / candidates
};

PriorRates LengthPrior(const Benchmark& benchmark, Tokenizer& tokenizer) {
  PriorRates rates;
  auto tied_share = [](const std::vector<double>& cost, int64_t gold) {
    const double best = *std::min_element(cost.begin(), cost.end());
    double tied = 0;
    for (const double c : cost) tied += c == best;
    return cost[static_cast<size_t>(gold)] == best ? 1.0 / tied : 0.0;
  };
  for (const BenchmarkItem& item : benchmark.items) {
    std::vector<double> tokens, per_char;
    for (const BenchmarkCandidate& c : item.candidates) {
      tokens.push_back(static_cast<double>(Tokenize(c, tokenizer).continuation.size()));
      per_char.push_back(tokens.back() / static_cast<double>(c.norm_chars));
    }
    rates.acc += tied_share(tokens, item.gold);
    rates.acc_norm += tied_share(per_char, item.gold);
    rates.chance += 1.0 / static_cast<double>(item.candidates.size());
  }
  const double n = static_cast<double>(benchmark.items.size());
  rates.acc /= n;
  rates.acc_norm /= n;
  rates.chance /= n;
  return rates;
}

TEST(RandomModel, ScoresAtChanceOrItsLengthPriorOnTheSharedFiles) {
  if (!fs::exists(SharedData() / "benchmarks/copa.jsonl")) GTEST_SKIP() << "no shared benchmarks";
  torch::NoGradGuard no_grad;
  // The bytes tokenizer keeps the model small (V 257) and fast on a CPU; T 64 truncates long
  // items from the left, which changes nothing for a model that knows nothing.
  ModelSpec spec = testing::TinySpec();
  spec.vocab_size = 257;
  spec.seq_len = 64;
  std::shared_ptr<LanguageModelImpl> model = testing::Build(spec, 11);
  model->eval();
  const ScorerOptions options = Options(spec.seq_len, 32 * spec.seq_len);
  const ContinuationScorer scorer = [&](std::span<const TokenizedRequest> requests) {
    return ScoreContinuations(Logits(*model), requests, options);
  };
  std::unique_ptr<Tokenizer> bytes = MakeByteTokenizer();

  constexpr int64_t kItems = 300;
  int64_t items = 0;
  const auto start = std::chrono::steady_clock::now();
  for (const char* name :
       {"arc_easy", "piqa", "openbook_qa", "copa", "boolq", "winogrande", "lambada_openai"}) {
    BenchmarkSpec bench;
    bench.name = name;
    bench.path = (SharedData() / "benchmarks" / (std::string(name) + ".jsonl")).string();
    bench.limit = kItems;
    Result<Benchmark> benchmark = ReadBenchmark(bench);
    ASSERT_TRUE(benchmark.ok()) << benchmark.status().ToString();
    Result<BenchmarkResult> result = EvaluateBenchmark(*benchmark, *bytes, scorer);
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    items += result->items;
    const double n = static_cast<double>(result->items);
    std::cout << name << ":";
    for (const auto& [metric, value] : result->metrics) std::cout << " " << metric << " " << value;
    std::cout << " (" << result->items << " items)\n";

    if (benchmark->format == BenchmarkFormat::kCloze) {
      // Greedy decoding must reproduce a whole word byte by byte: (1/257)^3 at the least.
      EXPECT_LE(result->metrics[0].second, 3.0 / n) << name;
      // Perplexity per item is exp(mean tokens * log V) for a uniform predictor; initialisation
      // is within a few percent of uniform.
      double tokens = 0;
      for (const BenchmarkItem& item : benchmark->items) {
        tokens += static_cast<double>(Tokenize(item.candidates[0], *bytes).continuation.size());
      }
      EXPECT_NEAR(std::log(result->metrics[1].second) / (tokens / n * std::log(257.0)), 1.0, 0.05)
          << name;
      continue;
    }
    // Four binomial standard deviations at the largest variance (p = 1/2): 2 / sqrt(n), 0.115
    // for 300 items. A scorer that leaked the answer, or that never chose it, falls outside.
    const double margin = 2.0 / std::sqrt(n);
    const PriorRates prior = LengthPrior(*benchmark, *bytes);
    for (const auto& [metric, value] : result->metrics) {
      const double prior_rate = metric == "acc" ? prior.acc : prior.acc_norm;
      EXPECT_GE(value, std::min(prior.chance, prior_rate) - margin) << name << "/" << metric;
      EXPECT_LE(value, std::max(prior.chance, prior_rate) + margin) << name << "/" << metric;
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << items << " items in " << seconds << " s: " << static_cast<double>(items) / seconds
            << " items/s (CPU, " << torch::get_num_threads() << " threads, d 32, 2 layers, T 64)\n";
}

// -------------------------------------------------------------------------------------------------
// isoflop-worker with eval.benchmarks.

// n tokens drawn uniformly from the first 64 ids.
void WriteRandomShard(const std::string& path, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % 64);
  WriteShard(path, tokens);
}

// Three steps of a tiny model whose vocabulary holds GPT-2's (50257, padded to 50304).
RunConfig TinyGpt2Run(const ScratchDir& dir) {
  RunConfig run;
  run.name = "dense/tiny/C1/s0";
  run.sweep = "eval-test";
  run.seed = 5;
  run.model.n_layer = 2;
  run.model.d_model = 32;
  run.model.n_head = 2;
  run.model.seq_len = 32;
  run.model.vocab_size = 50304;
  run.train.batch_tokens = 128;
  run.train.micro_batch = 4;
  run.eval.val_tokens = 128;
  run.data.train = dir / "train.bin";
  run.data.val = dir / "val.bin";
  run.data.tokenizer = "gpt2";
  run.data.fingerprint = "sha256:test";
  run.budget.steps = 3;
  WriteRandomShard(run.data.train, 4000, 1);
  WriteRandomShard(run.data.val, 1000, 2);
  return run;
}

struct WorkerResult {
  int exit_code = -1;
  std::string log;
};

WorkerResult RunWorker(const RunConfig& run, const ScratchDir& dir, const std::string& env,
                       const std::string& flags = "") {
  std::ofstream(dir / "run.json") << ToJson(run).dump(2);
  const std::string log = dir / "worker.log";
  const std::string command = "env -u ISOFLOP_GPT2_DIR " + env + " " + ISOFLOP_WORKER_BIN +
                              " --config " + (dir / "run.json") + " --run-dir " + (dir / "run") +
                              " " + flags + " > " + log + " 2>&1";
  WorkerResult result;
  const int status = std::system(command.c_str());
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::stringstream text;
  text << std::ifstream(log).rdbuf();
  result.log = text.str();
  return result;
}

std::vector<json> Records(const ScratchDir& dir) {
  std::vector<json> records;
  std::ifstream in(dir / "run/metrics.jsonl");
  for (std::string line; std::getline(in, line);) records.push_back(json::parse(line));
  return records;
}

BenchmarkSpec Bench(const std::string& name, const std::string& path, int64_t limit) {
  BenchmarkSpec spec;
  spec.name = name;
  spec.path = path;
  spec.limit = limit;
  return spec;
}

TEST(Worker, WritesBenchmarkRecordsAtTheEndOfTheRun) {
  const fs::path gpt2 = SharedData() / "tokenizer/gpt2";
  if (!fs::exists(gpt2 / "vocab.json") || !fs::exists(SharedData() / "benchmarks/copa.jsonl")) {
    GTEST_SKIP() << "no shared tokenizer or benchmarks";
  }
  ScratchDir dir;
  RunConfig run = TinyGpt2Run(dir);
  // Two HellaSwag items written by hand in its schema (the real file is not in the shared data).
  std::ofstream(dir / "hellaswag.jsonl")
      << R"({"activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.", "ctx_b": "he", "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.", "is holding a rubik's cube.", "starts pulling up roofing on a roof."], "label": 3})"
      << "\n"
      << R"({"activity_label": "Clean", "ctx_a": "[header] How to clean a sink [title] Rinse it.", "ctx_b": "then", "endings": ["scrub it.", "eat it.", "sing.", "fly away."], "label": "0"})"
      << "\n";
  const fs::path benchmarks = SharedData() / "benchmarks";
  run.eval.benchmarks = {Bench("copa", (benchmarks / "copa.jsonl").string(), 20),
                         Bench("winogrande", (benchmarks / "winogrande.jsonl").string(), 10),
                         Bench("lambada", (benchmarks / "lambada_openai.jsonl").string(), 10),
                         Bench("hellaswag", dir / "hellaswag.jsonl", 0)};
  // The GPT-2 files from the environment, as a coordinator's workers get them.
  const WorkerResult result = RunWorker(run, dir, "ISOFLOP_GPT2_DIR=" + gpt2.string());
  ASSERT_EQ(result.exit_code, 0) << result.log;
  EXPECT_NE(result.log.find("items/s"), std::string::npos) << result.log;

  const std::vector<json> records = Records(dir);
  ASSERT_FALSE(records.empty());
  EXPECT_EQ(records.back()["type"], "complete");
  std::map<std::string, json> evals;
  for (const json& r : records) {
    if (r["type"] == "eval") evals[r["name"].get<std::string>()] = r;
  }
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"copa/acc", 20},    {"copa/acc_norm", 20}, {"winogrande/acc", 10},   {"lambada/acc", 10},
      {"lambada/ppl", 10}, {"hellaswag/acc", 2},  {"hellaswag/acc_norm", 2}};
  for (const auto& [name, count] : expected) {
    ASSERT_TRUE(evals.count(name)) << name << "\n" << result.log;
    const json& r = evals[name];
    EXPECT_EQ(r["count"], count) << name;
    EXPECT_EQ(r["step"], 3) << name;
    EXPECT_EQ(r["tokens"], 3 * 128) << name;
    EXPECT_TRUE(r.contains("flops")) << name;
    const double value = r["value"].get<double>();
    if (name.ends_with("/ppl")) {
      EXPECT_GT(value, 1.0) << name;
    } else {
      EXPECT_GE(value, 0.0) << name;
      EXPECT_LE(value, 1.0) << name;
    }
  }
  EXPECT_EQ(evals.size(), expected.size() + 2);  // and val_loss, val_ppl
}

TEST(Worker, RefusesUnusableBenchmarksBeforeTraining) {
  ScratchDir dir;
  RunConfig run = TinyGpt2Run(dir);
  std::ofstream(dir / "bad.jsonl") << R"({"query": "q", "choices": ["a", "b"], "gold": 0})"
                                   << "\n"
                                   << R"({"query": "q", "choices": ["a", "b"], "gold": 5})"
                                   << "\n";
  run.eval.benchmarks = {Bench("bad", dir / "bad.jsonl", 0)};

  // GPT-2 data, and nowhere to find GPT-2's files.
  WorkerResult result = RunWorker(run, dir, "");
  EXPECT_EQ(result.exit_code, 1) << result.log;
  EXPECT_NE(result.log.find("--gpt2-dir DIR or set ISOFLOP_GPT2_DIR"), std::string::npos)
      << result.log;
  EXPECT_FALSE(fs::exists(dir / "run/metrics.jsonl"));

  // A malformed line, named by file and line, before any step is trained.
  run.data.tokenizer = "bytes";
  result = RunWorker(run, dir, "");
  EXPECT_EQ(result.exit_code, 1) << result.log;
  EXPECT_NE(result.log.find("bad.jsonl:2: \"gold\" is 5, outside the 2 candidates"),
            std::string::npos)
      << result.log;
  EXPECT_FALSE(fs::exists(dir / "run/metrics.jsonl"));
}

}  // namespace
}  // namespace isoflop
