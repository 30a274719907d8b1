// Tokenizers (common/text): BPE semantics on small hand-made vocabularies, GPT-2 on its real files
// (skipped when ../shared/data is absent), the bytes fallback, byte-exact round trips of any input,
// and the split points that let long inputs be encoded in pieces. Exactness against the reference
// GPT-2 tokenizer on the whole corpus is gpt2_reference_test.cpp.
#include "common/text/tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/text/gpt2_tokenizer.h"

namespace isoflop {
namespace {

namespace fs = std::filesystem;
using Ids = std::vector<TokenId>;

const fs::path kGpt2Dir = fs::path(ISOFLOP_SHARED_DIR) / "data/tokenizer/gpt2";
const fs::path kCorpusDir = fs::path(ISOFLOP_SHARED_DIR) / "data/corpus";

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return std::move(text).str();
}

// Inputs that have broken tokenizers: every byte value, invalid UTF-8, long runs (a quadratic merge
// loop would not finish on them), and Unicode beyond Latin-1.
std::vector<std::string> HardInputs() {
  std::string every_byte;
  for (int b = 0; b < 256; ++b) every_byte.push_back(static_cast<char>(b));
  std::string noise;
  std::uint32_t state = 12345;
  for (int i = 0; i < 20000; ++i) {
    state = state * 1664525u + 1013904223u;
    noise.push_back(static_cast<char>(state >> 24));
  }
  return {
      "",
      "Hello world",
      "I'm sure you'll see it's what we'd've done; THEY'RE here",
      "numbers 0 42 1234567890 3.14159 -12 1,000,000",
      "caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xd0\x9f\xd1\x80\xd0\xb8",
      "emoji \xf0\x9f\x98\x80\xf0\x9f\x8e\x89 \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9",
      "  two\t\ttabs \n\n\n  runs   \r\n \xc2\xa0nbsp\xe3\x80\x80ideographic   ",
      std::string("nul\0inside", 10),
      every_byte,
      "\xff\xfe invalid \xc3( truncated \xe2\x82 overlong \xc0\xaf surrogate \xed\xa0\x80 end\xc3",
      noise,
      std::string(200'000, 'a'),
      std::string(200'000, ' '),
      std::string(100'000, '!') + "x",
  };
}

// ---------------------------------------------------------------------------------------------------
// BPE semantics on hand-made files: no shared data needed.

// GPT-2 spells each byte as one printable code point (the inverse of the loader's table).
std::string Spell(std::string_view bytes) {
  std::string spelled;
  for (unsigned char b : bytes) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    char32_t cp = b;
    if (!printable) {
      cp = 256;
      for (int x = 0; x < b; ++x) {
        bool p = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE;
        if (!p) ++cp;
      }
    }
    if (cp < 0x80) {
      spelled.push_back(static_cast<char>(cp));
    } else {
      spelled.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      spelled.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  return spelled;
}

class SmallBpeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("isoflop_tokenizer_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Ids 0..255 are the bytes in order, then `extra` tokens, then EOT; merges as given.
  void WriteFiles(const std::vector<std::string>& extra, const std::vector<std::string>& merges) {
    std::ofstream vocab(dir_ / "vocab.json", std::ios::binary);
    vocab << "{";
    for (int b = 0; b < 256; ++b) {
      std::string token = Spell(std::string(1, static_cast<char>(b)));
      vocab << (b > 0 ? ", " : "") << "\""
            << (token == "\""   ? "\\\""
                : token == "\\" ? "\\\\"
                                : token)
            << "\": " << b;
    }
    for (std::size_t i = 0; i < extra.size(); ++i) vocab << ", \"" << extra[i] << "\": " << 256 + i;
    vocab << ", \"<|endoftext|>\": " << 256 + extra.size() << "}";
    std::ofstream merges_file(dir_ / "merges.txt", std::ios::binary);
    merges_file << "#version: 0.2\n";
    for (const std::string& merge : merges) merges_file << merge << "\n";
  }

  std::unique_ptr<Tokenizer> Load() {
    Result<std::unique_ptr<Tokenizer>> tokenizer = LoadGpt2Tokenizer(dir_);
    EXPECT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
    return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
  }

  Status LoadError() {
    Result<std::unique_ptr<Tokenizer>> tokenizer = LoadGpt2Tokenizer(dir_);
    return tokenizer.status();
  }

  fs::path dir_;
};

TEST_F(SmallBpeTest, MergesLeftmostOccurrenceFirst) {
  WriteFiles({"aa"}, {"a a"});
  std::unique_ptr<Tokenizer> bpe = Load();
  ASSERT_NE(bpe, nullptr);
  EXPECT_EQ(bpe->vocab_size(), 258);
  EXPECT_EQ(bpe->eot_token(), 257);
  EXPECT_EQ(bpe->Encode("aaa"), (Ids{256, 'a'}));
  EXPECT_EQ(bpe->Encode("aaaa"), (Ids{256, 256}));
  EXPECT_EQ(bpe->Encode("aaaaa"), (Ids{256, 256, 'a'}));
}

TEST_F(SmallBpeTest, LowerRankMergesFirstWhateverItsPosition) {
  WriteFiles({"bc", "ab"}, {"b c", "a b"});
  std::unique_ptr<Tokenizer> bpe = Load();
  ASSERT_NE(bpe, nullptr);
  EXPECT_EQ(bpe->Encode("abc"), (Ids{'a', 256}));  // "b c" outranks "a b"

  WriteFiles({"bc", "ab"}, {"a b", "b c"});
  bpe = Load();
  ASSERT_NE(bpe, nullptr);
  EXPECT_EQ(bpe->Encode("abc"), (Ids{257, 'c'}));
}

TEST_F(SmallBpeTest, MergesBuildOnEarlierMerges) {
  WriteFiles({"ab", "abc", "abcabc"}, {"a b", "ab c", "abc abc"});
  std::unique_ptr<Tokenizer> bpe = Load();
  ASSERT_NE(bpe, nullptr);
  EXPECT_EQ(bpe->Encode("abcabcab"), (Ids{258, 256}));
  // Pieces are merged separately: the space starts a new pre-tokenizer piece " abc".
  EXPECT_EQ(bpe->Encode("abc abc"), (Ids{257, ' ', 257}));
}

TEST_F(SmallBpeTest, LoadErrorsNameTheFileAndLine) {
  Status missing = LoadGpt2Tokenizer(dir_ / "absent").status();
  EXPECT_EQ(missing.code(), Status::Code::kNotFound);
  EXPECT_NE(missing.message().find("absent/vocab.json"), std::string::npos) << missing.message();

  WriteFiles({"ab"}, {"a b", "a z"});  // "az" is not in the vocabulary
  Status unknown = LoadError();
  EXPECT_EQ(unknown.code(), Status::Code::kCorruption);
  EXPECT_EQ(unknown.message(), (dir_ / "merges.txt").string() +
                                   ":3: merge 'a z' uses or makes a token that vocab.json lacks");

  WriteFiles({"ab"}, {"a b", "ab"});
  EXPECT_EQ(LoadError().message(), (dir_ / "merges.txt").string() +
                                       ":3: expected two tokens separated by one space, got 'ab'");

  WriteFiles({"ab"}, {"a b", "a b"});
  EXPECT_EQ(LoadError().message(),
            (dir_ / "merges.txt").string() + ":3: merge 'a b' is listed twice");

  std::ofstream(dir_ / "vocab.json") << "{\"a\": 0,";
  EXPECT_EQ(LoadError().code(), Status::Code::kCorruption);

  std::ofstream(dir_ / "vocab.json") << "{\"a\": 0, \"<|endoftext|>\": 1}";
  EXPECT_EQ(LoadError().message(),
            (dir_ / "vocab.json").string() + ": no token for byte 0 (every byte needs one)");

  std::ofstream(dir_ / "vocab.json") << "{\"a\": 0, \"b\": 0}";
  EXPECT_EQ(LoadError().message(),
            (dir_ / "vocab.json").string() + ": id 0 is given to two tokens");

  std::ofstream(dir_ / "vocab.json") << "{\"a\": 0, \"b\": 7}";
  EXPECT_EQ(LoadError().message(),
            (dir_ / "vocab.json").string() + ": token 'b' has id 7, expected an integer in [0, 2)");
}

// ---------------------------------------------------------------------------------------------------
// GPT-2 on its real files.

class Gpt2TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(kGpt2Dir / "vocab.json")) return;
    Result<std::unique_ptr<Tokenizer>> loaded = LoadGpt2Tokenizer(kGpt2Dir);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    gpt2_ = std::move(loaded).value().release();
  }
  static void TearDownTestSuite() {
    delete gpt2_;
    gpt2_ = nullptr;
  }
  void SetUp() override {
    if (gpt2_ == nullptr) GTEST_SKIP() << "no GPT-2 tokenizer files at " << kGpt2Dir;
  }

  static Tokenizer* gpt2_;  // loading takes a moment, so the suite shares one
};
Tokenizer* Gpt2TokenizerTest::gpt2_ = nullptr;

TEST_F(Gpt2TokenizerTest, MatchesPublishedIds) {
  EXPECT_EQ(gpt2_->name(), "gpt2");
  EXPECT_EQ(gpt2_->vocab_size(), 50257);
  EXPECT_EQ(gpt2_->eot_token(), 50256);
  EXPECT_EQ(gpt2_->Encode("Hello world"), (Ids{15496, 995}));  // shared/data/README.md
  // Ids of Hugging Face `tokenizers` for GPT-2, recorded once: a leading space joins the word; a
  // contraction splits off; of a run of spaces before a word, the last space goes with the word;
  // digits group by the merges (at most three to a token here); multi-byte characters are
  // byte-level.
  EXPECT_EQ(gpt2_->Encode(" Hello world"), (Ids{18435, 995}));
  EXPECT_EQ(gpt2_->Encode("I'm here"), (Ids{40, 1101, 994}));
  EXPECT_EQ(gpt2_->Encode("a  b"), (Ids{64, 220, 275}));
  EXPECT_EQ(gpt2_->Encode("x\n\ny"), (Ids{87, 198, 198, 88}));
  EXPECT_EQ(gpt2_->Encode("2024 is 12345"), (Ids{1238, 1731, 318, 17031, 2231}));
  EXPECT_EQ(gpt2_->Encode("h\xc3\xa9llo \xf0\x9f\x99\x82"), (Ids{71, 2634, 18798, 32485}));
}

TEST_F(Gpt2TokenizerTest, EndOfTextIsSpecialOnlyWhenAsked) {
  EXPECT_EQ(gpt2_->Encode("<|endoftext|>", SpecialTokens::kAsText),
            (Ids{27, 91, 437, 1659, 5239, 91, 29}));
  EXPECT_EQ(gpt2_->Encode("<|endoftext|>", SpecialTokens::kRecognize), (Ids{50256}));
  EXPECT_EQ(gpt2_->Encode("a<|endoftext|>b<|endoftext|>", SpecialTokens::kRecognize),
            (Ids{64, 50256, 65, 50256}));
  EXPECT_EQ(*gpt2_->Decode(Ids{64, 50256, 65}), "a<|endoftext|>b");
}

TEST_F(Gpt2TokenizerTest, DecodeInvertsEncodeOnAnyBytes) {
  for (const std::string& text : HardInputs()) {
    Ids ids = gpt2_->Encode(text);
    Result<std::string> decoded = gpt2_->Decode(ids);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_TRUE(*decoded == text) << "round trip failed for a " << text.size() << "-byte input";
    for (TokenId id : ids) ASSERT_TRUE(id >= 0 && id < 50257);
  }
}

TEST_F(Gpt2TokenizerTest, InvalidUtf8DoesNotDisturbItsNeighbours) {
  // The stray byte becomes a piece of its own; the valid text around it encodes as it would alone.
  Ids expected = gpt2_->Encode("Hello");
  Ids stray = gpt2_->Encode("\xff");
  Ids world = gpt2_->Encode(" world");
  expected.insert(expected.end(), stray.begin(), stray.end());
  expected.insert(expected.end(), world.begin(), world.end());
  EXPECT_EQ(gpt2_->Encode("Hello\xff world"), expected);
}

TEST_F(Gpt2TokenizerTest, DecodeRejectsIdsOutsideTheVocabulary) {
  Result<std::string> decoded = gpt2_->Decode(Ids{15496, 50257});
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(decoded.status().message(),
            "gpt2 tokenizer: token id 50257 at position 1 is outside the vocabulary [0, 50257)");
  EXPECT_FALSE(gpt2_->Decode(Ids{-1}).ok());
}

TEST_F(Gpt2TokenizerTest, CuttingAtSplitPointsKeepsTheTokens) {
  // Brown's Penn-style spacing and Shakespeare's verse lines; plus the hard inputs joined, where
  // whitespace runs meet every kind of character.
  std::string text = ReadFile(kCorpusDir / "brown.txt").substr(0, 30'000) +
                     ReadFile(kCorpusDir / "tinyshakespeare.txt").substr(0, 30'000);
  for (const std::string& hard : HardInputs()) text += hard.substr(0, 2000) + " \n  ";
  Ids whole = gpt2_->Encode(text);
  int cuts_checked = 0;
  for (std::size_t end = 1500; end < text.size(); end += 1500) {
    std::size_t p = LastSplitPoint(std::string_view(text).substr(0, end));
    if (p == 0) continue;
    Ids pieces = gpt2_->Encode(std::string_view(text).substr(0, p));
    Ids rest = gpt2_->Encode(std::string_view(text).substr(p));
    pieces.insert(pieces.end(), rest.begin(), rest.end());
    ASSERT_TRUE(pieces == whole) << "cut at byte " << p << " changed the tokens";
    ++cuts_checked;
  }
  EXPECT_GT(cuts_checked, 40);
}

TEST_F(Gpt2TokenizerTest, CutsAnywhereElseCanChangeTheTokens) {
  // Why LastSplitPoint is picky. Cut just before a word and the space that belongs to the word
  // stays behind: "a   b" is "a", "  ", " b" whole but "a", "   " + "b" cut. Cut after whitespace
  // and the lookahead of \s+(?!\S) loses sight of the text: "x \n\ny" has "\n", "\n" whole but
  // "\n\n" cut.
  auto encode_cut = [&](std::string_view text, std::size_t p) {
    Ids ids = gpt2_->Encode(text.substr(0, p));
    Ids rest = gpt2_->Encode(text.substr(p));
    ids.insert(ids.end(), rest.begin(), rest.end());
    return ids;
  };
  EXPECT_EQ(gpt2_->Encode("a   b"), (Ids{64, 220, 220, 275}));
  EXPECT_EQ(encode_cut("a   b", 4), (Ids{64, 220, 220, 220, 65}));
  EXPECT_EQ(LastSplitPoint("a   b"), 1u);
  EXPECT_EQ(encode_cut("a   b", 1), gpt2_->Encode("a   b"));

  EXPECT_EQ(gpt2_->Encode("x \n\ny"), (Ids{87, 220, 198, 198, 88}));
  EXPECT_EQ(encode_cut("x \n\ny", 4), (Ids{87, 220, 628, 88}));
  EXPECT_EQ(LastSplitPoint("x \n\ny"), 1u);
}

// ---------------------------------------------------------------------------------------------------
// Bytes fallback, the factory and split points.

TEST(ByteTokenizerTest, IdsAreBytesAndEotIs256) {
  std::unique_ptr<Tokenizer> bytes = MakeByteTokenizer();
  EXPECT_EQ(bytes->name(), "bytes");
  EXPECT_EQ(bytes->vocab_size(), 257);
  EXPECT_EQ(bytes->eot_token(), 256);
  EXPECT_EQ(bytes->Encode("h\xc3\xa9"), (Ids{104, 195, 169}));
  EXPECT_EQ(bytes->Encode("a<|endoftext|>", SpecialTokens::kRecognize), (Ids{97, 256}));
  EXPECT_EQ(bytes->Encode("<|endoftext|>").size(), 13u);
  EXPECT_EQ(*bytes->Decode(Ids{104, 256, 0}), std::string("h<|endoftext|>\0", 15));
  EXPECT_EQ(bytes->Decode(Ids{257}).status().message(),
            "bytes tokenizer: token id 257 at position 0 is outside the vocabulary [0, 257)");
  for (const std::string& text : HardInputs()) {
    EXPECT_TRUE(*bytes->Decode(bytes->Encode(text)) == text);
  }
}

TEST(OpenTokenizerTest, KnowsBytesAndGpt2Only) {
  Result<std::unique_ptr<Tokenizer>> bytes = OpenTokenizer("bytes", "");
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ((*bytes)->name(), "bytes");
  Result<std::unique_ptr<Tokenizer>> unknown = OpenTokenizer("sentencepiece", kGpt2Dir);
  EXPECT_EQ(unknown.status().message(),
            "unknown tokenizer 'sentencepiece' (expected 'gpt2' or 'bytes')");
  EXPECT_EQ(OpenTokenizer("gpt2", "/nonexistent").status().code(), Status::Code::kNotFound);
}

TEST(LastSplitPointTest, CutsBeforeWhitespaceThatFollowsAVisibleCharacter) {
  EXPECT_EQ(LastSplitPoint(""), 0u);
  EXPECT_EQ(LastSplitPoint("word"), 0u);
  EXPECT_EQ(LastSplitPoint("one two"), 3u);
  EXPECT_EQ(LastSplitPoint("one two three"), 7u);
  EXPECT_EQ(LastSplitPoint("line.\nnext"), 5u);
  EXPECT_EQ(LastSplitPoint("end. "), 4u);
  EXPECT_EQ(LastSplitPoint("  \n\t "), 0u);  // whitespace after whitespace: the lookahead decides
  EXPECT_EQ(LastSplitPoint("caf\xc3\xa9 x"),
            0u);  // after a non-ASCII character: its class may vary
}

}  // namespace
}  // namespace isoflop
