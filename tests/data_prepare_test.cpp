// PrepareData (common/data/data_prepare.h): text files -> train/val shards + manifest. The bytes
// tokenizer makes every count checkable by hand; GPT-2 (when ../shared/data is there) checks that
// reading in pieces gives the ids of the whole file.
#include "common/data/data_prepare.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/data/token_shard.h"
#include "common/text/gpt2_tokenizer.h"

namespace isoflop {
namespace {

namespace fs = std::filesystem;
using Ids = std::vector<TokenId>;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return std::move(text).str();
}

// All tokens of a list of shards, in order.
Ids ReadShards(const std::vector<std::string>& paths) {
  Ids ids;
  for (const std::string& path : paths) {
    Result<TokenShard> shard = TokenShard::Open(path);
    EXPECT_TRUE(shard.ok()) << shard.status().ToString();
    if (shard.ok()) ids.insert(ids.end(), shard->tokens().begin(), shard->tokens().end());
  }
  return ids;
}

Ids Concat(std::initializer_list<Ids> parts) {
  Ids all;
  for (const Ids& part : parts) all.insert(all.end(), part.begin(), part.end());
  return all;
}

class DataPrepareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("isoflop_data_prepare_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "corpus/sub");
    // Three documents found in a directory (sorted by path), and a file that is not .txt.
    Write("corpus/b.txt",
          "First line of b.\nSecond line of b.\nThird line of b.\nLast line of b.\n");
    Write("corpus/a.txt", "Alpha one.\nAlpha two.\nAlpha three.\nAlpha four, the end");
    Write("corpus/sub/c.txt", "one long line without a newline, so the split falls inside it");
    Write("corpus/notes.md", "not a text input");
  }
  void TearDown() override { fs::remove_all(root_); }

  void Write(const std::string& name, const std::string& text) {
    std::ofstream(root_ / name, std::ios::binary) << text;
  }
  std::string In(const std::string& name) const { return (root_ / name).string(); }

  Result<PreparedData> Prepare(Tokenizer& tokenizer, const std::string& out,
                               PrepareOptions options = {}) {
    std::vector<std::string> inputs = {In("corpus")};
    return PrepareData(inputs, In(out), tokenizer, options);
  }

  fs::path root_;
  std::unique_ptr<Tokenizer> bytes_ = MakeByteTokenizer();
};

TEST_F(DataPrepareTest, EachFileIsADocumentSplitAtALineStart) {
  PrepareOptions options;
  options.val_fraction = 0.3;
  Result<PreparedData> data = Prepare(*bytes_, "out", options);
  ASSERT_TRUE(data.ok()) << data.status().ToString();

  ASSERT_EQ(data->documents.size(), 3u);
  EXPECT_EQ(data->documents[0].path, In("corpus/a.txt"));
  EXPECT_EQ(data->documents[1].path, In("corpus/b.txt"));
  EXPECT_EQ(data->documents[2].path, In("corpus/sub/c.txt"));

  // b.txt: its last 30% (21 of 68 bytes) starts inside the third line, so validation is the fourth.
  // a.txt: its last 30% lies inside its last line, which has no line after it: the last line is
  // held out whole. c.txt has no line break: the split falls at the byte where its last 30% begins.
  const std::string a = ReadFile(In("corpus/a.txt"));
  const std::string b = ReadFile(In("corpus/b.txt"));
  const std::string c = ReadFile(In("corpus/sub/c.txt"));
  const std::size_t a_split = a.find("Alpha four");
  const std::size_t b_split = b.find("Last line");
  const std::size_t c_split = c.size() - static_cast<std::size_t>(std::ceil(c.size() * 0.3));
  auto bytes = [&](const std::string& s, std::size_t from, std::size_t to) {
    return bytes_->Encode(std::string_view(s).substr(from, to - from));
  };
  const Ids eot = {256};
  EXPECT_EQ(
      ReadShards(data->train_shards),
      Concat({eot, bytes(a, 0, a_split), eot, bytes(b, 0, b_split), eot, bytes(c, 0, c_split)}));
  EXPECT_EQ(ReadShards(data->val_shards),
            Concat({eot, bytes(a, a_split, a.size()), eot, bytes(b, b_split, b.size()), eot,
                    bytes(c, c_split, c.size())}));

  // Every document is in both sets; counts add up, EOTs included.
  for (const PreparedDocument& doc : data->documents) {
    EXPECT_GT(doc.val_tokens, 1) << doc.path;
    EXPECT_EQ(doc.train_tokens + doc.val_tokens, doc.bytes + 2) << doc.path;
  }
  EXPECT_EQ(data->train_tokens + data->val_tokens,
            static_cast<std::int64_t>(a.size() + b.size() + c.size() + 6));
  EXPECT_EQ(data->train_shards, std::vector<std::string>{In("out/train_000000.bin")});
  EXPECT_EQ(data->val_shards, std::vector<std::string>{In("out/val_000000.bin")});
  EXPECT_EQ(data->tokenizer, "bytes");
  EXPECT_EQ(data->vocab_size, 257);
  EXPECT_EQ(data->eot_token, 256);
}

TEST_F(DataPrepareTest, ManifestRecordsWhatWasWritten) {
  Result<PreparedData> data = Prepare(*bytes_, "out");
  ASSERT_TRUE(data.ok()) << data.status().ToString();
  Result<PreparedData> manifest = ReadDataManifest(In("out"));
  ASSERT_TRUE(manifest.ok()) << manifest.status().ToString();
  EXPECT_EQ(manifest->tokenizer, data->tokenizer);
  EXPECT_EQ(manifest->vocab_size, data->vocab_size);
  EXPECT_EQ(manifest->eot_token, data->eot_token);
  EXPECT_EQ(manifest->val_fraction, 0.05);
  EXPECT_EQ(manifest->train_shards, data->train_shards);
  EXPECT_EQ(manifest->val_shards, data->val_shards);
  EXPECT_EQ(manifest->train_tokens, data->train_tokens);
  EXPECT_EQ(manifest->val_tokens, data->val_tokens);
  EXPECT_EQ(manifest->fingerprint, data->fingerprint);
  ASSERT_EQ(manifest->documents.size(), 3u);
  EXPECT_EQ(manifest->documents[2].val_tokens, data->documents[2].val_tokens);

  // The fingerprint is SHA-256 of the shard files, train then val: recomputable from the shards.
  EXPECT_EQ(data->fingerprint.size(), 7u + 64u);
  EXPECT_EQ(data->fingerprint.rfind("sha256:", 0), 0u);
  std::vector<std::string> shards = data->train_shards;
  shards.insert(shards.end(), data->val_shards.begin(), data->val_shards.end());
  EXPECT_EQ(*FingerprintShards(shards), data->fingerprint);
}

TEST_F(DataPrepareTest, SameInputsGiveIdenticalShardsAndChangedInputsAnotherFingerprint) {
  Result<PreparedData> first = Prepare(*bytes_, "one");
  Result<PreparedData> second = Prepare(*bytes_, "two");
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->fingerprint, second->fingerprint);
  EXPECT_EQ(ReadFile(first->train_shards[0]), ReadFile(second->train_shards[0]));
  EXPECT_EQ(ReadFile(first->val_shards[0]), ReadFile(second->val_shards[0]));

  Write("corpus/a.txt", "Alpha one.\nAlpha two.\nAlpha three.\nAlpha four, the End");
  Result<PreparedData> changed = Prepare(*bytes_, "three");
  ASSERT_TRUE(changed.ok());
  EXPECT_NE(changed->fingerprint, first->fingerprint);
  // The same tokens split differently between train and val are different data too.
  PrepareOptions more_val;
  more_val.val_fraction = 0.5;
  Result<PreparedData> resplit = Prepare(*bytes_, "four", more_val);
  ASSERT_TRUE(resplit.ok());
  EXPECT_NE(resplit->fingerprint, changed->fingerprint);
}

TEST_F(DataPrepareTest, StartsANewShardEveryShardTokens) {
  Result<PreparedData> whole = Prepare(*bytes_, "whole");
  PrepareOptions small;
  small.shard_tokens = 50;
  Result<PreparedData> sharded = Prepare(*bytes_, "sharded", small);
  ASSERT_TRUE(whole.ok() && sharded.ok());

  // Documents run on across shard boundaries; every shard but the last is full.
  ASSERT_GE(sharded->train_shards.size(), 3u);
  for (std::size_t i = 0; i < sharded->train_shards.size(); ++i) {
    EXPECT_EQ(sharded->train_shards[i], In(fmt::format("sharded/train_{:06d}.bin", i)));
    Result<TokenShard> shard = TokenShard::Open(sharded->train_shards[i]);
    ASSERT_TRUE(shard.ok());
    if (i + 1 < sharded->train_shards.size()) {
      EXPECT_EQ(shard->size(), 50);
    }
  }
  EXPECT_EQ(ReadShards(sharded->train_shards), ReadShards(whole->train_shards));
  EXPECT_EQ(ReadShards(sharded->val_shards), ReadShards(whole->val_shards));
}

TEST_F(DataPrepareTest, ReportsProgressUpToTheTotal) {
  std::vector<PrepareProgress> reports;
  PrepareOptions options;
  options.read_bytes = 16;
  options.progress = [&](const PrepareProgress& p) { reports.push_back(p); };
  Result<PreparedData> data = Prepare(*bytes_, "out", options);
  ASSERT_TRUE(data.ok());
  ASSERT_GT(reports.size(), 10u);
  for (std::size_t i = 1; i < reports.size(); ++i) {
    EXPECT_GE(reports[i].bytes_done, reports[i - 1].bytes_done);
    EXPECT_GE(reports[i].tokens_written, reports[i - 1].tokens_written);
  }
  std::int64_t total_bytes = 0;
  for (const PreparedDocument& doc : data->documents) total_bytes += doc.bytes;
  EXPECT_EQ(reports.back().bytes_total, total_bytes);
  EXPECT_EQ(reports.back().bytes_done, total_bytes);
  EXPECT_EQ(reports.back().tokens_written, data->train_tokens + data->val_tokens);
  EXPECT_EQ(reports.back().file, In("corpus/sub/c.txt"));
}

TEST_F(DataPrepareTest, NoValidationSetWhenFractionIsZero) {
  PrepareOptions options;
  options.val_fraction = 0;
  Result<PreparedData> data = Prepare(*bytes_, "out", options);
  ASSERT_TRUE(data.ok());
  EXPECT_TRUE(data->val_shards.empty());
  EXPECT_EQ(data->val_tokens, 0);
  EXPECT_FALSE(fs::exists(In("out/val_000000.bin")));
}

TEST_F(DataPrepareTest, RefusesBadRequests) {
  ASSERT_TRUE(Prepare(*bytes_, "out").ok());
  Result<PreparedData> again = Prepare(*bytes_, "out");
  EXPECT_EQ(again.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(again.status().message().find("already holds prepared data"), std::string::npos);

  PrepareOptions all_val;
  all_val.val_fraction = 1;
  EXPECT_EQ(Prepare(*bytes_, "x", all_val).status().code(), Status::Code::kInvalidArgument);
  PrepareOptions no_shards;
  no_shards.shard_tokens = 0;
  EXPECT_EQ(Prepare(*bytes_, "x", no_shards).status().code(), Status::Code::kInvalidArgument);

  std::vector<std::string> missing = {In("corpus/absent.txt")};
  EXPECT_EQ(PrepareData(missing, In("x"), *bytes_).status().code(), Status::Code::kNotFound);
  fs::create_directories(root_ / "empty");
  std::vector<std::string> empty = {In("empty")};
  EXPECT_EQ(PrepareData(empty, In("x"), *bytes_).status().message(),
            In("empty") + ": no .txt files in this directory");
}

// A tokenizer that claims a small vocabulary but emits an id no shard can hold, once enough text
// has gone by that shards were already written: the run must fail and leave nothing behind.
class BrokenTokenizer final : public Tokenizer {
 public:
  std::string_view name() const override { return "broken"; }
  int vocab_size() const override { return 257; }
  TokenId eot_token() const override { return 256; }

 protected:
  void EncodeOrdinary(std::string_view text, std::vector<TokenId>* out) override {
    for (char c : text) out->push_back(c == '!' ? 70000 : static_cast<unsigned char>(c));
  }
  std::string_view TokenBytes(TokenId) const override { return ""; }
};

TEST_F(DataPrepareTest, AFailedRunLeavesNoShardsAndNoManifest) {
  Write("corpus/sub/c.txt", "this document breaks the tokenizer!");
  BrokenTokenizer broken;
  PrepareOptions options;
  options.shard_tokens = 20;  // so that complete shards exist before the failure
  Result<PreparedData> data = Prepare(broken, "out", options);
  ASSERT_FALSE(data.ok());
  EXPECT_EQ(data.status().code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(fs::is_empty(In("out"))) << "shards or temporary files were left in out/";
  // Nothing stands in the way of a second attempt.
  Write("corpus/sub/c.txt", "fixed.");
  EXPECT_TRUE(Prepare(broken, "out", options).ok());
}

TEST_F(DataPrepareTest, ReadingInPiecesGivesTheIdsOfTheWholeFile) {
  const fs::path gpt2_dir = fs::path(ISOFLOP_SHARED_DIR) / "data/tokenizer/gpt2";
  const fs::path text = fs::path(ISOFLOP_SHARED_DIR) / "data/corpus/austen/persuasion.txt";
  if (!fs::exists(gpt2_dir / "vocab.json") || !fs::exists(text)) {
    GTEST_SKIP() << "no GPT-2 tokenizer files or corpus under " << ISOFLOP_SHARED_DIR;
  }
  Result<std::unique_ptr<Tokenizer>> gpt2 = LoadGpt2Tokenizer(gpt2_dir);
  ASSERT_TRUE(gpt2.ok()) << gpt2.status().ToString();
  std::string persuasion = ReadFile(text).substr(0, 200'000);
  Write("novel.txt", persuasion);

  PrepareOptions options;
  options.val_fraction = 0.1;
  options.read_bytes = 4096;  // about 50 pieces, each cut at a split point
  std::vector<std::string> inputs = {In("novel.txt")};
  Result<PreparedData> data = PrepareData(inputs, In("out"), **gpt2, options);
  ASSERT_TRUE(data.ok()) << data.status().ToString();

  // The validation part starts at a line start; each part is the whole-text encoding of its bytes.
  const auto held_out = static_cast<std::size_t>(std::ceil(persuasion.size() * 0.1));
  const std::size_t split = persuasion.find('\n', persuasion.size() - held_out - 1) + 1;
  const Ids eot = {50256};
  EXPECT_EQ(ReadShards(data->train_shards),
            Concat({eot, (*gpt2)->Encode(std::string_view(persuasion).substr(0, split))}));
  EXPECT_EQ(ReadShards(data->val_shards),
            Concat({eot, (*gpt2)->Encode(std::string_view(persuasion).substr(split))}));
  EXPECT_EQ(data->tokenizer, "gpt2");
  EXPECT_EQ(data->vocab_size, 50257);
}

}  // namespace
}  // namespace isoflop
