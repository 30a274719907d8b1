#include "worker/runtime/metrics_writer.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace isoflop {
namespace {

Status Errno(const std::string& path, const char* what) {
  return Status::IOError(fmt::format("{}: {}: {}", path, what, std::strerror(errno)));
}

// write(2) until all of `data` is out: one call for any record of realistic size; the loop only
// matters for a signal or a full disk, where the record is torn anyway.
Status WriteAll(int fd, const std::string& path, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno(path, "write");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::OK();
}

}  // namespace

Result<MetricsWriter> MetricsWriter::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Errno(path, "open");
  MetricsWriter writer(path, fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) return Errno(path, "stat");
  if (st.st_size > 0) {
    char last = '\n';
    if (::pread(fd, &last, 1, st.st_size - 1) != 1) return Errno(path, "read");
    if (last != '\n') ISOFLOP_RETURN_IF_ERROR(WriteAll(fd, path, "\n"));
  }
  return writer;
}

MetricsWriter::MetricsWriter(MetricsWriter&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      sink_(std::move(other.sink_)) {}

MetricsWriter::~MetricsWriter() {
  if (fd_ >= 0) ::close(fd_);
}

Status MetricsWriter::Append(const nlohmann::json& record) {
  if (fd_ < 0) return Status::OK();  // Discarding()
  // Non-finite numbers (a diverged loss) have no JSON spelling; nlohmann writes them as null, which
  // readers see as "no value" rather than a parse error.
  std::string line =
      record.dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace);
  line.push_back('\n');
  ISOFLOP_RETURN_IF_ERROR(WriteAll(fd_, path_, line));
  if (sink_) sink_(record);
  return Status::OK();
}

Status MetricsWriter::Sync() {
  if (fd_ < 0) return Status::OK();
  if (::fsync(fd_) != 0) return Errno(path_, "fsync");
  return Status::OK();
}

}  // namespace isoflop
