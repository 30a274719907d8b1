// Processes on this host, as the launchers need them: start a worker detached from the coordinator,
// recognise it again after a coordinator restart, signal it and everything it started.
//
// Linux only (/proc, pidfd). A process is identified by (pid, start time, boot id), not by pid
// alone: pids are reused, and after a coordinator restart a stored pid may belong to an unrelated
// program.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace isoflop {

struct ProcessIdentity {
  pid_t pid = 0;
  uint64_t start_ticks = 0;  // /proc/<pid>/stat field 22: clock ticks after boot it started at
  std::string boot_id;       // /proc/sys/kernel/random/boot_id: start_ticks restart at each boot

  nlohmann::json ToJson() const;  // {"pid", "start_ticks", "boot_id"}
  bool operator==(const ProcessIdentity&) const = default;
  static Result<ProcessIdentity> FromJson(const nlohmann::json& json);
};

// The identity of process `pid`, running or exited but not yet reaped (so a child that ends at once
// can still be identified by its parent). NotFound when there is no such process.
Result<ProcessIdentity> IdentifyProcess(pid_t pid);
// True while the process that `identity` names runs: same pid, same start time, same boot, not a
// zombie. A pid now used by another program is false.
bool IsRunning(const ProcessIdentity& identity);

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is the program's path: no PATH search, no shell
  // Added to (or replacing) the coordinator's own environment.
  std::vector<std::pair<std::string, std::string>> env;
  std::string log_path;     // stdout and stderr, appended; created with mode 0644
  std::string working_dir;  // empty: the coordinator's
};

// Starts argv[0] in a new process group whose id is its pid, stdin from /dev/null, stdout and
// stderr appended to log_path, default signal dispositions and an empty signal mask, and no
// descriptor of the coordinator beyond 0-2. It is a child of the caller (reap it with waitpid), yet
// a SIGKILL of the caller does not reach it. IOError with the reason when it could not start (exec
// failure included: the program missing or not executable).
Result<pid_t> SpawnProcessGroup(const SpawnOptions& options);

// Sends `signal` to the process group `pid` leads and to every descendant of `pid` (found through
// /proc before signalling), so that helpers that made their own groups (mpirun's ranks) are reached
// too. OK when nothing is left to signal.
Status SignalProcessTree(pid_t pid, int signal);

// The pid of a running process whose environment holds `entry` ("KEY=VALUE") exactly, if any:
// finds a worker started just before a crash, whose pid never reached the database.
std::optional<pid_t> FindProcessWithEnvironment(const std::string& entry);

// Opens a pidfd for `identity` (pidfd_open, then a check that the pid still names that process).
// The descriptor becomes readable when the process exits, whether or not it is our child. NotFound
// when the process has already gone; FailedPrecondition when the kernel has no pidfd_open.
Result<int> OpenPidfd(const ProcessIdentity& identity);

// This machine's host name, for attempts and provenance.
std::string HostName();

}  // namespace isoflop
