#include "coordinator/cli/daemon_control.h"

#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "coordinator/daemon/daemon_lock.h"
#include "coordinator/daemon/installation.h"

namespace isoflop {
namespace {

using namespace std::chrono_literals;

// Long enough for a submit of a 10,000-run sweep, which the daemon plans and stores before it
// answers.
constexpr auto kRequestTimeout = 120s;
constexpr auto kStopTimeout = 30s;

}  // namespace

std::optional<pid_t> RunningDaemon(const StateDir& state) {
  return DaemonLock::Holder(state.pid_file());
}

Result<DaemonClient> ConnectToDaemon(const StateDir& state) {
  Result<DaemonClient> client = DaemonClient::ConnectUnix(state.socket(), kRequestTimeout);
  if (!client.ok() && !RunningDaemon(state)) {
    return Status::NotFound(
        fmt::format("no isoflopd runs on {} (start one with `isoflop daemon start`)", state.root));
  }
  return client;
}

Status StartDaemon(const StateDir& state, const DaemonLaunchFlags& flags) {
  if (std::optional<pid_t> pid = RunningDaemon(state)) {
    return Status::FailedPrecondition(
        fmt::format("isoflopd (pid {}) already runs on {}", *pid, state.root));
  }
  std::vector<std::string> args = {FindDaemonBinary(), "--daemonize", "--state-dir", state.root};
  if (!flags.worker.empty()) args.insert(args.end(), {"--worker", flags.worker});
  if (flags.cpu_slots > 0)
    args.insert(args.end(), {"--cpu-slots", std::to_string(flags.cpu_slots)});
  if (!flags.listen.empty()) args.insert(args.end(), {"--listen", flags.listen});
  args.insert(args.end(), flags.extra.begin(), flags.extra.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  // The --daemonize parent exits once the daemon listens (0) or has failed (1, reason on stderr,
  // which is ours).
  pid_t pid = 0;
  if (const int rc = ::posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ);
      rc != 0) {
    return Status::IOError(fmt::format("cannot start {}: {}", args[0], std::strerror(rc)));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Status::IOError(fmt::format("isoflopd did not start (see {})", state.daemon_log()));
  }
  return Status::OK();
}

Result<DaemonClient> ConnectOrStartDaemon(const StateDir& state, const DaemonLaunchFlags& flags) {
  Result<DaemonClient> client = DaemonClient::ConnectUnix(state.socket(), kRequestTimeout);
  if (client.ok()) return client;
  if (!RunningDaemon(state)) {
    ISOFLOP_RETURN_IF_ERROR(state.Create());
    Status started = StartDaemon(state, flags);
    // Lost a race with another client starting the same daemon: use that one.
    if (!started.ok() && !RunningDaemon(state)) return started;
  }
  // A daemon holds the lock; it listens as soon as it has reconciled its runs.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  for (;;) {
    client = DaemonClient::ConnectUnix(state.socket(), kRequestTimeout);
    if (client.ok() || std::chrono::steady_clock::now() > deadline) return client;
    std::this_thread::sleep_for(20ms);
  }
}

Status StopDaemon(const StateDir& state) {
  std::optional<pid_t> pid = RunningDaemon(state);
  if (!pid) return Status::NotFound(fmt::format("no isoflopd runs on {}", state.root));
  Result<DaemonClient> client = DaemonClient::ConnectUnix(state.socket(), 10s);
  bool asked = false;
  if (client.ok()) asked = client->Call(protocol::Shutdown{}).ok();
  // A daemon that does not answer (still starting, or wedged) gets SIGTERM, which it handles the
  // same way.
  if (!asked && *pid > 0 && ::kill(*pid, SIGTERM) != 0 && errno != ESRCH) {
    return Status::IOError(fmt::format("cannot stop isoflopd (pid {}): {}", *pid, strerror(errno)));
  }
  const auto deadline = std::chrono::steady_clock::now() + kStopTimeout;
  while (RunningDaemon(state)) {
    if (std::chrono::steady_clock::now() > deadline) {
      return Status::IOError(fmt::format("isoflopd (pid {}) did not stop within {} s", *pid,
                                         std::chrono::seconds(kStopTimeout).count()));
    }
    std::this_thread::sleep_for(20ms);
  }
  return Status::OK();
}

}  // namespace isoflop
