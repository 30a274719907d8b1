#include "common/data/token_shard.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <glob.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

namespace isoflop {

// The format is little-endian on disk and read in place through the mapping.
static_assert(std::endian::native == std::endian::little, "token shards are read in place");

namespace {

// Tokens gathered before one write(2): 2 MiB, large enough that system calls do not show in a
// profile.
constexpr std::size_t kWriteBufferTokens = std::size_t{1} << 20;

Status ErrnoStatus(const std::string& path, std::string_view what) {
  int error = errno;
  std::string message = fmt::format("{}: {}: {}", path, what, std::strerror(error));
  return error == ENOENT ? Status::NotFound(std::move(message))
                         : Status::IOError(std::move(message));
}

// write(2) until done: it may write less than asked, or be interrupted by a signal.
bool WriteAll(int fd, const void* data, std::size_t bytes, off_t offset) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    ssize_t n = offset < 0 ? ::write(fd, p, bytes) : ::pwrite(fd, p, bytes, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    bytes -= static_cast<std::size_t>(n);
    if (offset >= 0) offset += n;
  }
  return true;
}

// The rename of a finished shard is durable only once its directory entry is on disk too.
Status SyncDirectory(const std::string& file_path) {
  std::filesystem::path parent = std::filesystem::path(file_path).parent_path();
  const std::string dir = parent.empty() ? std::string(".") : parent.string();
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(dir, "cannot open directory to sync it");
  bool ok = ::fsync(fd) == 0;
  Status status = ok ? Status::OK() : ErrnoStatus(dir, "fsync of directory failed");
  ::close(fd);
  return status;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// TokenShard

TokenShard::TokenShard(std::string path, void* mapping, std::size_t mapping_bytes)
    : path_(std::move(path)), mapping_(mapping), mapping_bytes_(mapping_bytes) {
  const auto* header = static_cast<const std::int32_t*>(mapping_);
  const auto* body = reinterpret_cast<const std::uint16_t*>(static_cast<const char*>(mapping_) +
                                                            kShardHeaderBytes);
  tokens_ = std::span<const std::uint16_t>(body, static_cast<std::size_t>(header[2]));
}

TokenShard::TokenShard(TokenShard&& other) noexcept
    : path_(std::move(other.path_)),
      mapping_(std::exchange(other.mapping_, nullptr)),
      mapping_bytes_(std::exchange(other.mapping_bytes_, 0)),
      tokens_(std::exchange(other.tokens_, {})) {}

TokenShard& TokenShard::operator=(TokenShard&& other) noexcept {
  if (this != &other) {
    if (mapping_ != nullptr) ::munmap(mapping_, mapping_bytes_);
    path_ = std::move(other.path_);
    mapping_ = std::exchange(other.mapping_, nullptr);
    mapping_bytes_ = std::exchange(other.mapping_bytes_, 0);
    tokens_ = std::exchange(other.tokens_, {});
  }
  return *this;
}

TokenShard::~TokenShard() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_bytes_);
}

Result<TokenShard> TokenShard::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(path, "cannot open token shard");
  // The header is checked through pread before anything is mapped, so a wrong file (a text file, a
  // truncated download) fails with a message about its contents rather than a bus error later.
  struct stat info {};
  std::array<std::int32_t, kShardHeaderInts> header{};
  Status problem;
  if (::fstat(fd, &info) != 0) {
    problem = ErrnoStatus(path, "fstat failed");
  } else if (static_cast<std::size_t>(info.st_size) < kShardHeaderBytes) {
    problem =
        Status::Corruption(fmt::format("{}: file is {} bytes, shorter than the {}-byte header",
                                       path, info.st_size, kShardHeaderBytes));
  } else if (::pread(fd, header.data(), kShardHeaderBytes, 0) !=
             static_cast<ssize_t>(kShardHeaderBytes)) {
    problem = ErrnoStatus(path, "cannot read header");
  } else if (header[0] != kShardMagic) {
    problem = Status::Corruption(
        fmt::format("{}: bad magic {} (expected {})", path, header[0], kShardMagic));
  } else if (header[1] != kShardVersion) {
    problem = Status::Corruption(fmt::format(
        "{}: unsupported version {} (expected {}: uint16 tokens; llm.c's version 2 holds uint32)",
        path, header[1], kShardVersion));
  } else if (header[2] < 0) {
    problem = Status::Corruption(fmt::format("{}: negative token count {}", path, header[2]));
  } else {
    std::int64_t body_bytes = static_cast<std::int64_t>(info.st_size) - kShardHeaderBytes;
    if (body_bytes != std::int64_t{header[2]} * 2) {
      problem = Status::Corruption(fmt::format("{}: header says {} tokens but the file holds {}{}",
                                               path, header[2], body_bytes / 2,
                                               body_bytes % 2 != 0 ? " and a stray byte" : ""));
    }
  }
  if (!problem.ok()) {
    ::close(fd);
    return problem;
  }

  auto bytes = static_cast<std::size_t>(info.st_size);
  void* mapping = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  Status map_status = mapping == MAP_FAILED ? ErrnoStatus(path, "mmap failed") : Status::OK();
  ::close(fd);  // the mapping keeps the file open
  if (!map_status.ok()) return map_status;
  return TokenShard(path, mapping, bytes);
}

Result<std::span<const std::uint16_t>> TokenShard::Window(std::int64_t pos, std::int64_t n) const {
  if (pos < 0 || n < 0 || pos > size() || n > size() - pos) {
    return Status::InvalidArgument(fmt::format(
        "{}: window of {} tokens at {} is outside the shard's {} tokens", path_, n, pos, size()));
  }
  return tokens_.subspan(static_cast<std::size_t>(pos), static_cast<std::size_t>(n));
}

// ---------------------------------------------------------------------------------------------------
// TokenShardWriter

TokenShardWriter::TokenShardWriter(std::string path, std::string temp_path, int fd)
    : path_(std::move(path)), temp_path_(std::move(temp_path)), fd_(fd) {
  buffer_.reserve(kWriteBufferTokens);
}

TokenShardWriter::TokenShardWriter(TokenShardWriter&& other) noexcept
    : path_(std::move(other.path_)),
      temp_path_(std::move(other.temp_path_)),
      fd_(std::exchange(other.fd_, -1)),
      size_(other.size_),
      buffer_(std::move(other.buffer_)) {}

TokenShardWriter::~TokenShardWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temp_path_.c_str());
  }
}

Result<TokenShardWriter> TokenShardWriter::Create(const std::string& path) {
  // mkstemp gives each writer its own temporary name, so two processes preparing the same path
  // cannot write into one file. The name does not end in ".bin": ListShards never picks up a
  // leftover.
  std::string temp_path = path + ".tmp.XXXXXX";
  int fd = ::mkstemp(temp_path.data());
  if (fd < 0) return ErrnoStatus(path, "cannot create temporary shard file");
  // The header is written last, once the count is known; its space is reserved now.
  std::array<std::int32_t, kShardHeaderInts> zeros{};
  if (!WriteAll(fd, zeros.data(), kShardHeaderBytes, -1)) {
    Status status = ErrnoStatus(temp_path, "write failed");
    ::close(fd);
    ::unlink(temp_path.c_str());
    return status;
  }
  return TokenShardWriter(path, std::move(temp_path), fd);
}

Status TokenShardWriter::Append(std::span<const std::int32_t> tokens) {
  if (fd_ < 0) return Status::FailedPrecondition(fmt::format("{}: shard already finished", path_));
  auto bad = std::find_if(tokens.begin(), tokens.end(),
                          [](std::int32_t id) { return id < 0 || id > kMaxShardTokenId; });
  if (bad != tokens.end()) {
    return Status::InvalidArgument(fmt::format(
        "{}: token id {} does not fit the shard format's uint16 (vocabulary too large?)", path_,
        *bad));
  }
  if (static_cast<std::int64_t>(tokens.size()) > kMaxShardTokens - size_) {
    return Status::InvalidArgument(
        fmt::format("{}: more than {} tokens do not fit one shard", path_, kMaxShardTokens));
  }
  for (std::int32_t id : tokens) {
    buffer_.push_back(static_cast<std::uint16_t>(id));
    if (buffer_.size() == kWriteBufferTokens) ISOFLOP_RETURN_IF_ERROR(Flush());
  }
  size_ += static_cast<std::int64_t>(tokens.size());
  return Status::OK();
}

Status TokenShardWriter::Flush() {
  if (!WriteAll(fd_, buffer_.data(), buffer_.size() * sizeof(std::uint16_t), -1)) {
    return ErrnoStatus(temp_path_, "write failed");
  }
  buffer_.clear();
  return Status::OK();
}

Status TokenShardWriter::Finish() {
  if (fd_ < 0) return Status::FailedPrecondition(fmt::format("{}: shard already finished", path_));
  ISOFLOP_RETURN_IF_ERROR(Flush());
  std::array<std::int32_t, kShardHeaderInts> header{};
  header[0] = kShardMagic;
  header[1] = kShardVersion;
  header[2] = static_cast<std::int32_t>(size_);
  if (!WriteAll(fd_, header.data(), kShardHeaderBytes, 0)) {
    return ErrnoStatus(temp_path_, "header write failed");
  }
  // fsync before rename: otherwise a crash soon after could leave the new name on a file whose
  // blocks never reached the disk.
  if (::fsync(fd_) != 0) return ErrnoStatus(temp_path_, "fsync failed");
  if (::close(std::exchange(fd_, -1)) != 0) {
    Status status = ErrnoStatus(temp_path_, "close failed");
    ::unlink(temp_path_.c_str());
    return status;
  }
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    Status status = ErrnoStatus(path_, "cannot rename temporary shard into place");
    ::unlink(temp_path_.c_str());
    return status;
  }
  return SyncDirectory(path_);
}

// ---------------------------------------------------------------------------------------------------
// ListShards

Result<std::vector<std::string>> ListShards(const std::string& file_dir_or_glob) {
  namespace fs = std::filesystem;
  std::vector<std::string> shards;
  std::error_code error;
  fs::file_status status = fs::status(file_dir_or_glob, error);
  if (fs::is_regular_file(status)) {
    shards.push_back(file_dir_or_glob);
  } else if (fs::is_directory(status)) {
    for (const fs::directory_entry& entry : fs::directory_iterator(file_dir_or_glob, error)) {
      if (entry.is_regular_file() && entry.path().extension() == ".bin") {
        shards.push_back(entry.path().string());
      }
    }
    if (error) {
      return Status::IOError(
          fmt::format("{}: cannot list directory: {}", file_dir_or_glob, error.message()));
    }
  } else {
    glob_t matches{};
    int rc = ::glob(file_dir_or_glob.c_str(), GLOB_ERR, nullptr, &matches);
    if (rc == 0) {
      for (std::size_t i = 0; i < matches.gl_pathc; ++i) {
        if (fs::is_regular_file(matches.gl_pathv[i])) shards.emplace_back(matches.gl_pathv[i]);
      }
    }
    ::globfree(&matches);
    if (rc != 0 && rc != GLOB_NOMATCH) {
      return Status::IOError(fmt::format("{}: glob failed (code {})", file_dir_or_glob, rc));
    }
  }
  if (shards.empty()) {
    return Status::NotFound(fmt::format(
        "{}: no token shards (expected a .bin file, a directory of .bin files, or a glob)",
        file_dir_or_glob));
  }
  std::sort(shards.begin(), shards.end());
  return shards;
}

}  // namespace isoflop
