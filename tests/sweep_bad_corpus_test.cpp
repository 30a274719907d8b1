// The bad-input corpus (tests/sweeps/bad/NNN_name.yaml): each file's first line states the exact,
// complete first error it must produce,
//   # expect: {file}:L:C: path: message
// where {file} is the path the test loads it by and {dir} that path's directory. A message that
// changes wording breaks a test on purpose: these messages are the user interface.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/sweep/sweep_loader.h"

namespace isoflop {
namespace {

namespace fs = std::filesystem;

const fs::path kBadDir = fs::path(ISOFLOP_SOURCE_DIR) / "tests" / "sweeps" / "bad";

std::vector<std::string> BadFiles() {
  std::vector<std::string> names;
  for (const fs::directory_entry& entry : fs::directory_iterator(kBadDir)) {
    if (entry.is_regular_file() && entry.path().extension() == ".yaml") {
      names.push_back(entry.path().stem().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

class BadSweep : public ::testing::TestWithParam<std::string> {};

TEST_P(BadSweep, FailsWithTheStatedFirstError) {
  const fs::path path = kBadDir / (GetParam() + ".yaml");
  std::ifstream in(path);
  std::string first_line;
  std::getline(in, first_line);
  constexpr std::string_view kPrefix = "# expect: ";
  ASSERT_EQ(first_line.rfind(kPrefix, 0), 0u) << path << " must start with \"" << kPrefix << "\"";
  const std::string expected =
      Replace(Replace(first_line.substr(kPrefix.size()), "{file}", path.string()), "{dir}",
              path.parent_path().string());

  Result<ExpandedSweep> sweep = LoadSweep(path.string());
  ASSERT_FALSE(sweep.ok()) << path << " loaded without an error";
  EXPECT_EQ(sweep.status().code(), Status::Code::kInvalidArgument);
  const std::string& message = sweep.status().message();
  EXPECT_EQ(message.substr(0, message.find('\n')), expected);
}

INSTANTIATE_TEST_SUITE_P(Corpus, BadSweep, ::testing::ValuesIn(BadFiles()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return "f" + info.param.substr(0, info.param.find('_'));
                         });

TEST(BadSweepCorpus, IsLargeEnoughToCoverTheFormat) {
  EXPECT_GE(BadFiles().size(), 40u);
}

// Loading never writes: a failing load (or a good one) leaves the sweep's directory as it was.
TEST(BadSweepCorpus, LoadingWritesNothing) {
  const fs::path dir = fs::path(::testing::TempDir()) /
                       ("sweep_writes_nothing_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* name : {"019_all_runs_dropped.yaml", "030_non_integer_result.yaml"}) {
    fs::copy_file(kBadDir / name, dir / name);
  }
  std::ofstream(dir / "good.yaml")
      << "name: g\ndata: {train: d/t.bin, val: d/v.bin}\n"
         "sizes: {s: {n_layer: 2, d_model: 64, n_head: 2, seq_len: 64}}\n"
         "variants: {dense: {}}\nbudgets: {flops: [1e12]}\n"
         "train: {batch_tokens: 4096}\n";
  auto listing = [&] {
    std::vector<std::string> entries;
    for (const fs::directory_entry& e : fs::recursive_directory_iterator(dir)) {
      entries.push_back(e.path().string() + ":" +
                        std::to_string(e.is_regular_file() ? e.file_size() : 0));
    }
    std::sort(entries.begin(), entries.end());
    return entries;
  };
  const std::vector<std::string> before = listing();
  EXPECT_FALSE(LoadSweep((dir / "019_all_runs_dropped.yaml").string()).ok());
  EXPECT_FALSE(LoadSweep((dir / "030_non_integer_result.yaml").string()).ok());
  EXPECT_TRUE(LoadSweep((dir / "good.yaml").string()).ok());
  EXPECT_EQ(listing(), before);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace isoflop
