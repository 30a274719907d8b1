// Launchers that start worker processes on this host: LocalLauncher (the worker itself) and
// MpiLauncher (mpirun around it). They differ only in the command line; starting, watching,
// recognising after a restart and stopping are the same, and live in ProcessLauncher.
//
// Every launched process gets, beyond the coordinator's environment:
//   CUDA_VISIBLE_DEVICES  the slot's GPUs (GPU slots only)
//   NCCL_NVLS_ENABLE=0    unless the coordinator's environment sets it: NVLink SHARP multicast
//   needs
//                         fabric-manager support that shared and virtualised nodes lack
//   ISOFLOP_RUN_ID, ISOFLOP_ATTEMPT=<run id>/<attempt>
//   ISOFLOP_DAEMON, ISOFLOP_TOKEN, ISOFLOP_HEARTBEAT_INTERVAL, ISOFLOP_MAX_SILENCE: where and how
//                         rank 0 reports over the daemon's socket (ReportingEnvironment), when the
//                         request says
// ISOFLOP_ATTEMPT lets a restarted coordinator find a worker that started in the instant between
// the launch and the moment its pid was stored (FindProcessWithEnvironment); the reporter reads the
// run and attempt it reports for from it too.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "coordinator/launcher/launcher.h"
#include "coordinator/launcher/process_reaper.h"

namespace isoflop {

// The marker a launched worker carries in its environment.
std::string AttemptMarker(const std::string& run_id,
                          int64_t attempt);  // "ISOFLOP_ATTEMPT=<id>/<n>"

class ProcessLauncher : public Launcher {
 public:
  Result<LaunchedJob> Launch(const LaunchRequest& request, ExitCallback on_exit) override;
  Result<bool> Reattach(const nlohmann::json& handle, ExitCallback on_exit) override;
  nlohmann::json Find(const std::string& run_id, int64_t attempt) override;
  Status Cancel(const nlohmann::json& handle, bool graceful) override;
  std::string Describe(const nlohmann::json& handle) const override;

  // The command and the environment additions for one attempt (exposed for tests).
  struct Command {
    std::vector<std::string> argv;
    std::vector<std::pair<std::string, std::string>> env;
  };
  virtual Result<Command> BuildCommand(const LaunchRequest& request) const = 0;
  // Facts about the launch environment for the run's provenance (LaunchedJob::provenance).
  virtual nlohmann::json LaunchProvenance() { return nlohmann::json::object(); }

 protected:
  ProcessLauncher(ProcessReaper& reaper, std::string worker_path);
  // The worker's own command line and environment, which both launchers start from.
  Command WorkerCommand(const LaunchRequest& request) const;

 private:
  ProcessReaper& reaper_;
  std::string worker_path_;
  std::string host_;
};

// One worker process per attempt, started directly (fork/exec, no shell).
class LocalLauncher : public ProcessLauncher {
 public:
  LocalLauncher(ProcessReaper& reaper, std::string worker_path)
      : ProcessLauncher(reaper, std::move(worker_path)) {}
  const char* name() const override { return "local"; }
  Result<Command> BuildCommand(const LaunchRequest& request) const override;
};

// `mpirun -np <ranks>` around the worker: Open MPI, on this host. Run as root (containers) it adds
// --allow-run-as-root; on CPU slots --oversubscribe (a slot is a process, not a core Open MPI
// counted); always --bind-to none (several jobs share the host and must not pin to the same
// cores); -x exports the CUDA, NCCL and isoflop variables to every rank.
class MpiLauncher : public ProcessLauncher {
 public:
  // mpirun: a path, or a name looked up in PATH when the launcher is built.
  MpiLauncher(ProcessReaper& reaper, std::string worker_path, std::string mpirun = "mpirun");
  const char* name() const override { return "mpi"; }
  Result<Command> BuildCommand(const LaunchRequest& request) const override;
  // {"mpi": first line of `mpirun --version`}, asked once, at the first launch.
  nlohmann::json LaunchProvenance() override;

 private:
  std::string mpirun_;  // empty when it was not found
  std::string mpirun_name_;
  std::string mpi_version_;  // "" until the first launch asks
};

}  // namespace isoflop
