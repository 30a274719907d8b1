#include "common/atomic_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace isoflop {

namespace {

Status Errno(const std::string& path, const char* what) {
  return Status::IOError(fmt::format("{}: cannot {}: {}", path, what, std::strerror(errno)));
}

// Writes all of `text` to fd, retrying short writes and EINTR.
bool WriteAll(int fd, const std::string& text) {
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    left -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

Status WriteFileAtomically(const std::string& path, const std::string& text) {
  // A name of this process's own, so that two writers of one path never share a temporary.
  const std::string temporary = fmt::format("{}.tmp.{}", path, ::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno(temporary, "create");
  // fsync before the rename: otherwise a crash can leave the new name pointing at an empty file.
  const bool written = WriteAll(fd, text) && ::fsync(fd) == 0;
  const int saved_errno = errno;
  ::close(fd);
  if (!written) {
    ::unlink(temporary.c_str());
    errno = saved_errno;
    return Errno(temporary, "write");
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const Status failed = Errno(path, "rename into place");
    ::unlink(temporary.c_str());
    return failed;
  }
  // The rename itself is durable once the directory is synced.
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const std::filesystem::path dir = parent.empty() ? std::filesystem::path(".") : parent;
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return Status::OK();
}

}  // namespace isoflop
