// DaemonLock: one isoflopd per state directory.
//
// The daemon holds an exclusive flock on STATE/isoflopd.pid for its whole life and writes its pid
// there. The kernel drops the lock when the process dies, kill -9 included, so a stale pid file
// never blocks a restart, and two daemons can never write one database. The file is opened
// close-on-exec and workers get no descriptor beyond 0-2, so a worker that outlives its daemon does
// not keep the lock.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "common/status.h"

namespace isoflop {

class DaemonLock {
 public:
  // Takes the lock and writes this process's pid. FailedPrecondition naming the pid of the daemon
  // that holds it; IOError when the file cannot be opened.
  static Result<DaemonLock> Acquire(const std::string& path);
  // The pid written by the daemon that holds the lock at `path`, or nullopt when none holds it.
  static std::optional<pid_t> Holder(const std::string& path);

  DaemonLock(DaemonLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  DaemonLock& operator=(DaemonLock&&) = delete;
  DaemonLock(const DaemonLock&) = delete;
  DaemonLock& operator=(const DaemonLock&) = delete;
  // Releases the lock. The file stays: removing it could remove the file a new daemon just locked.
  ~DaemonLock();

 private:
  explicit DaemonLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace isoflop
