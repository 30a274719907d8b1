#include "common/text/tokenizer.h"

#include <fmt/format.h>

#include <array>

#include "common/text/gpt2_tokenizer.h"

namespace isoflop {

void Tokenizer::Encode(std::string_view text, SpecialTokens special, std::vector<TokenId>* out) {
  if (special == SpecialTokens::kRecognize) {
    for (std::size_t at = text.find(kEndOfText); at != std::string_view::npos;
         at = text.find(kEndOfText)) {
      EncodeOrdinary(text.substr(0, at), out);
      out->push_back(eot_token());
      text.remove_prefix(at + kEndOfText.size());
    }
  }
  EncodeOrdinary(text, out);
}

std::vector<TokenId> Tokenizer::Encode(std::string_view text, SpecialTokens special) {
  std::vector<TokenId> ids;
  Encode(text, special, &ids);
  return ids;
}

Result<std::string> Tokenizer::Decode(std::span<const TokenId> ids) const {
  std::string text;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size()) {
      return Status::InvalidArgument(
          fmt::format("{} tokenizer: token id {} at position {} is outside "
                      "the vocabulary [0, {})",
                      name(), ids[i], i, vocab_size()));
    }
    text += TokenBytes(ids[i]);
  }
  return text;
}

namespace {

class ByteTokenizer final : public Tokenizer {
 public:
  static constexpr TokenId kEot = 256;

  std::string_view name() const override { return "bytes"; }
  int vocab_size() const override { return kEot + 1; }
  TokenId eot_token() const override { return kEot; }

 protected:
  void EncodeOrdinary(std::string_view text, std::vector<TokenId>* out) override {
    for (char c : text) out->push_back(static_cast<unsigned char>(c));
  }
  std::string_view TokenBytes(TokenId id) const override {
    if (id == kEot) return kEndOfText;
    return std::string_view(&kAllBytes[id], 1);
  }

 private:
  // Every byte value once, so TokenBytes can return a view without allocating.
  static constexpr std::array<char, 256> kAllBytes = [] {
    std::array<char, 256> bytes{};
    for (int b = 0; b < 256; ++b) bytes[b] = static_cast<char>(b);
    return bytes;
  }();
};

bool IsPrintableNonSpace(char c) {
  return c > ' ' && c <= '~';
}
bool IsAsciiSpace(char c) {
  return c == ' ' || (c >= '\t' && c <= '\r');
}

}  // namespace

std::unique_ptr<Tokenizer> MakeByteTokenizer() {
  return std::make_unique<ByteTokenizer>();
}

Result<std::unique_ptr<Tokenizer>> OpenTokenizer(std::string_view name,
                                                 const std::filesystem::path& gpt2_dir) {
  if (name == "bytes") return MakeByteTokenizer();
  if (name == "gpt2") return LoadGpt2Tokenizer(gpt2_dir);
  return Status::InvalidArgument(
      fmt::format("unknown tokenizer '{}' (expected 'gpt2' or 'bytes')", name));
}

std::size_t LastSplitPoint(std::string_view text) {
  for (std::size_t p = text.size() - (text.empty() ? 0 : 1); p > 0; --p) {
    if (IsAsciiSpace(text[p]) && IsPrintableNonSpace(text[p - 1])) return p;
  }
  return 0;
}

}  // namespace isoflop
