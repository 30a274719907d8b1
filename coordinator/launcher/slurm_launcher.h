// SlurmLauncher: one attempt of a run is one Slurm batch job (system.md section 8).
//
// Launch renders cluster/slurm_job.sbatch.in into RUN_DIR/slurm-attempt-<n>.sbatch from the run's
// resources.slurm and submits it with `sbatch --parsable`; the job's script starts the worker with
// srun. Settings read from resources.slurm (all optional):
//   partition, account, time   -> #SBATCH --partition, --account, --time
//   gpus_per_node              -> --gpus-per-node and one task per GPU (absent or 0: CPU tasks)
//   nodes                      -> --nodes (default: as many as the run's ranks need)
//   mpi                        -> srun --mpi=... (default "pmix" when the run has several ranks)
//   signal_before_s            -> SIGTERM this long before the time limit (default 300)
//   extra                      -> a list of further #SBATCH arguments, e.g. ["--exclusive"]
// The run's `gpus` is its number of ranks. The job inherits the coordinator's environment (sbatch's
// default --export=ALL) plus ISOFLOP_RUN_ID, ISOFLOP_ATTEMPT and the reporting variables, as local
// workers do.
//
// Watching: every job this launcher follows is polled with one `squeue` call per interval, never
// one per job. The interval starts short after a submission or a change of state and doubles while
// nothing changes, up to a maximum. A job squeue no longer lists, on two polls in a row, has
// vanished (its end unknown: the run becomes LOST and is retried). A squeue that fails
// concludes nothing. slurm_job_state.h maps job states to how the attempt ended.
//
// Restart: the handle {"job_id", "job_name", "run_dir"} is all a new coordinator needs; Reattach
// follows the job again by id, and a job that ended while no coordinator watched still reports how
// it ended (while slurmctld remembers it, MinJobAge). Cancel is scancel: graceful sends SIGTERM to
// the job's steps (the worker checkpoints), otherwise the whole job is cancelled.
//
// Every command runs without a shell and with a timeout; its errors name the command and what it
// printed on stderr.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "coordinator/launcher/command.h"
#include "coordinator/launcher/launcher.h"
#include "coordinator/launcher/slurm_job_state.h"

namespace isoflop {

// The job name of an attempt, "isoflop-<run id>-a<attempt>": how Find recognises a job whose id a
// crashed coordinator never stored.
std::string SlurmJobName(const std::string& run_id, int64_t attempt);

struct SlurmLauncherOptions {
  std::string worker_path;  // the worker binary, as the job's nodes see it
  // The batch script template; empty: the one compiled in (cluster/slurm_job.sbatch.in).
  std::string template_path;
  // Directory of sbatch, squeue, scancel and scontrol; empty: looked up in PATH.
  std::string slurm_bin_dir;
  std::chrono::milliseconds poll_min{1000};
  std::chrono::milliseconds poll_max{30000};
  std::chrono::milliseconds command_timeout{30000};
};

class SlurmLauncher : public Launcher {
 public:
  SlurmLauncher(boost::asio::io_context& io, SlurmLauncherOptions options);
  ~SlurmLauncher() override;
  SlurmLauncher(const SlurmLauncher&) = delete;
  SlurmLauncher& operator=(const SlurmLauncher&) = delete;

  const char* name() const override { return "slurm"; }
  Result<LaunchedJob> Launch(const LaunchRequest& request, ExitCallback on_exit) override;
  Result<bool> Reattach(const nlohmann::json& handle, ExitCallback on_exit) override;
  nlohmann::json Find(const std::string& run_id, int64_t attempt) override;
  Status Cancel(const nlohmann::json& handle, bool graceful) override;
  std::string Describe(const nlohmann::json& handle) const override;
  bool Waiting(const nlohmann::json& handle) const override;

  // The batch script for `request` with the run's resources.slurm `settings` (exposed for tests).
  Result<std::string> RenderScript(const LaunchRequest& request,
                                   const nlohmann::json& settings) const;
  // Jobs followed now.
  size_t watched() const { return jobs_.size(); }

 private:
  struct Job {
    std::string run_dir;
    ExitCallback on_exit;
    SlurmJobStatus last;    // as of the newest poll that listed it
    int missing_polls = 0;  // polls in a row that did not list it
  };

  std::string Program(const char* name) const;
  // One squeue call for `job_ids`; an id squeue does not know is absent from the answer.
  Result<std::vector<SlurmJobStatus>> Query(const std::vector<std::string>& job_ids);
  void Follow(const std::string& job_id, Job job);
  void ArmPoll(std::chrono::milliseconds delay);
  void Poll();
  void Conclude(const std::string& job_id, const JobExit& exit);

  boost::asio::io_context& io_;
  SlurmLauncherOptions options_;
  std::string template_text_;
  std::string template_error_;  // why the template could not be read; every Launch reports it
  std::map<std::string, Job> jobs_;
  boost::asio::steady_timer poll_timer_;
  std::chrono::milliseconds interval_;
  std::string slurm_version_;  // "" until the first launch asks
};

}  // namespace isoflop
