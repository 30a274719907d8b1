// BenchmarkSuite: a run's eval.benchmarks, read and checked before training starts (a typo in a
// path must not surface after hours of training) and scored after it ends.
//
// The text is tokenized as the run's training data was: data.tokenizer names the tokenizer,
// "bytes" or "gpt2". GPT-2's vocab.json and merges.txt are not part of run.json (they are the same
// files for every run, and their location is the machine's business), so the worker is told where
// they are: isoflop-worker --gpt2-dir, or $ISOFLOP_GPT2_DIR (worker/main.cpp), the directory that
// `isoflop data prepare --gpt2-dir` read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/run_config.h"
#include "common/status.h"
#include "common/text/tokenizer.h"
#include "worker/eval/benchmark.h"

namespace isoflop {

class BenchmarkSuite {
 public:
  // Reads every benchmark (ReadBenchmark: its `limit` items) and opens the tokenizer. Errors name
  // the field and the file or line: IOError when a file cannot be read; InvalidArgument for
  // everything a user must fix: a missing or malformed file, a name given twice (their records
  // would collide), "gpt2" without gpt2_dir or with unreadable files there, another tokenizer
  // name, or a tokenizer whose ids do not fit model_vocab_size.
  static Result<BenchmarkSuite> Load(std::span<const BenchmarkSpec> specs,
                                     const std::string& tokenizer, const std::string& gpt2_dir,
                                     int64_t model_vocab_size);

  const std::vector<Benchmark>& benchmarks() const { return benchmarks_; }

  // Scores benchmarks()[index] (EvaluateBenchmark). Not thread-safe: the tokenizer has a cache.
  Result<BenchmarkResult> Evaluate(size_t index, const ContinuationScorer& scorer);

 private:
  BenchmarkSuite(std::unique_ptr<Tokenizer> tokenizer, std::vector<Benchmark> benchmarks)
      : tokenizer_(std::move(tokenizer)), benchmarks_(std::move(benchmarks)) {}

  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<Benchmark> benchmarks_;
};

}  // namespace isoflop
