#include "worker/runtime/token_stream.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <utility>

namespace isoflop {

Result<TokenStream> TokenStream::Open(const std::string& file_dir_or_glob, int64_t seq_len,
                                      int64_t vocab_size) {
  Result<std::vector<std::string>> paths = ListShards(file_dir_or_glob);
  if (!paths.ok()) return paths.status();
  std::vector<TokenShard> shards;
  int64_t tokens = 0;
  for (const std::string& path : *paths) {
    Result<TokenShard> shard = TokenShard::Open(path);
    if (!shard.ok()) return shard.status();
    tokens += shard->size();
    if (shard->size() > 0) shards.push_back(std::move(shard).value());
  }
  if (tokens < seq_len + 1) {
    return Status::InvalidArgument(
        fmt::format("{}: {} tokens in all, fewer than one window of seq_len + 1 = {}",
                    file_dir_or_glob, tokens, seq_len + 1));
  }
  return TokenStream(std::move(shards), seq_len, vocab_size);
}

TokenStream::TokenStream(std::vector<TokenShard> shards, int64_t seq_len, int64_t vocab_size)
    : shards_(std::move(shards)), seq_len_(seq_len), vocab_size_(vocab_size) {
  for (const TokenShard& shard : shards_) {
    shard_start_.push_back(total_tokens_);
    total_tokens_ += shard.size();
  }
  // The last window's final target must exist: windows w with w * seq_len + seq_len < total.
  windows_per_epoch_ = (total_tokens_ - 1) / seq_len_;
}

Status TokenStream::ReadWindow(int64_t window, std::span<int64_t> out) const {
  assert(window >= 0 && static_cast<int64_t>(out.size()) == seq_len_ + 1);
  int64_t pos = order_.Map(window, windows_per_epoch_) * seq_len_;
  // The shard holding `pos`: the last one starting at or before it.
  size_t s = static_cast<size_t>(std::upper_bound(shard_start_.begin(), shard_start_.end(), pos) -
                                 shard_start_.begin() - 1);
  size_t written = 0;
  while (written < out.size()) {
    const TokenShard& shard = shards_[s];
    const int64_t offset = pos - shard_start_[s];
    const int64_t n =
        std::min<int64_t>(shard.size() - offset, static_cast<int64_t>(out.size() - written));
    const std::span<const uint16_t> tokens = shard.tokens().subspan(offset, n);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t id = tokens[i];
      if (id >= vocab_size_) {
        return Status::InvalidArgument(fmt::format(
            "{}: token {} at position {} is outside the model's vocabulary (model.vocab_size {}); "
            "the data was made with a larger tokenizer than the model expects",
            shard.path(), id, offset + i, vocab_size_));
      }
      out[written + i] = id;
    }
    written += n;
    pos += n;
    ++s;
  }
  return Status::OK();
}

Status TokenStream::ReadBatch(int64_t step_window, int64_t first, int64_t count, DataSlice slice,
                              std::span<int64_t> out) const {
  const size_t row = static_cast<size_t>(seq_len_ + 1);
  assert(out.size() == static_cast<size_t>(count) * row);
  for (int64_t j = 0; j < count; ++j) {
    const int64_t window = step_window + (first + j) * slice.world + slice.rank;
    ISOFLOP_RETURN_IF_ERROR(ReadWindow(window, out.subspan(static_cast<size_t>(j) * row, row)));
  }
  return Status::OK();
}

}  // namespace isoflop
