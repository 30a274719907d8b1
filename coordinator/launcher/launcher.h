// Launcher: how one attempt of a run becomes running worker processes (system.md section 8).
//
// Implementations: LocalLauncher (one process on this host), MpiLauncher (`mpirun -np k` on this
// host), and a Slurm launcher (a batch job) behind the same interface. The coordinator knows a
// launched job only by the JSON handle a launcher returns; the handle is stored with the attempt,
// so that after a coordinator restart the same launcher can find the job again (Reattach). A
// launched job never depends on the coordinator staying alive.
//
// All methods are called from the coordinator's single event-loop thread, and exit callbacks run on
// it too (posted, never from inside the call that registered them).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"
#include "coordinator/protocol/daemon_reporter.h"

namespace isoflop {

struct LaunchRequest {
  std::string run_id;
  int64_t attempt = 0;
  std::string run_dir;      // the worker's --run-dir: metrics.jsonl, checkpoints/
  std::string config_path;  // the worker's --config: run.json
  std::string log_path;     // the worker's stdout and stderr
  // Device ids for CUDA_VISIBLE_DEVICES, one per rank; empty when the run takes CPU slots.
  std::vector<std::string> gpus;
  int64_t ranks = 1;  // worker processes: the run's `gpus`, on GPUs or CPU slots alike
  // Where and how rank 0 reports to the coordinator over its socket, passed in the environment
  // (daemon_reporter.h); an empty address: through metrics.jsonl alone.
  ReportingSettings reporting;
};

struct LaunchedJob {
  nlohmann::json handle;  // the launcher's own description, stored with the attempt
  int64_t pid = 0;        // the process the coordinator started (mpirun's for MpiLauncher)
  std::vector<std::string> command;  // what it runs, for the run's provenance
  // What the launcher knows about the software it launched with (the MPI version), merged into the
  // run's provenance; an empty object when nothing.
  nlohmann::json provenance = nlohmann::json::object();
};

// How a job ended. For a job watched since its launch the exit status is known; for a job adopted
// after a coordinator restart it is not (it was never our child), and the run directory tells.
struct JobExit {
  bool status_known = false;
  int exit_code = 0;  // when it exited normally
  int signal = 0;     // when a signal ended it (0 otherwise)
  // What the launcher itself saw, for the attempt's cause ("Slurm job 12: NODE_FAIL"); empty
  // when the exit status says all.
  std::string detail;
};

using ExitCallback = std::function<void(const JobExit&)>;

class Launcher {
 public:
  virtual ~Launcher() = default;

  // The name stored in attempts.launcher: "local", "mpi", "slurm".
  virtual const char* name() const = 0;
  // Starts the attempt. On success `on_exit` is called once when the job ends. IOError or
  // InvalidArgument when the job did not start (a launch fault: nothing runs, on_exit is never
  // called).
  virtual Result<LaunchedJob> Launch(const LaunchRequest& request, ExitCallback on_exit) = 0;
  // After a coordinator restart: true when the job `handle` names is still running, and then
  // `on_exit` will be called when it ends; false when it has ended (on_exit is never called). A
  // process id reused by an unrelated program is never taken for the job.
  virtual Result<bool> Reattach(const nlohmann::json& handle, ExitCallback on_exit) = 0;
  // After a coordinator restart, for an attempt whose handle was never stored (the coordinator died
  // between starting the job and recording it): the handle of a running job of this attempt, or
  // null when there is none.
  virtual nlohmann::json Find(const std::string& run_id, int64_t attempt) = 0;
  // Asks the job to stop: graceful sends SIGTERM (the worker checkpoints and exits 75), otherwise
  // SIGKILL to every process of the job. OK when the job has already ended.
  virtual Status Cancel(const nlohmann::json& handle, bool graceful) = 0;
  // One line for logs and `isoflop status RUN`, e.g. "pid 1234 on gpu-node-3".
  virtual std::string Describe(const nlohmann::json& handle) const = 0;
  // True while the job waits in a batch queue for its resources (a pending Slurm job): waiting is
  // not a hang, so the heartbeat timeout runs only once it has left the queue.
  virtual bool Waiting(const nlohmann::json& handle) const {
    (void)handle;
    return false;
  }
};

}  // namespace isoflop
