// Tokenizer: text <-> token ids, the interface shared by the GPT-2 BPE and the bytes fallback.
//
// Every tokenizer here is byte-level: any byte string, valid UTF-8 or not, encodes without error,
// and Decode(Encode(x)) == x byte for byte. Each has one special token, "<|endoftext|>" (EOT),
// which the training data puts before every document (papers.md 1.6: the pgpt data prepends it, as
// llm.c does).
//
// A Tokenizer is not thread-safe: encoding fills a cache of already-split words. Give each thread
// its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace isoflop {

using TokenId = std::int32_t;

// The text form of the end-of-text token, as GPT-2's vocabulary spells it.
inline constexpr std::string_view kEndOfText = "<|endoftext|>";

// Whether "<|endoftext|>" inside the text to encode is the special token or five ordinary pieces of
// text. Text from users is kAsText by default, so a document that merely quotes the marker cannot
// end itself.
enum class SpecialTokens { kAsText, kRecognize };

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // "gpt2" or "bytes": the name recorded in data manifests and sweep files.
  virtual std::string_view name() const = 0;
  // Ids are in [0, vocab_size()); a model's embedding table may be larger (GPT-2's 50257 padded to
  // 50304).
  virtual int vocab_size() const = 0;
  virtual TokenId eot_token() const = 0;

  // Appends the ids of `text` to *out.
  void Encode(std::string_view text, SpecialTokens special, std::vector<TokenId>* out);
  std::vector<TokenId> Encode(std::string_view text,
                              SpecialTokens special = SpecialTokens::kAsText);

  // The bytes the ids stand for, concatenated (EOT decodes to "<|endoftext|>"). The result need not
  // be valid UTF-8 when the ids cut a character in two. InvalidArgument names the first id out of
  // range.
  Result<std::string> Decode(std::span<const TokenId> ids) const;

 protected:
  // Encodes text that holds no special token, appending to *out.
  virtual void EncodeOrdinary(std::string_view text, std::vector<TokenId>* out) = 0;
  // The bytes of token `id`, which the caller has checked is in [0, vocab_size()).
  virtual std::string_view TokenBytes(TokenId id) const = 0;
};

// ids = bytes (0..255), EOT = 256, vocab 257: for users who bring no tokenizer files, and for
// tests.
std::unique_ptr<Tokenizer> MakeByteTokenizer();

// "bytes" -> MakeByteTokenizer(); "gpt2" -> LoadGpt2Tokenizer(gpt2_dir) (gpt2_tokenizer.h).
// InvalidArgument for any other name; the GPT-2 loader's errors otherwise.
Result<std::unique_ptr<Tokenizer>> OpenTokenizer(std::string_view name,
                                                 const std::filesystem::path& gpt2_dir);

// The largest p in (0, text.size()) at which text may be cut without changing its tokens:
// Encode(text[0, p)) followed by Encode(text[p, n)) equals Encode(text), for every tokenizer here.
// Returns 0 when there is none. Lets long inputs be encoded in bounded memory.
//
// Why it holds for GPT-2: p is taken where text[p-1] is a printable ASCII character other than
// space and text[p] is ASCII whitespace. No pre-tokenizer piece holds both a non-space and a
// following space (the letter, number and punctuation pieces take a space only in front), so a
// piece ends at p in the whole text; the piece before p ends in a non-space, so the one lookahead
// of the pattern, \s+(?!\S), never looks across p. Byte-level BPE works within pieces, so the
// pieces' tokens do not change either.
std::size_t LastSplitPoint(std::string_view text);

}  // namespace isoflop
