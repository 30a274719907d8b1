#include "coordinator/cli/data_command.h"

#include <cstdio>

#include <fmt/format.h>

#include "common/data/data_prepare.h"
#include "common/text/tokenizer.h"

namespace isoflop {

void AddDataPrepareCommand(CLI::App* data, DataPrepareFlags* f) {
  CLI::App* prepare = data->add_subcommand(
      "prepare", "tokenize text files into train/validation shards (llm.c .bin format)");
  prepare->add_option("inputs", f->inputs, "text files, or directories searched for *.txt")
      ->required();
  prepare->add_option("--out", f->out_dir, "output directory (must not hold shards yet)")->required();
  prepare->add_option("--tokenizer", f->tokenizer, "gpt2 or bytes")->capture_default_str();
  prepare->add_option("--gpt2-dir", f->gpt2_dir, "directory with vocab.json and merges.txt");
  prepare->add_option("--val-fraction", f->val_fraction, "share of each file held out")
      ->capture_default_str();
  prepare->add_option("--shard-tokens", f->shard_tokens, "tokens per shard")->capture_default_str();
}

int RunDataPrepare(const DataPrepareFlags& f) {
  if (f.tokenizer == "gpt2" && f.gpt2_dir.empty()) {
    std::fprintf(stderr, "isoflop: --gpt2-dir is required with --tokenizer gpt2 (vocab.json, merges.txt)\n");
    return 1;
  }
  auto tokenizer = OpenTokenizer(f.tokenizer, f.gpt2_dir);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "isoflop: %s\n", tokenizer.status().message().c_str());
    return 1;
  }
  PrepareOptions options;
  options.val_fraction = f.val_fraction;
  options.shard_tokens = f.shard_tokens;
  options.progress = [](const PrepareProgress& p) {
    std::fprintf(stderr, "\r%5.1f%%  %lld tokens  %.*s\033[K",
                 p.bytes_total ? 100.0 * p.bytes_done / p.bytes_total : 100.0,
                 static_cast<long long>(p.tokens_written), static_cast<int>(p.file.size()),
                 p.file.data());
  };
  auto prepared = PrepareData(f.inputs, f.out_dir, **tokenizer, options);
  std::fprintf(stderr, "\n");
  if (!prepared.ok()) {
    std::fprintf(stderr, "isoflop: %s\n", prepared.status().message().c_str());
    return 1;
  }
  std::printf("%s: %lld train tokens in %zu shards, %lld validation tokens, %s\n", f.out_dir.c_str(),
              static_cast<long long>(prepared->train_tokens), prepared->train_shards.size(),
              static_cast<long long>(prepared->val_tokens), prepared->fingerprint.c_str());
  return 0;
}

}  // namespace isoflop
