// isoflopd: the isoflop coordinator daemon (system.md section 8; daemon.h).
//
//   isoflopd [--state-dir DIR] [--daemonize] [--listen HOST:PORT] [--cpu-slots N] [--worker PATH]
//   ...
//
// `isoflop submit` and `isoflop daemon start` start it with --daemonize when none runs: the parent
// returns once the daemon listens (exit 0) or has failed (exit 1, the reason on stderr), so the
// client can connect at once. Logs go to STATE/logs/isoflopd.log (and stderr in the foreground).
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "coordinator/daemon/daemon.h"
#include "coordinator/daemon/installation.h"

namespace {

using namespace isoflop;

// The write end of the pipe the --daemonize parent waits on; -1 in the foreground.
int ready_fd = -1;

void ReportReady(const std::string& message) {
  if (ready_fd < 0) return;
  const std::string line = message + "\n";
  if (::write(ready_fd, line.data(), line.size()) < 0) {
    // The parent is gone; nobody is waiting for the answer.
  }
  ::close(ready_fd);
  ready_fd = -1;
}

// Forks; the parent waits for the child's first report and exits with it. Returns in the child.
void Daemonize() {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    std::perror("isoflopd: pipe");
    std::exit(1);
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    std::perror("isoflopd: fork");
    std::exit(1);
  }
  if (pid > 0) {
    ::close(pipe_fds[1]);
    std::string report;
    char buffer[4096];
    ssize_t n = 0;
    while ((n = ::read(pipe_fds[0], buffer, sizeof(buffer))) > 0) report.append(buffer, n);
    if (report.rfind("ready", 0) == 0) std::_Exit(0);
    std::fprintf(stderr, "isoflopd: %s",
                 report.empty() ? "exited before it was ready\n" : report.c_str());
    std::_Exit(1);
  }
  ::close(pipe_fds[0]);
  ready_fd = pipe_fds[1];
  // A session of its own: the terminal closing (SIGHUP) or a Ctrl-C there does not reach it.
  ::setsid();
}

void DetachStdio() {
  const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) return;
  ::dup2(null_fd, STDIN_FILENO);
  ::dup2(null_fd, STDOUT_FILENO);
  ::dup2(null_fd, STDERR_FILENO);
  ::close(null_fd);
}

void SetUpLogging(const StateDir& state, bool to_stderr, const std::string& level) {
  std::vector<spdlog::sink_ptr> sinks;
  // A full log rotates instead of filling the disk: three files of 16 MiB.
  sinks.push_back(
      std::make_shared<spdlog::sinks::rotating_file_sink_mt>(state.daemon_log(), 16 << 20, 3));
  if (to_stderr) sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  auto logger = std::make_shared<spdlog::logger>("isoflopd", sinks.begin(), sinks.end());
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e [%l] %v");
  logger->set_level(spdlog::level::from_str(level));
  // Logs are read while the daemon runs (and after a kill -9): every line reaches the file at once.
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"isoflopd: the isoflop coordinator (scheduler, launchers, results database)"};
  std::string state_flag, worker_flag, log_level = "info";
  bool daemonize = false;
  DaemonOptions options;
  double ingest_interval_ms = static_cast<double>(options.supervisor.ingest_interval.count());
  app.add_option("--state-dir", state_flag,
                 "state directory (default $ISOFLOP_STATE_DIR or ./.isoflop)");
  app.add_flag("--daemonize", daemonize, "run in the background; return once listening");
  app.add_option("--listen", options.listen,
                 "also serve TCP on HOST:PORT (clients must present STATE/token)");
  app.add_option("--worker", worker_flag,
                 "worker binary (default $ISOFLOP_WORKER, then the build tree's isoflop-worker)");
  app.add_option("--mpirun", options.mpirun, "mpirun for the mpi launcher")->capture_default_str();
  app.add_option("--slurm-template", options.slurm.template_path,
                 "batch script template for the slurm launcher (default: the compiled-in "
                 "cluster/slurm_job.sbatch.in)");
  double slurm_poll_min_s = options.slurm.poll_min.count() / 1000.0;
  double slurm_poll_max_s = options.slurm.poll_max.count() / 1000.0;
  app.add_option("--slurm-poll-min", slurm_poll_min_s,
                 "seconds between squeue polls after a change; doubles while nothing changes")
      ->capture_default_str();
  app.add_option("--slurm-poll-max", slurm_poll_max_s, "longest interval between squeue polls")
      ->capture_default_str();
  app.add_option("--cpu-slots", options.slots.cpu_slots,
                 "run on N CPU slots even if GPUs are present (default: the GPUs, else one slot "
                 "per core)");
  app.add_option("--heartbeat-timeout", options.supervisor.heartbeat_timeout_s,
                 fmt::format("seconds without a sign of life from a running worker before it "
                             "counts as hung and is retried (LOST): heartbeats and records over "
                             "the daemon socket, or growth of its metrics.jsonl. Heartbeats go on "
                             "through evaluations and checkpoints, and stop after {:g}x this long "
                             "without a record (a trainer that hangs)",
                             kMaxSilenceTimeouts))
      ->capture_default_str();
  app.add_option("--ingest-interval-ms", ingest_interval_ms,
                 "how often worker records (from metrics.jsonl and the socket) are stored")
      ->capture_default_str();
  app.add_option("--kill-grace", options.supervisor.kill_grace_s,
                 "seconds between SIGTERM and SIGKILL when cancelling a run")
      ->capture_default_str();
  app.add_option("--max-infra-retries", options.supervisor.retry.max_infra_retries,
                 "retries per run after infrastructure faults and hangs")
      ->capture_default_str();
  app.add_option("--retry-backoff", options.supervisor.retry.backoff_base_s,
                 "seconds before the first retry; doubles each time")
      ->capture_default_str();
  app.add_option("--retry-backoff-max", options.supervisor.retry.backoff_max_s,
                 "longest wait before a retry")
      ->capture_default_str();
  app.add_option("--crash-loop", options.supervisor.retry.crash_loop_attempts,
                 "this many quick identical failures in a row stop the retries (0: never)")
      ->capture_default_str();
  app.add_option("--crash-loop-window", options.supervisor.retry.crash_loop_window_s,
                 "an attempt shorter than this many seconds counts as quick")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  app.add_flag_callback("--version", [] {
    std::printf("isoflopd %s\n", VersionString().c_str());
    std::exit(0);
  });
  CLI11_PARSE(app, argc, argv);
  options.supervisor.ingest_interval =
      std::chrono::milliseconds(static_cast<int64_t>(std::max(1.0, ingest_interval_ms)));
  options.slurm.poll_min =
      std::chrono::milliseconds(static_cast<int64_t>(std::max(0.01, slurm_poll_min_s) * 1000));
  options.slurm.poll_max = std::max(
      options.slurm.poll_min,
      std::chrono::milliseconds(static_cast<int64_t>(std::max(0.01, slurm_poll_max_s) * 1000)));
  options.state = StateDir::Resolve(state_flag);
  options.worker_path = FindWorkerBinary(worker_flag);

  if (daemonize) Daemonize();
  // A client that disconnects mid-reply must not kill the daemon.
  ::signal(SIGPIPE, SIG_IGN);
  if (Status created = options.state.Create(); !created.ok()) {
    ReportReady(created.message());
    std::fprintf(stderr, "isoflopd: %s\n", created.message().c_str());
    return 1;
  }
  SetUpLogging(options.state, /*to_stderr=*/!daemonize, log_level);

  Result<std::unique_ptr<Daemon>> daemon = Daemon::Start(std::move(options));
  if (!daemon.ok()) {
    spdlog::error("{}", daemon.status().message());
    ReportReady(daemon.status().message());
    return 1;
  }
  if (daemonize) DetachStdio();
  ReportReady("ready");
  (*daemon)->Run();
  return 0;
}
