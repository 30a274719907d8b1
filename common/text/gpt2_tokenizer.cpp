#include "common/text/gpt2_tokenizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

// pcre2.h declares its API for one code unit width, chosen before it is included: UTF-8 bytes.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace isoflop {
namespace {

// GPT-2's pre-tokenizer pattern, with one correction. The reference's \s is Unicode's White_Space;
// PCRE2's also holds U+180E MONGOLIAN VOWEL SEPARATOR (White_Space until Unicode 6.3), so here \s
// is spelled [^\S\x{180E}], \S [\S\x{180E}], and U+180E joins the "other" class. The reference
// test's sweep over every code point to U+2FFFF found no other difference.
constexpr std::string_view kPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?(?:[^\s\p{L}\p{N}]|\x{180E})+)"
    R"(|[^\S\x{180E}]+(?![\S\x{180E}])|[^\S\x{180E}]+)";

// Pieces longer than this skip the cache: they are rare (long runs of spaces or symbols), and
// keeping them would let one odd document fill memory.
constexpr std::size_t kMaxCachedPieceBytes = 64;
// The cache starts over when it holds this many pieces; English text needs a few hundred thousand.
constexpr std::size_t kMaxCachedPieces = std::size_t{1} << 20;

// GPT-2's byte-to-unicode table: the 188 printable Latin-1 bytes stand for themselves and the other
// 68 bytes for code points 256..323, so that every token of vocab.json is printable text.
std::array<char32_t, 256> ByteToUnicode() {
  std::array<char32_t, 256> table{};
  char32_t next_unprintable = 256;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    table[b] = printable ? static_cast<char32_t>(b) : next_unprintable++;
  }
  return table;
}

// Decodes one vocab.json / merges.txt token from GPT-2's unicode spelling back to the bytes it
// stands for. Returns false when the spelling is not valid UTF-8 or uses a code point outside the
// table.
bool TokenSpellingToBytes(std::string_view spelling, const std::array<int, 324>& byte_of_code_point,
                          std::string* bytes) {
  bytes->clear();
  for (std::size_t i = 0; i < spelling.size();) {
    unsigned char lead = spelling[i];
    char32_t cp;
    std::size_t length;
    if (lead < 0x80) {
      cp = lead, length = 1;
    } else if ((lead & 0xE0) == 0xC0) {
      cp = lead & 0x1F, length = 2;
    } else {
      return false;  // the table's code points are all below U+0800: one or two UTF-8 bytes
    }
    if (i + length > spelling.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      unsigned char continuation = spelling[i + k];
      if ((continuation & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (continuation & 0x3F);
    }
    if (cp >= byte_of_code_point.size() || byte_of_code_point[cp] < 0) return false;
    bytes->push_back(static_cast<char>(byte_of_code_point[cp]));
    i += length;
  }
  return !bytes->empty();
}

Result<std::string> ReadWholeFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(fmt::format("{}: cannot open tokenizer file", path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::IOError(fmt::format("{}: read failed", path.string()));
  return std::move(text).str();
}

// Owners of PCRE2 objects.
struct Pcre2Free {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};
using Pcre2Code = std::unique_ptr<pcre2_code, Pcre2Free>;
using Pcre2MatchData = std::unique_ptr<pcre2_match_data, Pcre2Free>;

// Hashes std::string keys and looks them up by std::string_view without building a string.
struct TransparentHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class Gpt2Tokenizer final : public Tokenizer {
 public:
  struct Merge {
    int rank;       // line order in merges.txt: lower merges first
    TokenId token;  // the token the pair becomes
  };

  Gpt2Tokenizer(std::vector<std::string> token_bytes, std::array<TokenId, 256> byte_tokens,
                std::unordered_map<std::uint64_t, Merge> merges, TokenId eot, Pcre2Code pattern,
                Pcre2MatchData match_data)
      : token_bytes_(std::move(token_bytes)),
        byte_tokens_(byte_tokens),
        merges_(std::move(merges)),
        eot_(eot),
        pattern_(std::move(pattern)),
        match_data_(std::move(match_data)) {}

  std::string_view name() const override { return "gpt2"; }
  int vocab_size() const override { return static_cast<int>(token_bytes_.size()); }
  TokenId eot_token() const override { return eot_; }

  static std::uint64_t PairKey(TokenId left, TokenId right) {
    return (static_cast<std::uint64_t>(left) << 32) | static_cast<std::uint32_t>(right);
  }

 protected:
  void EncodeOrdinary(std::string_view text, std::vector<TokenId>* out) override;
  std::string_view TokenBytes(TokenId id) const override { return token_bytes_[id]; }

 private:
  struct Symbol {
    TokenId token;  // -1 once merged into its left neighbour
    int prev;       // index of the neighbours still alive, -1 at the ends
    int next;
  };
  struct Candidate {
    int rank;
    int left;  // symbol index of the pair's left half
    TokenId left_token;
    TokenId right_token;
    TokenId merged;
    // Orders the heap: lowest rank first, then leftmost, which is GPT-2's order (it merges every
    // occurrence of the best pair left to right before looking again; a merge only creates pairs
    // holding the new token, whose ranks are higher, so the two orders agree).
    bool operator>(const Candidate& other) const {
      return rank != other.rank ? rank > other.rank : left > other.left;
    }
  };
  struct CachedPiece {
    std::uint32_t offset;  // into cached_tokens_
    std::uint32_t count;
  };

  void EncodePiece(std::string_view piece, std::vector<TokenId>* out);
  void BytePairMerge(std::string_view piece, std::vector<TokenId>* out);
  void PushCandidate(int left);

  const std::vector<std::string> token_bytes_;  // id -> the bytes it stands for
  const std::array<TokenId, 256> byte_tokens_;  // byte -> its one-byte token
  const std::unordered_map<std::uint64_t, Merge> merges_;
  const TokenId eot_;
  const Pcre2Code pattern_;
  const Pcre2MatchData match_data_;  // where pcre2_match puts a match's offsets

  // Per-piece results, so each distinct word is merged once; pieces point into one flat token
  // array.
  std::unordered_map<std::string, CachedPiece, TransparentHash, std::equal_to<>> cache_;
  std::vector<TokenId> cached_tokens_;
  // Scratch for BytePairMerge, kept to avoid an allocation per piece.
  std::vector<Symbol> symbols_;
  std::vector<Candidate> heap_;
};

void Gpt2Tokenizer::EncodeOrdinary(std::string_view text, std::vector<TokenId>* out) {
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t pos = 0;
  while (pos < text.size()) {
    int rc = pcre2_match(pattern_.get(), subject, text.size(), pos, 0, match_data_.get(), nullptr);
    if (rc < 0) {
      // PCRE2_ERROR_NOMATCH: only invalid UTF-8 is left. Any other error (a resource limit, which
      // this pattern should never reach) is treated the same way: the bytes still round-trip, ids
      // may differ.
      EncodePiece(text.substr(pos), out);
      return;
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match_data_.get());
    std::size_t start = ovector[0], end = ovector[1];
    if (start > pos) {
      EncodePiece(text.substr(pos, start - pos), out);  // invalid UTF-8 before the match
    }
    if (end == start) {
      // Every alternative consumes a character, so this cannot happen; if it did, step over the
      // rest as raw bytes rather than loop forever.
      EncodePiece(text.substr(start), out);
      return;
    }
    EncodePiece(text.substr(start, end - start), out);
    pos = end;
  }
}

void Gpt2Tokenizer::EncodePiece(std::string_view piece, std::vector<TokenId>* out) {
  if (piece.empty()) return;
  if (piece.size() == 1) {
    out->push_back(byte_tokens_[static_cast<unsigned char>(piece[0])]);
    return;
  }
  if (auto hit = cache_.find(piece); hit != cache_.end()) {
    auto first = cached_tokens_.begin() + hit->second.offset;
    out->insert(out->end(), first, first + hit->second.count);
    return;
  }
  std::size_t first = out->size();
  BytePairMerge(piece, out);
  if (piece.size() > kMaxCachedPieceBytes) return;
  if (cache_.size() >= kMaxCachedPieces) {
    cache_.clear();
    cached_tokens_.clear();
  }
  cache_.emplace(std::string(piece), CachedPiece{static_cast<std::uint32_t>(cached_tokens_.size()),
                                                 static_cast<std::uint32_t>(out->size() - first)});
  cached_tokens_.insert(cached_tokens_.end(), out->begin() + first, out->end());
}

void Gpt2Tokenizer::PushCandidate(int left) {
  int right = symbols_[left].next;
  if (right < 0) return;
  auto merge = merges_.find(PairKey(symbols_[left].token, symbols_[right].token));
  if (merge == merges_.end()) return;
  heap_.push_back(
      {merge->second.rank, left, symbols_[left].token, symbols_[right].token, merge->second.token});
  std::push_heap(heap_.begin(), heap_.end(), std::greater<>{});
}

// O(n log n) in the piece length n: a heap of candidate pairs over a linked list of symbols. Stale
// heap entries (a half already merged elsewhere) are recognised by their tokens and dropped when
// popped.
void Gpt2Tokenizer::BytePairMerge(std::string_view piece, std::vector<TokenId>* out) {
  const int n = static_cast<int>(piece.size());
  symbols_.clear();
  heap_.clear();
  for (int i = 0; i < n; ++i) {
    symbols_.push_back(
        {byte_tokens_[static_cast<unsigned char>(piece[i])], i - 1, i + 1 < n ? i + 1 : -1});
  }
  for (int i = 0; i + 1 < n; ++i) PushCandidate(i);

  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<>{});
    Candidate best = heap_.back();
    heap_.pop_back();
    Symbol& left = symbols_[best.left];
    if (left.token != best.left_token || left.next < 0) continue;
    Symbol& right = symbols_[left.next];
    if (right.token != best.right_token) continue;

    left.token = best.merged;
    right.token = -1;
    left.next = right.next;
    if (left.next >= 0) symbols_[left.next].prev = best.left;
    if (left.prev >= 0) PushCandidate(left.prev);
    PushCandidate(best.left);
  }
  for (int i = 0; i >= 0; i = symbols_[i].next) out->push_back(symbols_[i].token);
}

Result<Pcre2Code> CompilePattern() {
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  // PCRE2_MATCH_INVALID_UTF: text is not checked for valid UTF-8 up front; invalid sequences simply
  // match nothing (see EncodeOrdinary), so arbitrary bytes are safe to encode.
  Pcre2Code code(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPattern.data()), kPattern.size(),
                               PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error,
                               &error_offset, nullptr));
  if (code == nullptr) {
    std::array<PCRE2_UCHAR, 256> message{};
    pcre2_get_error_message(error, message.data(), message.size());
    return Status::Internal(fmt::format("GPT-2 pattern does not compile at offset {}: {}",
                                        error_offset,
                                        reinterpret_cast<const char*>(message.data())));
  }
  // JIT makes matching several times faster; where the platform has no JIT, pcre2_match interprets.
  pcre2_jit_compile(code.get(), PCRE2_JIT_COMPLETE);
  return code;
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> LoadGpt2Tokenizer(const std::filesystem::path& vocab_json,
                                                     const std::filesystem::path& merges_txt) {
  const std::array<char32_t, 256> unicode_of_byte = ByteToUnicode();
  std::array<int, 324> byte_of_code_point;
  byte_of_code_point.fill(-1);
  for (int b = 0; b < 256; ++b) byte_of_code_point[unicode_of_byte[b]] = b;

  // vocab.json: spelling -> id; ids must be exactly 0..n-1 so that vocab_size() bounds them.
  Result<std::string> vocab_text = ReadWholeFile(vocab_json);
  if (!vocab_text.ok()) return vocab_text.status();
  nlohmann::json vocab = nlohmann::json::parse(*vocab_text, nullptr, /*allow_exceptions=*/false);
  if (vocab.is_discarded() || !vocab.is_object() || vocab.empty()) {
    return Status::Corruption(
        fmt::format("{}: not a JSON object of token -> id", vocab_json.string()));
  }
  std::vector<std::string> token_bytes(vocab.size());
  std::vector<bool> seen(vocab.size(), false);
  std::unordered_map<std::string, TokenId> id_of_bytes;
  id_of_bytes.reserve(vocab.size());
  std::string bytes;
  TokenId eot = -1;
  for (const auto& [spelling, id_json] : vocab.items()) {
    if (!id_json.is_number_integer() || id_json.get<std::int64_t>() < 0 ||
        id_json.get<std::int64_t>() >= static_cast<std::int64_t>(vocab.size())) {
      return Status::Corruption(
          fmt::format("{}: token '{}' has id {}, expected an integer in [0, {})",
                      vocab_json.string(), spelling, id_json.dump(), vocab.size()));
    }
    auto id = id_json.get<TokenId>();
    if (seen[id]) {
      return Status::Corruption(
          fmt::format("{}: id {} is given to two tokens", vocab_json.string(), id));
    }
    seen[id] = true;
    if (spelling == kEndOfText) {
      eot = id;
      token_bytes[id] = std::string(kEndOfText);
      continue;  // a special token: not reachable by merges, so not in id_of_bytes
    }
    if (!TokenSpellingToBytes(spelling, byte_of_code_point, &bytes)) {
      return Status::Corruption(fmt::format(
          "{}: token '{}' is not spelled in GPT-2's byte alphabet", vocab_json.string(), spelling));
    }
    token_bytes[id] = bytes;
    id_of_bytes.emplace(bytes, id);
  }
  if (eot < 0) {
    return Status::Corruption(fmt::format("{}: no '{}' token", vocab_json.string(), kEndOfText));
  }
  std::array<TokenId, 256> byte_tokens{};
  for (int b = 0; b < 256; ++b) {
    auto it = id_of_bytes.find(std::string(1, static_cast<char>(b)));
    if (it == id_of_bytes.end()) {
      return Status::Corruption(
          fmt::format("{}: no token for byte {} (every byte needs one)", vocab_json.string(), b));
    }
    byte_tokens[b] = it->second;
  }

  // merges.txt: "#version: 0.2", then "left right" per line; the line order is the merge priority.
  Result<std::string> merges_text = ReadWholeFile(merges_txt);
  if (!merges_text.ok()) return merges_text.status();
  std::unordered_map<std::uint64_t, Gpt2Tokenizer::Merge> merges;
  std::string_view rest = *merges_text;
  std::string left_bytes, right_bytes;
  for (int line_number = 1; !rest.empty(); ++line_number) {
    std::size_t eol = rest.find('\n');
    std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_number == 1 && line.starts_with("#version"))) continue;

    auto location = [&] { return fmt::format("{}:{}", merges_txt.string(), line_number); };
    std::size_t space = line.find(' ');
    if (space == 0 || space == std::string_view::npos || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string_view::npos) {
      return Status::Corruption(fmt::format(
          "{}: expected two tokens separated by one space, got '{}'", location(), line));
    }
    std::string_view left = line.substr(0, space), right = line.substr(space + 1);
    if (!TokenSpellingToBytes(left, byte_of_code_point, &left_bytes) ||
        !TokenSpellingToBytes(right, byte_of_code_point, &right_bytes)) {
      return Status::Corruption(
          fmt::format("{}: '{}' is not spelled in GPT-2's byte alphabet", location(), line));
    }
    auto left_id = id_of_bytes.find(left_bytes);
    auto right_id = id_of_bytes.find(right_bytes);
    auto merged_id = id_of_bytes.find(left_bytes + right_bytes);
    if (left_id == id_of_bytes.end() || right_id == id_of_bytes.end() ||
        merged_id == id_of_bytes.end()) {
      return Status::Corruption(fmt::format("{}: merge '{}' uses or makes a token that {} lacks",
                                            location(), line, vocab_json.filename().string()));
    }
    auto [_, inserted] =
        merges.emplace(Gpt2Tokenizer::PairKey(left_id->second, right_id->second),
                       Gpt2Tokenizer::Merge{static_cast<int>(merges.size()), merged_id->second});
    if (!inserted) {
      return Status::Corruption(fmt::format("{}: merge '{}' is listed twice", location(), line));
    }
  }

  Result<Pcre2Code> pattern = CompilePattern();
  if (!pattern.ok()) return pattern.status();
  Pcre2MatchData match_data(pcre2_match_data_create_from_pattern(pattern->get(), nullptr));
  if (match_data == nullptr) return Status::Internal("PCRE2: out of memory for match data");
  return std::unique_ptr<Tokenizer>(
      std::make_unique<Gpt2Tokenizer>(std::move(token_bytes), byte_tokens, std::move(merges), eot,
                                      std::move(pattern).value(), std::move(match_data)));
}

Result<std::unique_ptr<Tokenizer>> LoadGpt2Tokenizer(const std::filesystem::path& dir) {
  return LoadGpt2Tokenizer(dir / "vocab.json", dir / "merges.txt");
}

}  // namespace isoflop
