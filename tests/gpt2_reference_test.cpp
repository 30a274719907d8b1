// The GPT-2 tokenizer must give exactly the reference ids: Hugging Face `tokenizers` on the same
// vocab.json/merges.txt, written by tests/tools/gpt2_reference_ids.py into GPT2_REFERENCE_DIR
// (ctest runs it first as the fixture gpt2_reference). Every shared corpus file is encoded whole,
// as one text, on both sides. Exits 77, ctest's "skipped", when the reference or the tokenizer
// files are absent.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/text/gpt2_tokenizer.h"

namespace isoflop {
namespace {

namespace fs = std::filesystem;

const fs::path kReferenceDir = GPT2_REFERENCE_DIR;
const fs::path kTokenizerDir = fs::path(ISOFLOP_SHARED_DIR) / "data/tokenizer/gpt2";

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return std::move(text).str();
}

std::vector<TokenId> ReadIds(const fs::path& path) {
  std::string bytes = ReadFile(path);
  std::vector<TokenId> ids(bytes.size() / sizeof(std::uint32_t));
  for (std::size_t i = 0; i < ids.size(); ++i) {
    std::uint32_t id;
    std::memcpy(&id, bytes.data() + i * sizeof(id), sizeof(id));
    ids[i] = static_cast<TokenId>(id);
  }
  return ids;
}

// Where two id sequences first differ, with the ids and the text around it, so that a failure says
// which piece of text the tokenizers disagree on.
std::string DescribeFirstMismatch(Tokenizer& tokenizer, const std::vector<TokenId>& expected,
                                  const std::vector<TokenId>& actual) {
  std::size_t i = 0;
  while (i < expected.size() && i < actual.size() && expected[i] == actual[i]) ++i;
  if (i == expected.size() && i == actual.size()) return "";
  auto window = [&](const std::vector<TokenId>& ids) {
    std::size_t from = i >= 8 ? i - 8 : 0, to = std::min(ids.size(), i + 8);
    std::vector<TokenId> part(ids.begin() + from, ids.begin() + to);
    std::ostringstream out;
    for (std::size_t k = from; k < to; ++k)
      out << (k == i ? " [" : " ") << ids[k] << (k == i ? "]" : "");
    Result<std::string> text = tokenizer.Decode(part);
    out << "   text: " << nlohmann::json(text.ok() ? *text : text.status().message()).dump();
    return out.str();
  };
  std::ostringstream message;
  message << "first mismatch at token " << i << " (reference " << expected.size()
          << " tokens, ours " << actual.size() << ")\n  reference:" << window(expected)
          << "\n  ours:     " << window(actual);
  return message.str();
}

class Gpt2ReferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kTokenizerDir / "vocab.json")) {
      GTEST_SKIP() << "no GPT-2 tokenizer files at " << kTokenizerDir;
    }
    if (!fs::exists(kReferenceDir / "reference.json")) {
      GTEST_SKIP() << "no reference ids in " << kReferenceDir
                   << " (run through ctest, which runs tests/tools/gpt2_reference_ids.py first)";
    }
    Result<std::unique_ptr<Tokenizer>> loaded = LoadGpt2Tokenizer(kTokenizerDir);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    tokenizer_ = std::move(loaded).value();
    reference_ = nlohmann::json::parse(ReadFile(kReferenceDir / "reference.json"));
  }

  std::unique_ptr<Tokenizer> tokenizer_;
  nlohmann::json reference_;
};

TEST_F(Gpt2ReferenceTest, EveryCorpusFileEncodesToTheReferenceIds) {
  ASSERT_FALSE(reference_["files"].empty());
  std::int64_t tokens = 0;
  std::chrono::duration<double> encoding_time{0};
  for (const auto& file : reference_["files"]) {
    std::string source = file["source"];
    std::string text = ReadFile(source);
    std::vector<TokenId> expected = ReadIds(kReferenceDir / file["ids"].get<std::string>());
    ASSERT_EQ(expected.size(), file["tokens"].get<std::size_t>()) << source;

    auto start = std::chrono::steady_clock::now();
    std::vector<TokenId> actual = tokenizer_->Encode(text);
    encoding_time += std::chrono::steady_clock::now() - start;
    tokens += static_cast<std::int64_t>(actual.size());

    EXPECT_TRUE(actual == expected)
        << source << ": " << DescribeFirstMismatch(*tokenizer_, expected, actual);
    Result<std::string> decoded = tokenizer_->Decode(actual);
    ASSERT_TRUE(decoded.ok());
    EXPECT_TRUE(*decoded == text) << source << ": Decode(Encode(text)) differs from the text";
  }
  // Information, not a pass mark: speed belongs to benchmarks (system.md section 10).
  std::cout << "encoded " << tokens << " tokens in " << encoding_time.count()
            << " s: " << static_cast<double>(tokens) / encoding_time.count() / 1e6
            << "M tokens/s (one thread)\n";
}

TEST_F(Gpt2ReferenceTest, HardStringsEncodeToTheReferenceIds) {
  nlohmann::json strings =
      nlohmann::json::parse(ReadFile(kReferenceDir / reference_["strings"].get<std::string>()));
  ASSERT_GT(strings.size(), 30u);
  for (const auto& entry : strings) {
    std::string text = entry["text"];
    std::vector<TokenId> expected = entry["ids"].get<std::vector<TokenId>>();
    std::vector<TokenId> actual = tokenizer_->Encode(text);
    EXPECT_TRUE(actual == expected) << nlohmann::json(text).dump() << ": "
                                    << DescribeFirstMismatch(*tokenizer_, expected, actual);
  }
}

}  // namespace
}  // namespace isoflop

// ctest reports a test binary that exits 77 as skipped (SKIP_RETURN_CODE), rather than as a pass
// that checked nothing.
int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  int failed = RUN_ALL_TESTS();
  const ::testing::UnitTest& run = *::testing::UnitTest::GetInstance();
  if (failed == 0 && run.skipped_test_count() > 0 && run.successful_test_count() == 0) return 77;
  return failed;
}
