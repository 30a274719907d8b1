#include "worker/eval/benchmark_suite.h"

#include <fmt/format.h>

#include <set>

#include "common/text/gpt2_tokenizer.h"

namespace isoflop {

Result<BenchmarkSuite> BenchmarkSuite::Load(std::span<const BenchmarkSpec> specs,
                                            const std::string& tokenizer_name,
                                            const std::string& gpt2_dir, int64_t model_vocab_size) {
  std::set<std::string> names;
  for (size_t i = 0; i < specs.size(); ++i) {
    if (!names.insert(specs[i].name).second) {
      return Status::InvalidArgument(
          fmt::format("eval.benchmarks[{}]: the name \"{}\" is given twice", i, specs[i].name));
    }
  }

  std::unique_ptr<Tokenizer> tokenizer;
  if (tokenizer_name == "bytes") {
    tokenizer = MakeByteTokenizer();
  } else if (tokenizer_name == "gpt2") {
    if (gpt2_dir.empty()) {
      return Status::InvalidArgument(
          "eval.benchmarks: data.tokenizer is gpt2, so scoring needs GPT-2's vocab.json and "
          "merges.txt: pass isoflop-worker --gpt2-dir DIR or set ISOFLOP_GPT2_DIR");
    }
    Result<std::unique_ptr<Tokenizer>> gpt2 = LoadGpt2Tokenizer(gpt2_dir);
    if (!gpt2.ok()) {
      return Status::InvalidArgument(fmt::format("--gpt2-dir: {}", gpt2.status().message()));
    }
    tokenizer = std::move(gpt2).value();
  } else {
    return Status::InvalidArgument(fmt::format(
        "eval.benchmarks: data.tokenizer \"{}\" is not one the worker can tokenize benchmark "
        "text with (gpt2, bytes)",
        tokenizer_name));
  }
  if (tokenizer->vocab_size() > model_vocab_size) {
    return Status::InvalidArgument(
        fmt::format("eval.benchmarks: the {} tokenizer's {} ids do not fit model.vocab_size {}",
                    tokenizer_name, tokenizer->vocab_size(), model_vocab_size));
  }

  std::vector<Benchmark> benchmarks;
  for (size_t i = 0; i < specs.size(); ++i) {
    Result<Benchmark> benchmark = ReadBenchmark(specs[i]);
    if (!benchmark.ok()) {
      // A missing or malformed file is the configuration's fault (the worker exits 1); a read
      // error stays an I/O error (exit 74: the machine's fault).
      std::string message = fmt::format("eval.benchmarks[{}] ({}): {}", i, specs[i].name,
                                        benchmark.status().message());
      return benchmark.status().code() == Status::Code::kIOError
                 ? Status::IOError(std::move(message))
                 : Status::InvalidArgument(std::move(message));
    }
    benchmarks.push_back(std::move(benchmark).value());
  }
  return BenchmarkSuite(std::move(tokenizer), std::move(benchmarks));
}

Result<BenchmarkResult> BenchmarkSuite::Evaluate(size_t index, const ContinuationScorer& scorer) {
  return EvaluateBenchmark(benchmarks_.at(index), *tokenizer_, scorer);
}

}  // namespace isoflop
