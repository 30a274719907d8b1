#include "coordinator/daemon/daemon.h"

#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <charconv>

#include "common/sweep/sweep_loader.h"
#include "coordinator/daemon/access_token.h"
#include "coordinator/daemon/installation.h"

namespace isoflop {
namespace {

using nlohmann::json;

Result<std::pair<std::string, uint16_t>> ParseListen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return Status::InvalidArgument(fmt::format("--listen: expected HOST:PORT, got '{}'", listen));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);  // [::1]:7000
  }
  const std::string port_text = listen.substr(colon + 1);
  uint16_t port = 0;
  auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (error != std::errc() || end != port_text.data() + port_text.size()) {
    return Status::InvalidArgument(fmt::format("--listen: '{}' is not a port", port_text));
  }
  return std::make_pair(host, port);
}

SlurmLauncherOptions SlurmOptionsFor(const DaemonOptions& options) {
  SlurmLauncherOptions slurm = options.slurm;
  slurm.worker_path = options.worker_path;
  return slurm;
}

}  // namespace

Daemon::Daemon(DaemonOptions options, DaemonLock lock, std::unique_ptr<RunStore> store)
    : options_(std::move(options)),
      lock_(std::move(lock)),
      store_(std::move(store)),
      scheduler_(DetectSlots(options_.slots)),
      reaper_(io_),
      local_launcher_(reaper_, options_.worker_path),
      mpi_launcher_(reaper_, options_.worker_path, options_.mpirun),
      slurm_launcher_(io_, SlurmOptionsFor(options_)),
      stop_signals_(io_, SIGTERM, SIGINT) {
  SupervisorOptions supervisor = options_.supervisor;
  supervisor.runs_dir = options_.state.runs();
  supervisor.provenance["coordinator"] = BuildProvenance();
  supervisor.provenance["worker_binary"] = options_.worker_path;
  // Workers of this host's launchers report over the Unix socket, which needs no token.
  supervisor.worker_reporting.address = "unix:" + options_.state.socket();
  supervisor_ = std::make_unique<RunSupervisor>(
      io_, store_.get(), &scheduler_,
      std::map<LauncherKind, Launcher*>{{LauncherKind::kLocal, &local_launcher_},
                                        {LauncherKind::kMpi, &mpi_launcher_},
                                        {LauncherKind::kSlurm, &slurm_launcher_}},
      std::move(supervisor));
}

Daemon::~Daemon() {
  // The supervisor's timers and the server's sockets belong to io_; release them first.
  server_.reset();
  supervisor_.reset();
}

Result<std::unique_ptr<Daemon>> Daemon::Start(DaemonOptions options) {
  ISOFLOP_RETURN_IF_ERROR(options.state.Create());
  Result<DaemonLock> lock = DaemonLock::Acquire(options.state.pid_file());
  if (!lock.ok()) return lock.status();
  Result<std::unique_ptr<RunStore>> store = RunStore::Open(options.state.database());
  if (!store.ok()) return store.status();
  Result<std::string> token = LoadOrCreateToken(options.state.token());
  if (!token.ok()) return token.status();

  std::unique_ptr<Daemon> daemon(
      new Daemon(std::move(options), std::move(*lock), std::move(*store)));
  daemon->token_ = std::move(*token);
  std::string slots;
  for (const Slot& slot : daemon->scheduler_.slots())
    slots += (slots.empty() ? "" : ", ") + slot.label;
  spdlog::info("isoflopd {} (pid {}) on {}: {} slots: {}; worker {}", VersionString(), ::getpid(),
               daemon->options_.state.root, daemon->scheduler_.slots().size(), slots,
               daemon->options_.worker_path);
  ISOFLOP_RETURN_IF_ERROR(daemon->supervisor_->Recover());
  ISOFLOP_RETURN_IF_ERROR(daemon->Listen());
  return daemon;
}

Status Daemon::Listen() {
  ApiServerOptions server_options;
  server_options.token = token_;
  server_ = std::make_unique<ApiServer>(io_, this, server_options);
  ISOFLOP_RETURN_IF_ERROR(server_->ListenUnix(options_.state.socket()));
  spdlog::info("listening on {}", options_.state.socket());
  if (!options_.listen.empty()) {
    Result<std::pair<std::string, uint16_t>> address = ParseListen(options_.listen);
    if (!address.ok()) return address.status();
    ISOFLOP_RETURN_IF_ERROR(server_->ListenTcp(address->first, address->second));
    spdlog::info("listening on {}:{} (TCP, token required)", address->first, server_->tcp_port());
  }
  return Status::OK();
}

void Daemon::Run() {
  stop_signals_.async_wait([this](const boost::system::error_code& error, int signal) {
    if (error) return;
    spdlog::info("signal {}: shutting down; workers keep running", signal);
    Shutdown();
  });
  io_.run();
  spdlog::info("isoflopd stopped; {} runs left running for the next isoflopd to adopt",
               supervisor_->active_runs());
}

void Daemon::Shutdown() {
  if (server_) server_->Close();
  supervisor_->Stop();
  boost::system::error_code ignored;
  stop_signals_.cancel(ignored);
  io_.stop();
}

Result<json> Daemon::Handle(const protocol::RequestBody& request,
                            std::function<void()>* after_reply) {
  if (const auto* submit = std::get_if<protocol::Submit>(&request)) return Submit(*submit);
  if (const auto* cancel = std::get_if<protocol::Cancel>(&request)) return Cancel(*cancel);
  if (const auto* resume = std::get_if<protocol::Resume>(&request)) return Resume(*resume);
  if (std::holds_alternative<protocol::Ping>(request)) return Ping();
  if (const auto* hello = std::get_if<protocol::WorkerHello>(&request)) {
    if (hello->rank != 0) {
      return Status::InvalidArgument(
          fmt::format("rank {} may not report: rank 0 reports for the whole run", hello->rank));
    }
    ISOFLOP_RETURN_IF_ERROR(supervisor_->WorkerAlive(hello->run_id, hello->attempt));
    spdlog::info("run {} attempt {}: its worker reports over the socket",
                 hello->run_id.substr(0, 16), hello->attempt);
    return json{{"following", true}};
  }
  if (const auto* heartbeat = std::get_if<protocol::Heartbeat>(&request)) {
    ISOFLOP_RETURN_IF_ERROR(supervisor_->WorkerAlive(heartbeat->run_id, heartbeat->attempt));
    return json::object();
  }
  if (const auto* record = std::get_if<protocol::Record>(&request)) {
    ISOFLOP_RETURN_IF_ERROR(
        supervisor_->WorkerRecord(record->run_id, record->attempt, record->record));
    return json::object();
  }
  if (std::holds_alternative<protocol::Shutdown>(request)) {
    spdlog::info("shutdown requested; workers keep running");
    *after_reply = [this] { Shutdown(); };
    return json{{"stopping", true}};
  }
  return Status::InvalidArgument(fmt::format("{} is not a request", protocol::TypeName(request)));
}

Result<json> Daemon::Submit(const protocol::Submit& request) {
  Result<ExpandedSweep> sweep = LoadSweep(request.path);
  if (!sweep.ok()) return sweep.status();  // an invalid file writes nothing
  Result<SweepInsertResult> inserted = store_->InsertSweep(sweep->name, sweep->source, sweep->runs);
  if (!inserted.ok()) return inserted.status();
  spdlog::info("submitted {} as sweep #{} ({}): {} runs added, {} already present", request.path,
               inserted->sweep_id, sweep->name, inserted->runs_added, inserted->runs_existing);
  supervisor_->RequestSchedule();
  json dropped = json::array();
  for (const DroppedRun& run : sweep->dropped) {
    dropped.push_back({{"name", run.name}, {"reason", run.reason}});
  }
  return json{{"sweep_id", inserted->sweep_id},
              {"name", sweep->name},
              {"sweep_existed", inserted->sweep_existed},
              {"runs", sweep->runs.size()},
              {"runs_added", inserted->runs_added},
              {"runs_existing", inserted->runs_existing},
              {"dropped", std::move(dropped)},
              {"warnings", sweep->warnings}};
}

Result<json> Daemon::Cancel(const protocol::Cancel& request) {
  std::vector<std::string> run_ids;
  Result<int64_t> sweep_id = store_->FindSweep(request.target);
  if (sweep_id.ok()) {
    Result<std::vector<std::string>> ids = store_->SweepRunIds(*sweep_id);
    if (!ids.ok()) return ids.status();
    run_ids = std::move(*ids);
  } else if (sweep_id.status().code() != Status::Code::kNotFound) {
    return sweep_id.status();
  } else {
    const bool looks_like_run_id =
        request.target.size() >= 4 &&
        request.target.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
    if (!looks_like_run_id) {
      return Status::NotFound(fmt::format("no sweep named or numbered '{}'", request.target));
    }
    Result<std::string> run_id = store_->FindRun(request.target);
    if (!run_id.ok()) return run_id.status();
    run_ids.push_back(*run_id);
  }
  Result<std::vector<std::string>> cancelled = supervisor_->Cancel(run_ids);
  if (!cancelled.ok()) return cancelled.status();
  spdlog::info("cancel {}: {} runs cancelled", request.target, cancelled->size());
  return json{{"cancelled", *cancelled}};
}

Result<json> Daemon::Resume(const protocol::Resume& request) {
  Result<int64_t> sweep_id = store_->FindSweep(request.sweep);
  if (!sweep_id.ok()) return sweep_id.status();
  Result<std::vector<std::string>> requeued = supervisor_->Resume(*sweep_id);
  if (!requeued.ok()) return requeued.status();
  spdlog::info("resume {} (#{}): {} runs queued again", request.sweep, *sweep_id, requeued->size());
  return json{{"sweep_id", *sweep_id}, {"requeued", *requeued}};
}

json Daemon::Ping() const {
  json slots = json::array();
  for (const Slot& slot : scheduler_.slots()) slots.push_back(slot.label);
  return {{"version", VersionString()},
          {"pid", ::getpid()},
          {"state_dir", options_.state.root},
          {"worker", options_.worker_path},
          {"slots", std::move(slots)},
          {"free_slots", scheduler_.free_slots()},
          {"active_runs", supervisor_->active_runs()}};
}

}  // namespace isoflop
