// Daemon: isoflopd, the coordinator of one state directory (system.md section 8).
//
// Owns, for its whole life: the state directory's lock, the results database (the only writer),
// the scheduler's slots, the launchers, the run supervisor and the API server. Everything runs on
// one thread and one io_context: requests, worker exits (SIGCHLD), ingest timers and retries are
// events, handled one at a time, so no state is shared between threads.
//
// Start() reconciles what a previous daemon left (RunSupervisor::Recover) before it listens, so a
// client never sees a half-recovered state. Run() serves until a shutdown request, SIGTERM or
// SIGINT; workers keep running after the daemon ends and the next daemon adopts them.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <memory>
#include <optional>
#include <string>

#include "common/store/run_store.h"
#include "coordinator/daemon/api_server.h"
#include "coordinator/daemon/daemon_lock.h"
#include "coordinator/daemon/state_dir.h"
#include "coordinator/launcher/process_launcher.h"
#include "coordinator/launcher/process_reaper.h"
#include "coordinator/launcher/slurm_launcher.h"
#include "coordinator/scheduler/scheduler.h"
#include "coordinator/scheduler/slots.h"
#include "coordinator/supervisor/run_supervisor.h"

namespace isoflop {

struct DaemonOptions {
  StateDir state;
  std::string worker_path;  // the worker binary (installation.h: FindWorkerBinary)
  std::string mpirun = "mpirun";
  // The slurm launcher; its worker_path is set from worker_path.
  SlurmLauncherOptions slurm;
  SlotOptions slots;
  std::string listen;  // "HOST:PORT": also serve TCP (token required); empty: Unix socket only
  SupervisorOptions supervisor;  // runs_dir is set from `state`
};

class Daemon : public RequestHandler {
 public:
  // Creates the state directory, takes its lock (FailedPrecondition if another daemon holds it),
  // opens and migrates the database, reconciles runs left by a previous daemon and listens.
  static Result<std::unique_ptr<Daemon>> Start(DaemonOptions options);
  ~Daemon() override;

  // Serves until Shutdown(), a shutdown request, SIGTERM or SIGINT.
  void Run();
  // Stops serving: the sockets close, timers stop, Run() returns. Workers are left running.
  void Shutdown();

  uint16_t tcp_port() const { return server_->tcp_port(); }

  Result<nlohmann::json> Handle(const protocol::RequestBody& request,
                                std::function<void()>* after_reply) override;

 private:
  Daemon(DaemonOptions options, DaemonLock lock, std::unique_ptr<RunStore> store);
  Status Listen();
  Result<nlohmann::json> Submit(const protocol::Submit& request);
  Result<nlohmann::json> Cancel(const protocol::Cancel& request);
  Result<nlohmann::json> Resume(const protocol::Resume& request);
  nlohmann::json Ping() const;

  DaemonOptions options_;
  boost::asio::io_context io_;
  DaemonLock lock_;
  std::unique_ptr<RunStore> store_;
  std::string token_;
  Scheduler scheduler_;
  ProcessReaper reaper_;
  LocalLauncher local_launcher_;
  MpiLauncher mpi_launcher_;
  SlurmLauncher slurm_launcher_;
  std::unique_ptr<RunSupervisor> supervisor_;
  std::unique_ptr<ApiServer> server_;
  boost::asio::signal_set stop_signals_;
};

}  // namespace isoflop
