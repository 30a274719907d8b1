// `isoflop data prepare`: text files -> token shards (common/data/data_prepare.h), with progress.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace isoflop {

struct DataPrepareFlags {
  std::vector<std::string> inputs;
  std::string out_dir;
  std::string tokenizer = "gpt2";
  std::string gpt2_dir;
  double val_fraction = 0.05;
  long long shard_tokens = 100'000'000;
};

// Registers `prepare` under the `data` subcommand.
void AddDataPrepareCommand(CLI::App* data, DataPrepareFlags* flags);
int RunDataPrepare(const DataPrepareFlags& flags);

}  // namespace isoflop
