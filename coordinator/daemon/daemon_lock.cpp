#include "coordinator/daemon/daemon_lock.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace isoflop {
namespace {

std::optional<pid_t> ReadPid(int fd) {
  char buffer[32] = {};
  const ssize_t n = ::pread(fd, buffer, sizeof(buffer) - 1, 0);
  if (n <= 0) return std::nullopt;
  const long pid = std::strtol(buffer, nullptr, 10);
  if (pid <= 0) return std::nullopt;
  return static_cast<pid_t>(pid);
}

}  // namespace

Result<DaemonLock> DaemonLock::Acquire(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IOError(fmt::format("{}: {}", path, std::strerror(errno)));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    std::optional<pid_t> holder = ReadPid(fd);
    ::close(fd);
    if (error == EWOULDBLOCK) {
      return Status::FailedPrecondition(
          fmt::format("another isoflopd (pid {}) already runs on this state directory ({})",
                      holder ? std::to_string(*holder) : "?", path));
    }
    return Status::IOError(fmt::format("{}: cannot lock: {}", path, std::strerror(error)));
  }
  const std::string pid = fmt::format("{}\n", ::getpid());
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    const int error = errno;
    ::close(fd);
    return Status::IOError(fmt::format("{}: cannot write the pid: {}", path, std::strerror(error)));
  }
  return DaemonLock(fd);
}

std::optional<pid_t> DaemonLock::Holder(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::optional<pid_t> holder;
  if (::flock(fd, LOCK_SH | LOCK_NB) != 0) {
    holder = ReadPid(fd);
    // Locked by a daemon that has not written its pid yet: it exists all the same.
    if (!holder) holder = 0;
  }
  ::close(fd);  // releases the shared lock, if it was granted
  return holder;
}

DaemonLock::~DaemonLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace isoflop
