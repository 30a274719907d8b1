#include "worker/runtime/checkpoint.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <memory>

namespace isoflop {
namespace {

namespace fs = std::filesystem;

constexpr char kTrailerMagic[8] = {'I', 'S', 'O', 'F', 'C', 'K', 'P', 'T'};
constexpr size_t kDigestBytes = 32;
constexpr size_t kTrailerBytes = sizeof(kTrailerMagic) + sizeof(uint64_t) + kDigestBytes;
using Digest = std::array<unsigned char, kDigestBytes>;

Status Errno(const std::string& path, const char* what) {
  return Status::IOError(fmt::format("{}: {}: {}", path, what, std::strerror(errno)));
}

// SHA-256 over pieces fed one by one (OpenSSL's EVP interface).
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr);
  }
  void Update(const void* data, size_t n) { EVP_DigestUpdate(ctx_.get(), data, n); }
  Digest Finish() {
    Digest digest{};
    unsigned int length = 0;
    EVP_DigestFinal_ex(ctx_.get(), digest.data(), &length);
    return digest;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx_;
};

Status WriteAll(int fd, const std::string& path, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t written = ::write(fd, p, n);
    if (written < 0) {
      if (errno == EINTR) continue;
      return Errno(path, "write");
    }
    p += written;
    n -= static_cast<size_t>(written);
  }
  return Status::OK();
}

Status SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno(dir, "open");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Errno(dir, "fsync");
  return Status::OK();
}

// "ckpt_<digits>.pt" -> the step.
bool ParseCheckpointName(const std::string& name, int64_t* step) {
  constexpr std::string_view kPrefix = "ckpt_", kSuffix = ".pt";
  if (name.size() <= kPrefix.size() + kSuffix.size() || !name.starts_with(kPrefix) ||
      !name.ends_with(kSuffix)) {
    return false;
  }
  const char* first = name.data() + kPrefix.size();
  const char* last = name.data() + name.size() - kSuffix.size();
  const auto [end, ec] = std::from_chars(first, last, *step);
  return ec == std::errc() && end == last;
}

// A read-only mapping of a whole file, unmapped on destruction.
class MappedFile {
 public:
  static Result<MappedFile> Open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Errno(path, "open");
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      return Errno(path, "stat");
    }
    MappedFile file;
    file.size_ = static_cast<size_t>(st.st_size);
    if (file.size_ > 0) {
      void* data = ::mmap(nullptr, file.size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (data == MAP_FAILED) {
        ::close(fd);
        return Errno(path, "mmap");
      }
      file.data_ = static_cast<const char*>(data);
    }
    ::close(fd);
    return file;
  }
  MappedFile(MappedFile&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  MappedFile& operator=(MappedFile&&) = delete;
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<char*>(data_), size_);
  }
  const char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  MappedFile() = default;
  const char* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace

void WriteTensors(torch::serialize::OutputArchive& archive, const std::string& key,
                  const NamedTensors& tensors) {
  torch::serialize::OutputArchive out;
  std::string names;
  for (size_t i = 0; i < tensors.size(); ++i) {
    names += tensors[i].first + "\n";
    out.write(std::to_string(i), tensors[i].second.detach(), /*is_buffer=*/true);
  }
  out.write("names", c10::IValue(names));
  archive.write(key, out);
}

Status ReadTensors(torch::serialize::InputArchive& archive, const std::string& key,
                   const NamedTensors& into) {
  torch::NoGradGuard no_grad;
  try {
    torch::serialize::InputArchive in;
    archive.read(key, in);
    c10::IValue names;
    in.read("names", names);
    std::string expected;
    for (const auto& [name, tensor] : into) expected += name + "\n";
    if (!names.isString() || names.toStringRef() != expected) {
      return Status::FailedPrecondition(fmt::format(
          "checkpoint's {} holds other tensors than this run's (another model or code version)",
          key));
    }
    for (size_t i = 0; i < into.size(); ++i) {
      torch::Tensor saved;
      in.read(std::to_string(i), saved, /*is_buffer=*/true);
      torch::Tensor target = into[i].second;
      if (!saved.sizes().equals(target.sizes())) {
        return Status::FailedPrecondition(
            fmt::format("checkpoint's {} has {} of shape {}, this run's is {}", key, into[i].first,
                        c10::str(saved.sizes()), c10::str(target.sizes())));
      }
      target.copy_(saved);
    }
  } catch (const c10::Error& e) {
    return Status::Corruption(
        fmt::format("checkpoint's {} cannot be read: {}", key, e.what_without_backtrace()));
  }
  return Status::OK();
}

Result<CheckpointDir> CheckpointDir::Open(const std::string& dir, std::string run_id) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::IOError(fmt::format("{}: cannot create: {}", dir, ec.message()));
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("ckpt_") && name.ends_with(".tmp")) fs::remove(entry.path(), ec);
  }
  if (ec) return Status::IOError(fmt::format("{}: cannot list: {}", dir, ec.message()));
  return CheckpointDir(dir, std::move(run_id));
}

std::vector<CheckpointFile> CheckpointDir::List() const {
  std::vector<CheckpointFile> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    CheckpointFile file;
    if (!entry.is_regular_file(ec) ||
        !ParseCheckpointName(entry.path().filename().string(), &file.step)) {
      continue;
    }
    file.path = entry.path().string();
    file.bytes = static_cast<int64_t>(entry.file_size(ec));
    files.push_back(std::move(file));
  }
  std::sort(files.begin(), files.end(),
            [](const CheckpointFile& a, const CheckpointFile& b) { return a.step < b.step; });
  return files;
}

Result<CheckpointFile> CheckpointDir::Write(int64_t step,
                                            torch::serialize::OutputArchive& archive) {
  archive.write("run_id", c10::IValue(run_id_));
  archive.write("step", c10::IValue(step));

  CheckpointFile file;
  file.step = step;
  file.path = (fs::path(dir_) / fmt::format("ckpt_{}.pt", step)).string();
  const std::string temp_path = file.path + ".tmp";
  const int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno(temp_path, "open");
  // Until the rename, any failure leaves only the temporary file, removed here.
  auto abandon = [&](Status status) -> Result<CheckpointFile> {
    ::close(fd);
    ::unlink(temp_path.c_str());
    return status;
  };

  Sha256 sha;
  uint64_t payload_bytes = 0;
  Status write_status;
  try {
    archive.save_to([&](const void* data, size_t n) -> size_t {
      if (!write_status.ok()) return 0;
      write_status = WriteAll(fd, temp_path, data, n);
      if (!write_status.ok()) return 0;
      sha.Update(data, n);
      payload_bytes += n;
      return n;
    });
  } catch (const c10::Error& e) {
    return abandon(write_status.ok() ? Status::IOError(fmt::format("{}: {}", temp_path,
                                                                   e.what_without_backtrace()))
                                     : write_status);
  }
  const Digest digest = sha.Finish();
  char trailer[kTrailerBytes];
  std::memcpy(trailer, kTrailerMagic, sizeof(kTrailerMagic));
  for (int i = 0; i < 8; ++i) trailer[8 + i] = static_cast<char>((payload_bytes >> (8 * i)) & 0xff);
  std::memcpy(trailer + 16, digest.data(), kDigestBytes);
  if (Status st = WriteAll(fd, temp_path, trailer, kTrailerBytes); !st.ok()) return abandon(st);
  if (::fsync(fd) != 0) return abandon(Errno(temp_path, "fsync"));
  if (::close(fd) != 0) {
    ::unlink(temp_path.c_str());
    return Errno(temp_path, "close");
  }
  if (::rename(temp_path.c_str(), file.path.c_str()) != 0) {
    const Status st = Errno(file.path, "rename");
    ::unlink(temp_path.c_str());
    return st;
  }
  ISOFLOP_RETURN_IF_ERROR(SyncDirectory(dir_));
  file.bytes = static_cast<int64_t>(payload_bytes + kTrailerBytes);

  // Keep this checkpoint and the one before it: if this one is damaged later, the run loses one
  // checkpoint interval, not the whole run.
  std::vector<CheckpointFile> files = List();
  for (size_t i = 0; i + 2 < files.size(); ++i) {
    if (files[i].step != step && ::unlink(files[i].path.c_str()) != 0) {
      spdlog::warn("cannot delete old checkpoint {}: {}", files[i].path, std::strerror(errno));
    }
  }
  return file;
}

Status CheckpointDir::Load(const CheckpointFile& file, torch::serialize::InputArchive* archive,
                           torch::Device device) const {
  Result<MappedFile> mapped = MappedFile::Open(file.path);
  if (!mapped.ok()) return mapped.status();
  const char* data = mapped->data();
  const size_t size = mapped->size();
  if (size < kTrailerBytes) {
    return Status::Corruption(
        fmt::format("{}: {} bytes, too short for a checkpoint", file.path, size));
  }
  const char* trailer = data + size - kTrailerBytes;
  uint64_t payload_bytes = 0;
  for (int i = 0; i < 8; ++i) {
    payload_bytes |= static_cast<uint64_t>(static_cast<unsigned char>(trailer[8 + i])) << (8 * i);
  }
  if (std::memcmp(trailer, kTrailerMagic, sizeof(kTrailerMagic)) != 0 ||
      payload_bytes != size - kTrailerBytes) {
    return Status::Corruption(fmt::format(
        "{}: no checkpoint trailer at its end (truncated or not a checkpoint)", file.path));
  }
  Sha256 sha;
  sha.Update(data, payload_bytes);
  if (sha.Finish() != *reinterpret_cast<const Digest*>(trailer + 16)) {
    return Status::Corruption(fmt::format("{}: checksum mismatch", file.path));
  }
  try {
    archive->load_from(data, payload_bytes, device);
  } catch (const c10::Error& e) {
    return Status::Corruption(fmt::format("{}: {}", file.path, e.what_without_backtrace()));
  }
  return Status::OK();
}

Result<CheckpointFile> CheckpointDir::LoadNewest(torch::serialize::InputArchive* archive,
                                                 torch::Device device) {
  std::vector<CheckpointFile> files = List();
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    const Status status = Load(*it, archive, device);
    if (status.code() == Status::Code::kCorruption) {
      const std::string aside = it->path + ".corrupt";
      spdlog::warn("{}; set aside as {}, trying the previous checkpoint", status.message(), aside);
      if (::rename(it->path.c_str(), aside.c_str()) != 0) return Errno(it->path, "rename");
      continue;
    }
    ISOFLOP_RETURN_IF_ERROR(status);
    c10::IValue run_id, step;
    try {
      archive->read("run_id", run_id);
      archive->read("step", step);
    } catch (const c10::Error& e) {
      return Status::Corruption(fmt::format("{}: {}", it->path, e.what_without_backtrace()));
    }
    if (!run_id.isString() || run_id.toStringRef() != run_id_) {
      return Status::FailedPrecondition(fmt::format(
          "{} belongs to run {}, not to this run {}: refusing to resume another run's weights "
          "(remove the run directory's checkpoints to start over)",
          it->path, run_id.isString() ? run_id.toStringRef() : "?", run_id_));
    }
    if (!step.isInt() || step.toInt() != it->step) {
      return Status::Corruption(fmt::format("{}: holds step {}, its name says {}", it->path,
                                            step.isInt() ? step.toInt() : -1, it->step));
    }
    return *it;
  }
  return Status::NotFound(fmt::format("{}: no checkpoint to resume from", dir_));
}

}  // namespace isoflop
