// Token shards: the llm.c / modded-nanogpt `.bin` format, so users can bring existing shards
// (FineWeb).
//
//   header: 256 little-endian int32: [0] magic 20240520, [1] version 1, [2] token count, rest zero
//   body:   token count little-endian uint16 token ids
//
// TokenShardWriter makes a shard appear whole or not at all; TokenShard maps one read-only and
// checks that its header and size agree before any token is read. Neither needs a tokenizer or
// LibTorch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace isoflop {

inline constexpr std::int32_t kShardMagic = 20240520;
inline constexpr std::int32_t kShardVersion = 1;
inline constexpr std::size_t kShardHeaderInts = 256;
inline constexpr std::size_t kShardHeaderBytes = kShardHeaderInts * sizeof(std::int32_t);
// Token ids are stored as uint16, and the header's count is an int32.
inline constexpr std::int64_t kMaxShardTokenId = 65535;
inline constexpr std::int64_t kMaxShardTokens = INT32_MAX;

// A shard mapped read-only. Move-only; the mapping lives as long as the object.
class TokenShard {
 public:
  // Maps `path` and validates it. Errors name the path and what is wrong, e.g.
  //   "data/x.bin: bad magic 1234 (expected 20240520)"
  //   "data/x.bin: header says 1000 tokens but the file holds 998"
  // NotFound / IOError when it cannot be opened or mapped, Corruption when the contents are wrong.
  static Result<TokenShard> Open(const std::string& path);

  TokenShard(TokenShard&& other) noexcept;
  TokenShard& operator=(TokenShard&& other) noexcept;
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;
  ~TokenShard();

  const std::string& path() const { return path_; }
  std::int64_t size() const { return static_cast<std::int64_t>(tokens_.size()); }
  std::span<const std::uint16_t> tokens() const { return tokens_; }

  // Tokens [pos, pos + n) as a view into the mapping: no copy, no system call. Pages are read from
  // disk when first touched. InvalidArgument, naming the shard, when the window does not lie inside
  // it.
  Result<std::span<const std::uint16_t>> Window(std::int64_t pos, std::int64_t n) const;

 private:
  TokenShard(std::string path, void* mapping, std::size_t mapping_bytes);

  std::string path_;
  void* mapping_ = nullptr;  // the whole file, header included
  std::size_t mapping_bytes_ = 0;
  std::span<const std::uint16_t> tokens_;
};

// Writes one shard. Tokens go to a temporary file beside `path` (same directory, so the final
// rename is atomic); Finish() writes the header, syncs and renames. A writer destroyed before
// Finish() succeeds removes its temporary file, so a crash or an error never leaves a half-written
// shard at `path`.
class TokenShardWriter {
 public:
  // IOError when the temporary file cannot be created (e.g. the directory does not exist).
  static Result<TokenShardWriter> Create(const std::string& path);

  TokenShardWriter(TokenShardWriter&& other) noexcept;
  TokenShardWriter& operator=(TokenShardWriter&& other) = delete;
  TokenShardWriter(const TokenShardWriter&) = delete;
  TokenShardWriter& operator=(const TokenShardWriter&) = delete;
  ~TokenShardWriter();

  // Appends all of `tokens`. InvalidArgument, with nothing appended, when an id is outside
  // [0, 65535] (the format stores uint16) or the shard would pass kMaxShardTokens. IOError when the
  // disk write fails; the shard is then abandoned, as after a failed Finish().
  Status Append(std::span<const std::int32_t> tokens);

  // Tokens appended so far.
  std::int64_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Header, fsync, rename to path(), fsync of the directory. After an error the shard is abandoned
  // (the destructor removes the temporary file); Append and Finish must not be called again.
  Status Finish();

 private:
  TokenShardWriter(std::string path, std::string temp_path, int fd);
  Status Flush();

  std::string path_;
  std::string temp_path_;
  int fd_ = -1;  // -1 once finished or moved from
  std::int64_t size_ = 0;
  std::vector<std::uint16_t> buffer_;  // tokens not yet written to fd_
};

// The shards a data path names, sorted by path: the file itself; every *.bin directly inside a
// directory; or every file a glob pattern (e.g. "data/fineweb_train_*.bin") matches. NotFound when
// it names nothing. Shards are not opened here.
Result<std::vector<std::string>> ListShards(const std::string& file_dir_or_glob);

}  // namespace isoflop
