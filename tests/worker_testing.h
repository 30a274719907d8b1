// Fixtures shared by the worker's tests (runtime, evaluation, benchmarks, data parallelism): a
// scratch directory and synthetic token shards. Torch-free, so the benchmark parser's tests use it
// too.
#pragma once

#include <ftw.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include "common/data/token_shard.h"

namespace isoflop {

// A fresh directory under the system's temp directory, removed with everything in it at the end.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "isoflop_test_XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  // POSIX nftw rather than std::filesystem::remove_all: LibTorch's wheels export a copy of
  // libstdc++'s std::filesystem whose remove_all jumps to address 0 when called from outside (the
  // worker's CMakeLists says more); test binaries that load LibTorch can bind to it.
  ~ScratchDir() {
    ::nftw(
        path_.c_str(),
        [](const char* file, const struct stat*, int, struct FTW*) { return ::remove(file); }, 16,
        FTW_DEPTH | FTW_PHYS);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // The path of `name` inside this directory.
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  // Writes `text` to the file `name` in this directory and returns its path.
  std::string Write(const std::string& name, const std::string& text) const {
    const std::string file = *this / name;
    std::ofstream(file, std::ios::binary) << text;
    return file;
  }

 private:
  std::filesystem::path path_;
};

// Writes `tokens` as one llm.c .bin shard (fails the calling test on error).
inline void WriteShard(const std::string& path, const std::vector<int32_t>& tokens) {
  Result<TokenShardWriter> writer = TokenShardWriter::Create(path);
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  ASSERT_TRUE(writer->Append(tokens).ok());
  ASSERT_TRUE(writer->Finish().ok());
}

// A learnable stream: mostly next = (7 prev + 3) mod vocab, one token in ten random.
inline std::vector<int32_t> MarkovTokens(int64_t n, int32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  int32_t prev = 0;
  for (auto& t : tokens) {
    t = rng() % 10 == 0 ? static_cast<int32_t>(rng() % vocab) : (7 * prev + 3) % vocab;
    prev = t;
  }
  return tokens;
}

}  // namespace isoflop
