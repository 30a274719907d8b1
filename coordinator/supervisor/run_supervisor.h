// RunSupervisor: the life of every run from QUEUED to a final state (system.md sections 3 and 8).
//
//   QUEUED --Schedule--> LAUNCHING --spawned--> RUNNING --exit--> COMPLETED
//                            |                     |      \----> FAILED / LOST --> RETRY_WAIT -->
//                            QUEUED
//                            \--launch failed------+------------/
//   any unfinished state --cancel--> CANCELLED (a running worker gets SIGTERM, then SIGKILL)
//
// It starts queued runs on the scheduler's free slots through the run's launcher, follows each
// running worker's metrics.jsonl and its reports over the daemon's socket (Ingestor) as its
// heartbeat, kills a worker whose heartbeat stops (a hang: LOST), classifies every exit
// (RetryPolicy), and re-queues after a backoff or gives up.
// A retried run keeps its id and its run directory, so the worker resumes from its newest
// checkpoint.
//
// Crash safety: every decision is written to the store before it is acted on where that order
// matters (an attempt row exists before its process does; an attempt is closed, with its run's next
// state, in one transaction). Recover() rebuilds everything else from the store and /proc after a
// restart: no run is lost, and none runs twice.
//
// Single-threaded: all methods and callbacks run on the io_context's one thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/run_config.h"
#include "common/store/run_store.h"
#include "coordinator/launcher/launcher.h"
#include "coordinator/scheduler/scheduler.h"
#include "coordinator/supervisor/ingestor.h"
#include "coordinator/supervisor/retry_policy.h"

namespace isoflop {

// How heartbeats over the daemon's socket follow from the heartbeat timeout: several per timeout,
// so that one late heartbeat is no hang; and a silence bound of several timeouts, which a long
// evaluation or checkpoint fits well within, after which a worker stops sending them.
inline constexpr double kHeartbeatsPerTimeout = 5;
inline constexpr double kMaxSilenceTimeouts = 4;

struct SupervisorOptions {
  std::string runs_dir;  // STATE/runs: one directory per run id
  // No sign of life from a running worker for this long marks it as hung. Signs of life: growth of
  // its metrics.jsonl, and its worker_hello, heartbeat and record messages over the daemon's
  // socket. A worker that reports over the socket sends heartbeats through evaluations and
  // checkpoints, and stops them once it has written no record for kMaxSilenceTimeouts times this
  // long (a trainer that hangs while its process lives). Generous by default: a worker started
  // without the socket writes its first record only after loading data and building the model.
  double heartbeat_timeout_s = 900;
  std::chrono::milliseconds ingest_interval{250};  // how often metrics.jsonl files are read
  double kill_grace_s = 30;  // cancel: SIGTERM (the worker checkpoints), SIGKILL after this long
  RetryPolicyOptions retry;
  // Where launched workers report over the daemon's socket (daemon_reporter.h): the address, and
  // the token a tcp: address needs. The heartbeat interval and the silence bound are derived from
  // heartbeat_timeout_s. An empty address: workers report through metrics.jsonl alone.
  ReportingSettings worker_reporting;
  // Written into every launched run's provenance: coordinator version, git commit, host, ...
  nlohmann::json provenance = nlohmann::json::object();
};

class RunSupervisor {
 public:
  // `launchers` by the run config's resources.launcher; a run asking for one that is missing
  // fails with that reason. The pointers must outlive the supervisor.
  RunSupervisor(boost::asio::io_context& io, RunStore* store, Scheduler* scheduler,
                std::map<LauncherKind, Launcher*> launchers, SupervisorOptions options);
  ~RunSupervisor();
  RunSupervisor(const RunSupervisor&) = delete;
  RunSupervisor& operator=(const RunSupervisor&) = delete;

  // Reconciles every attempt left open by a previous coordinator (process alive: adopted and
  // followed again; gone: its records ingested, then COMPLETED or LOST and retried), re-arms
  // waiting retries, starts the ingest timer and schedules. Call once, before anything else.
  Status Recover();

  // Starts queued runs on free slots (soon, on the event loop). Call after queueing runs.
  void RequestSchedule();

  // Cancels runs that have not finished; running workers are stopped. Returns those that changed.
  Result<std::vector<std::string>> Cancel(const std::vector<std::string>& run_ids);
  // Re-queues a sweep version's failed, lost and cancelled runs with fresh retry budgets.
  Result<std::vector<std::string>> Resume(int64_t sweep_id);

  // Stops timers so the event loop can end. Workers keep running; the next coordinator adopts them.
  void Stop();

  // Reports from rank 0 of a worker over the daemon's socket (protocol_codec.h). Each is a sign of
  // life of the attempt this supervisor follows for the run; a record is also stored as if read
  // from the run's metrics.jsonl, in the next ingest (InvalidArgument when it is not a record).
  // Reports of any other attempt (one already concluded, a stale worker an earlier coordinator
  // left) change nothing: FailedPrecondition, which tells the worker to stop reporting.
  Status WorkerAlive(const std::string& run_id, int64_t attempt);
  Status WorkerRecord(const std::string& run_id, int64_t attempt, const nlohmann::json& record);

  size_t active_runs() const { return active_.size(); }

 private:
  struct ActiveRun {
    int64_t attempt = 0;
    Launcher* launcher = nullptr;
    nlohmann::json handle;
    std::chrono::steady_clock::time_point last_progress;
    StopRequest stop = StopRequest::kNone;
    std::unique_ptr<boost::asio::steady_timer> kill_timer;
  };

  // OK when `attempt` is the attempt of run_id this supervisor follows.
  Status CheckFollowed(const std::string& run_id, int64_t attempt) const;
  Launcher* LauncherFor(const nlohmann::json& config, std::string* error) const;
  Launcher* LauncherNamed(const std::string& name) const;
  std::string RunDir(const std::string& run_id) const;
  Status Adopt(const AttemptRow& attempt, const RunRow& run, Launcher* launcher,
               const nlohmann::json& handle, bool handle_found_now);
  Status ConcludeGone(const AttemptRow& attempt, const RunRow& run);

  void Schedule();
  void Start(const Placement& placement);
  Status PrepareRunDir(const RunRow& run) const;
  ExitCallback OnExitOf(const std::string& run_id, int64_t attempt);
  void OnExit(const std::string& run_id, int64_t attempt, const JobExit& exit);
  // Closes the attempt with `outcome`, decides on a retry and frees the run's slots.
  Status Finish(const std::string& run_id, int64_t attempt, const AttemptOutcome& outcome,
                const JobExit& exit);
  void ArmRetry(const std::string& run_id, double delay_s);
  void StopWorker(const std::string& run_id, ActiveRun& active, StopRequest why);
  void ArmIngest();
  void IngestTick();

  boost::asio::io_context& io_;
  RunStore* store_;
  Scheduler* scheduler_;
  std::map<LauncherKind, Launcher*> launchers_;
  SupervisorOptions options_;
  Ingestor ingestor_;
  std::string host_;
  std::map<std::string, ActiveRun> active_;
  std::map<std::string, std::unique_ptr<boost::asio::steady_timer>> retry_timers_;
  boost::asio::steady_timer ingest_timer_;
  bool schedule_pending_ = false;
  bool stopped_ = false;
};

}  // namespace isoflop
