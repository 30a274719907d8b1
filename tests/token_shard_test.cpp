// Token shards: the llm.c .bin format byte for byte, crash-safe writing, and reader errors a user
// can act on (common/data/token_shard.h).
#include "common/data/token_shard.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

namespace isoflop {
namespace {

namespace fs = std::filesystem;

class TokenShardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("isoflop_token_shard_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // A file written by hand, header field by field, as llm.c's write_datafile does.
  std::string WriteRawShard(const std::string& name, std::int32_t magic, std::int32_t version,
                            std::int32_t count, std::size_t token_bytes) {
    std::array<std::int32_t, 256> header{};
    header[0] = magic;
    header[1] = version;
    header[2] = count;
    std::string path = Path(name);
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(header.data()), sizeof(header));
    out << std::string(token_bytes, '\x01');
    return path;
  }

  std::vector<std::string> FilesInDir() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  fs::path dir_;
};

Status WriteShard(const std::string& path, const std::vector<std::int32_t>& tokens) {
  Result<TokenShardWriter> writer = TokenShardWriter::Create(path);
  if (!writer.ok()) return writer.status();
  ISOFLOP_RETURN_IF_ERROR(writer->Append(tokens));
  return writer->Finish();
}

TEST_F(TokenShardTest, WritesTheLlmcFormatByteForByte) {
  std::string path = Path("a.bin");
  ASSERT_TRUE(WriteShard(path, {50256, 0, 1, 65535, 258}).ok());

  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(bytes.size(), 1024u + 5 * 2);
  std::array<std::int32_t, 256> header{};
  std::memcpy(header.data(), bytes.data(), 1024);
  EXPECT_EQ(header[0], 20240520);
  EXPECT_EQ(header[1], 1);
  EXPECT_EQ(header[2], 5);
  EXPECT_TRUE(std::all_of(header.begin() + 3, header.end(), [](std::int32_t v) { return v == 0; }));
  std::array<std::uint16_t, 5> body{};
  std::memcpy(body.data(), bytes.data() + 1024, sizeof(body));
  EXPECT_EQ(body, (std::array<std::uint16_t, 5>{50256, 0, 1, 65535, 258}));
}

TEST_F(TokenShardTest, RoundTripsTokensAcrossWriteBuffers) {
  // 2.5M tokens: more than one write buffer (1M tokens), so the flushing path is exercised too.
  std::vector<std::int32_t> tokens(2'500'000);
  for (std::size_t i = 0; i < tokens.size(); ++i)
    tokens[i] = static_cast<std::int32_t>(i * 7919 % 65536);
  std::string path = Path("big.bin");
  Result<TokenShardWriter> writer = TokenShardWriter::Create(path);
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  // Appended in uneven pieces, as a tokenizer produces them.
  for (std::size_t at = 0; at < tokens.size();) {
    std::size_t n = std::min<std::size_t>(tokens.size() - at, 1 + at % 300'001);
    ASSERT_TRUE(writer->Append(std::span(tokens).subspan(at, n)).ok());
    at += n;
  }
  EXPECT_EQ(writer->size(), 2'500'000);
  ASSERT_TRUE(writer->Finish().ok());

  Result<TokenShard> shard = TokenShard::Open(path);
  ASSERT_TRUE(shard.ok()) << shard.status().ToString();
  ASSERT_EQ(shard->size(), 2'500'000);
  EXPECT_TRUE(std::equal(tokens.begin(), tokens.end(), shard->tokens().begin()));
  EXPECT_EQ(shard->path(), path);
}

TEST_F(TokenShardTest, EmptyShardIsValid) {
  ASSERT_TRUE(WriteShard(Path("empty.bin"), {}).ok());
  Result<TokenShard> shard = TokenShard::Open(Path("empty.bin"));
  ASSERT_TRUE(shard.ok()) << shard.status().ToString();
  EXPECT_EQ(shard->size(), 0);
  EXPECT_TRUE(shard->Window(0, 0).ok());
}

TEST_F(TokenShardTest, WindowIsAViewOfTheRequestedRange) {
  std::vector<std::int32_t> tokens(100);
  std::iota(tokens.begin(), tokens.end(), 1000);
  ASSERT_TRUE(WriteShard(Path("w.bin"), tokens).ok());
  Result<TokenShard> shard = TokenShard::Open(Path("w.bin"));
  ASSERT_TRUE(shard.ok());

  Result<std::span<const std::uint16_t>> window = shard->Window(90, 10);
  ASSERT_TRUE(window.ok());
  ASSERT_EQ(window->size(), 10u);
  EXPECT_EQ((*window)[0], 1090);
  EXPECT_EQ((*window)[9], 1099);
  EXPECT_EQ(window->data(), shard->tokens().data() + 90);  // no copy

  Result<std::span<const std::uint16_t>> past_end = shard->Window(95, 10);
  ASSERT_FALSE(past_end.ok());
  EXPECT_EQ(past_end.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(past_end.status().message(),
            Path("w.bin") + ": window of 10 tokens at 95 is outside the shard's 100 tokens");
  EXPECT_FALSE(shard->Window(-1, 2).ok());
  EXPECT_FALSE(shard->Window(0, -1).ok());
  EXPECT_FALSE(shard->Window(101, 0).ok());
  EXPECT_FALSE(shard->Window(1, INT64_MAX).ok());  // pos + n overflows: still refused
}

TEST_F(TokenShardTest, MovedShardKeepsItsMapping) {
  ASSERT_TRUE(WriteShard(Path("m.bin"), {7, 8, 9}).ok());
  Result<TokenShard> opened = TokenShard::Open(Path("m.bin"));
  ASSERT_TRUE(opened.ok());
  TokenShard shard = std::move(opened).value();
  TokenShard other = std::move(shard);
  EXPECT_EQ(other.size(), 3);
  EXPECT_EQ(other.tokens()[2], 9);
  shard = std::move(other);
  EXPECT_EQ(shard.tokens()[0], 7);
}

TEST_F(TokenShardTest, RejectsIdsThatDoNotFitUint16AndAppendsNothing) {
  std::string path = Path("ids.bin");
  Result<TokenShardWriter> writer = TokenShardWriter::Create(path);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE(writer->Append(std::vector<std::int32_t>{1, 2}).ok());

  Status too_big = writer->Append(std::vector<std::int32_t>{3, 65536, 4});
  EXPECT_EQ(too_big.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(
      too_big.message(),
      path + ": token id 65536 does not fit the shard format's uint16 (vocabulary too large?)");
  EXPECT_EQ(writer->Append(std::vector<std::int32_t>{-1}).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(writer->size(), 2);

  ASSERT_TRUE(writer->Finish().ok());
  Result<TokenShard> shard = TokenShard::Open(path);
  ASSERT_TRUE(shard.ok());
  EXPECT_EQ(std::vector<std::uint16_t>(shard->tokens().begin(), shard->tokens().end()),
            (std::vector<std::uint16_t>{1, 2}));
}

TEST_F(TokenShardTest, NoShardAppearsUntilFinishAndNoneIfAbandoned) {
  std::string path = Path("crash.bin");
  {
    Result<TokenShardWriter> writer = TokenShardWriter::Create(path);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE(writer->Append(std::vector<std::int32_t>(5000, 42)).ok());
    EXPECT_FALSE(fs::exists(path));  // only the temporary file exists while writing
    EXPECT_EQ(FilesInDir().size(), 1u);
    // Destroyed without Finish(): as after an error, or a crash of the process that was writing.
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_TRUE(FilesInDir().empty()) << "the temporary file was left behind";
}

TEST_F(TokenShardTest, FinishReplacesAnOldShardAtomicallyAndOnlyOnce) {
  std::string path = Path("s.bin");
  ASSERT_TRUE(WriteShard(path, {1, 1, 1}).ok());
  Result<TokenShardWriter> writer = TokenShardWriter::Create(path);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE(writer->Append(std::vector<std::int32_t>{2, 2}).ok());
  // Until Finish, readers still see the complete old shard.
  ASSERT_EQ(TokenShard::Open(path)->size(), 3);
  ASSERT_TRUE(writer->Finish().ok());
  EXPECT_EQ(TokenShard::Open(path)->size(), 2);
  EXPECT_EQ(FilesInDir(), std::vector<std::string>{"s.bin"});

  EXPECT_EQ(writer->Finish().code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(writer->Append(std::vector<std::int32_t>{1}).code(), Status::Code::kFailedPrecondition);
}

TEST_F(TokenShardTest, CreateFailsInAMissingDirectory) {
  Result<TokenShardWriter> writer = TokenShardWriter::Create(Path("no/such/dir/x.bin"));
  ASSERT_FALSE(writer.ok());
  EXPECT_EQ(writer.status().code(), Status::Code::kNotFound);
  EXPECT_NE(writer.status().message().find("no/such/dir/x.bin"), std::string::npos);
}

TEST_F(TokenShardTest, RejectsBadMagic) {
  std::string path = WriteRawShard("magic.bin", 1234, 1, 2, 4);
  Result<TokenShard> shard = TokenShard::Open(path);
  ASSERT_FALSE(shard.ok());
  EXPECT_EQ(shard.status().code(), Status::Code::kCorruption);
  EXPECT_EQ(shard.status().message(), path + ": bad magic 1234 (expected 20240520)");
}

TEST_F(TokenShardTest, RejectsOtherVersions) {
  // llm.c's version 2 stores uint32 tokens (LLaMA-3 vocabularies); reading it as uint16 would be
  // noise.
  std::string path = WriteRawShard("v2.bin", 20240520, 2, 2, 8);
  Result<TokenShard> shard = TokenShard::Open(path);
  ASSERT_FALSE(shard.ok());
  EXPECT_EQ(
      shard.status().message(),
      path + ": unsupported version 2 (expected 1: uint16 tokens; llm.c's version 2 holds uint32)");
}

TEST_F(TokenShardTest, RejectsATruncatedFile) {
  std::string path = WriteRawShard("short.bin", 20240520, 1, 1000, 998 * 2);
  Result<TokenShard> shard = TokenShard::Open(path);
  ASSERT_FALSE(shard.ok());
  EXPECT_EQ(shard.status().code(), Status::Code::kCorruption);
  EXPECT_EQ(shard.status().message(), path + ": header says 1000 tokens but the file holds 998");
}

TEST_F(TokenShardTest, RejectsTrailingBytes) {
  std::string longer = WriteRawShard("long.bin", 20240520, 1, 3, 4 * 2);
  EXPECT_EQ(TokenShard::Open(longer).status().message(),
            longer + ": header says 3 tokens but the file holds 4");
  std::string odd = WriteRawShard("odd.bin", 20240520, 1, 3, 3 * 2 + 1);
  EXPECT_EQ(TokenShard::Open(odd).status().message(),
            odd + ": header says 3 tokens but the file holds 3 and a stray byte");
}

TEST_F(TokenShardTest, RejectsANegativeCount) {
  std::string path = WriteRawShard("neg.bin", 20240520, 1, -2, 0);
  EXPECT_EQ(TokenShard::Open(path).status().message(), path + ": negative token count -2");
}

TEST_F(TokenShardTest, RejectsAFileShorterThanTheHeader) {
  std::string path = Path("tiny.bin");
  std::ofstream(path) << "not a shard";
  Result<TokenShard> shard = TokenShard::Open(path);
  ASSERT_FALSE(shard.ok());
  EXPECT_EQ(shard.status().message(),
            path + ": file is 11 bytes, shorter than the 1024-byte header");
}

TEST_F(TokenShardTest, MissingFileIsNotFound) {
  Result<TokenShard> shard = TokenShard::Open(Path("absent.bin"));
  ASSERT_FALSE(shard.ok());
  EXPECT_EQ(shard.status().code(), Status::Code::kNotFound);
  EXPECT_NE(shard.status().message().find("absent.bin"), std::string::npos);
}

TEST_F(TokenShardTest, ListsAFileADirectoryOrAGlobSorted) {
  for (const char* name :
       {"train_000002.bin", "train_000000.bin", "val_000000.bin", "train_000001.bin"}) {
    ASSERT_TRUE(WriteShard(Path(name), {1}).ok());
  }
  std::ofstream(Path("notes.txt")) << "not a shard";
  std::ofstream(Path("train_000003.bin.tmp.Ab12Cd")) << "a writer's leftover";
  fs::create_directories(dir_ / "sub.bin");

  Result<std::vector<std::string>> file = ListShards(Path("val_000000.bin"));
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(*file, std::vector<std::string>{Path("val_000000.bin")});

  Result<std::vector<std::string>> dir = ListShards(dir_.string());
  ASSERT_TRUE(dir.ok());
  EXPECT_EQ(*dir, (std::vector<std::string>{Path("train_000000.bin"), Path("train_000001.bin"),
                                            Path("train_000002.bin"), Path("val_000000.bin")}));

  Result<std::vector<std::string>> glob = ListShards(Path("train_*.bin"));
  ASSERT_TRUE(glob.ok());
  EXPECT_EQ(*glob, (std::vector<std::string>{Path("train_000000.bin"), Path("train_000001.bin"),
                                             Path("train_000002.bin")}));

  Result<std::vector<std::string>> none = ListShards(Path("test_*.bin"));
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), Status::Code::kNotFound);
  fs::create_directories(dir_ / "empty");
  EXPECT_EQ(ListShards((dir_ / "empty").string()).status().code(), Status::Code::kNotFound);
}

}  // namespace
}  // namespace isoflop
