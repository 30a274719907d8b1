#include "coordinator/supervisor/run_supervisor.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "common/atomic_file.h"
#include "coordinator/launcher/process.h"

namespace isoflop {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// How long to wait before trying a store write again after it failed (disk full, a lock held by
// an external writer for longer than busy_timeout).
constexpr std::chrono::seconds kStoreRetryDelay{1};

std::string Short(const std::string& run_id) {
  return run_id.substr(0, 16);
}

RunState StateAfter(AttemptCause cause) {
  switch (cause) {
    case AttemptCause::kCompleted:
      return RunState::kCompleted;
    case AttemptCause::kCancelled:
      return RunState::kCancelled;
    case AttemptCause::kInfrastructure:
    case AttemptCause::kHang:
      return RunState::kLost;
    case AttemptCause::kConfigError:
    case AttemptCause::kCodeFault:
      break;
  }
  return RunState::kFailed;
}

std::chrono::milliseconds Millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(std::max(0.0, seconds) * 1000.0));
}

}  // namespace

RunSupervisor::RunSupervisor(asio::io_context& io, RunStore* store, Scheduler* scheduler,
                             std::map<LauncherKind, Launcher*> launchers, SupervisorOptions options)
    : io_(io),
      store_(store),
      scheduler_(scheduler),
      launchers_(std::move(launchers)),
      options_(std::move(options)),
      ingestor_(store),
      host_(HostName()),
      ingest_timer_(io) {}

RunSupervisor::~RunSupervisor() {
  Stop();
}

void RunSupervisor::Stop() {
  stopped_ = true;
  ingest_timer_.cancel();
  for (auto& [run_id, timer] : retry_timers_) timer->cancel();
  for (auto& [run_id, active] : active_) {
    if (active.kill_timer) active.kill_timer->cancel();
  }
}

Launcher* RunSupervisor::LauncherNamed(const std::string& name) const {
  for (const auto& [kind, launcher] : launchers_) {
    if (launcher != nullptr && name == launcher->name()) return launcher;
  }
  return nullptr;
}

Launcher* RunSupervisor::LauncherFor(const json& config, std::string* error) const {
  const json resources = config.value("resources", json::object());
  const std::string name = resources.value("launcher", std::string("local"));
  LauncherKind kind;
  if (!Parse(name, &kind)) {
    *error = fmt::format("unknown launcher \"{}\"", name);
    return nullptr;
  }
  auto it = launchers_.find(kind);
  if (it == launchers_.end() || it->second == nullptr) {
    *error = fmt::format("launcher \"{}\" is not available in this coordinator", name);
    return nullptr;
  }
  return it->second;
}

std::string RunSupervisor::RunDir(const std::string& run_id) const {
  return options_.runs_dir + "/" + run_id;
}

Status RunSupervisor::Recover() {
  Result<std::vector<AttemptRow>> open = store_->OpenAttempts();
  if (!open.ok()) return open.status();
  for (const AttemptRow& attempt : *open) {
    Result<RunRow> run = store_->Run(attempt.run_id);
    if (!run.ok()) return run.status();
    Launcher* launcher = LauncherNamed(attempt.launcher);
    json handle = attempt.handle;
    bool found_now = false;
    if (launcher != nullptr && handle.is_null()) {
      // The previous coordinator died between starting this attempt and storing its handle.
      handle = launcher->Find(attempt.run_id, attempt.attempt);
      found_now = !handle.is_null();
    }
    bool alive = false;
    if (launcher != nullptr && !handle.is_null()) {
      Result<bool> reattached =
          launcher->Reattach(handle, OnExitOf(attempt.run_id, attempt.attempt));
      if (reattached.ok()) {
        alive = *reattached;
      } else {
        spdlog::warn("run {} attempt {}: cannot reattach: {}", Short(attempt.run_id),
                     attempt.attempt, reattached.status().message());
      }
    }
    if (alive) {
      ISOFLOP_RETURN_IF_ERROR(Adopt(attempt, *run, launcher, handle, found_now));
    } else {
      ISOFLOP_RETURN_IF_ERROR(ConcludeGone(attempt, *run));
    }
  }

  Result<std::vector<std::pair<std::string, double>>> waiting = store_->RetryWaitRuns();
  if (!waiting.ok()) return waiting.status();
  for (const auto& [run_id, delay_s] : *waiting) ArmRetry(run_id, delay_s);

  ArmIngest();
  RequestSchedule();
  return Status::OK();
}

Status RunSupervisor::Adopt(const AttemptRow& attempt, const RunRow& run, Launcher* launcher,
                            const json& handle, bool handle_found_now) {
  spdlog::info("run {} ({}) attempt {}: adopted {} left by the previous coordinator", Short(run.id),
               run.name, attempt.attempt, launcher->Describe(handle));
  if (handle_found_now && run.state == RunState::kLaunching) {
    ISOFLOP_RETURN_IF_ERROR(store_->AttemptRunning(
        run.id, attempt.attempt, handle.value("pid", int64_t{0}), handle, json::object()));
  }
  Result<Supervision> supervision = store_->SupervisionOf(run.id);
  if (!supervision.ok()) return supervision.status();
  ingestor_.Track(run.id, RunDir(run.id) + "/metrics.jsonl", supervision->ingest_offset,
                  supervision->complete_step.has_value());
  const std::vector<int> slots = scheduler_->SlotsByDevice(attempt.slots);
  if (slots.empty() && !attempt.slots.empty()) {
    spdlog::warn("run {}: its devices {} are not among this coordinator's slots", Short(run.id),
                 attempt.slots);
  }
  scheduler_->Hold(run.id, slots);
  ActiveRun& active = active_[run.id];
  active.attempt = attempt.attempt;
  active.launcher = launcher;
  active.handle = handle;
  active.last_progress = Clock::now();
  if (run.state != RunState::kLaunching && run.state != RunState::kRunning) {
    // Cancelled while the previous coordinator was stopping it: finish the job it started.
    StopWorker(run.id, active, StopRequest::kCancel);
  }
  return Status::OK();
}

Status RunSupervisor::ConcludeGone(const AttemptRow& attempt, const RunRow& run) {
  Result<Supervision> supervision = store_->SupervisionOf(run.id);
  if (!supervision.ok()) return supervision.status();
  // What the worker wrote while nobody was reading decides how it ended.
  ingestor_.Track(run.id, RunDir(run.id) + "/metrics.jsonl", supervision->ingest_offset,
                  supervision->complete_step.has_value());
  Result<IngestProgress> progress = ingestor_.IngestFinal(run.id);
  ingestor_.Untrack(run.id);
  if (!progress.ok()) return progress.status();
  const StopRequest requested =
      run.state == RunState::kCancelled ? StopRequest::kCancel : StopRequest::kNone;
  AttemptOutcome outcome = Classify(JobExit{}, progress->complete, requested);
  if (outcome.cause == AttemptCause::kInfrastructure) {
    outcome.detail = "the worker ended while no coordinator was watching it";
  }
  spdlog::info("run {} ({}) attempt {}: its worker is gone: {}", Short(run.id), run.name,
               attempt.attempt, outcome.Text());
  return Finish(run.id, attempt.attempt, outcome, JobExit{});
}

void RunSupervisor::RequestSchedule() {
  if (schedule_pending_ || stopped_) return;
  schedule_pending_ = true;
  asio::post(io_, [this] {
    schedule_pending_ = false;
    if (!stopped_) Schedule();
  });
}

void RunSupervisor::Schedule() {
  if (scheduler_->free_slots() == 0) return;
  Result<std::vector<QueuedRun>> queued = store_->QueuedRuns();
  if (!queued.ok()) {
    spdlog::error("scheduling: {}", queued.status().message());
    return;
  }
  Scheduler::Decision decision = scheduler_->Schedule(*queued);
  for (const std::string& run_id : decision.unplaceable) {
    const std::string reason =
        fmt::format("needs more slots than this machine has ({})", scheduler_->slots().size());
    spdlog::error("run {}: {}", Short(run_id), reason);
    if (Status status = store_->SetRunState(run_id, RunState::kFailed, reason); !status.ok()) {
      spdlog::error("run {}: {}", Short(run_id), status.message());
    }
  }
  for (const Placement& placement : decision.start) Start(placement);
}

Status RunSupervisor::PrepareRunDir(const RunRow& run) const {
  const std::string dir = RunDir(run.id);
  std::error_code error;
  fs::create_directories(dir + "/checkpoints", error);
  if (error) return Status::IOError(fmt::format("{}: cannot create: {}", dir, error.message()));
  // The stored config is the worker's run.json (RunStore keeps ToJson of the RunConfig).
  return WriteFileAtomically(dir + "/run.json", run.config.dump(2) + "\n");
}

void RunSupervisor::Start(const Placement& placement) {
  const std::string& run_id = placement.run_id;
  Result<RunRow> run = store_->Run(run_id);
  if (!run.ok()) {
    spdlog::error("run {}: {}", Short(run_id), run.status().message());
    scheduler_->Release(run_id);
    return;
  }
  std::string launcher_error;
  Launcher* launcher = LauncherFor(run->config, &launcher_error);
  if (launcher == nullptr) {
    spdlog::error("run {} ({}): {}", Short(run_id), run->name, launcher_error);
    scheduler_->Release(run_id);
    if (Status status = store_->SetRunState(run_id, RunState::kFailed, launcher_error);
        !status.ok()) {
      spdlog::error("run {}: {}", Short(run_id), status.message());
    }
    return;
  }

  const std::string dir = RunDir(run_id);
  const std::string log_path = dir + "/worker.log";
  const std::string devices = scheduler_->DeviceList(placement.slots);
  Result<int64_t> attempt =
      store_->BeginAttempt({run_id, launcher->name(), host_, devices, log_path});
  if (!attempt.ok()) {
    spdlog::error("run {}: {}", Short(run_id), attempt.status().message());
    scheduler_->Release(run_id);
    return;
  }

  LaunchRequest request;
  request.run_id = run_id;
  request.attempt = *attempt;
  request.run_dir = dir;
  request.config_path = dir + "/run.json";
  request.log_path = log_path;
  request.ranks = static_cast<int64_t>(placement.slots.size());
  request.reporting = options_.worker_reporting;
  request.reporting.heartbeat_interval_s =
      std::clamp(options_.heartbeat_timeout_s / kHeartbeatsPerTimeout, 0.05, 5.0);
  request.reporting.max_silence_s = kMaxSilenceTimeouts * options_.heartbeat_timeout_s;
  std::vector<std::string> labels;
  for (int slot : placement.slots) {
    const Slot& s = scheduler_->slots()[static_cast<size_t>(slot)];
    if (s.gpu) request.gpus.push_back(s.device);
    labels.push_back(s.label);
  }

  Status prepared = PrepareRunDir(*run);
  if (prepared.ok()) {
    // Attempts share the log; a header tells them apart in `isoflop logs`.
    std::ofstream log(log_path, std::ios::app);
    log << fmt::format("==== isoflop: attempt {} of run {} on {} ({}) ====\n", *attempt,
                       Short(run_id), host_, devices);
    if (!log.flush()) prepared = Status::IOError(fmt::format("{}: cannot write", log_path));
  }
  Result<LaunchedJob> job = prepared.ok() ? launcher->Launch(request, OnExitOf(run_id, *attempt))
                                          : Result<LaunchedJob>(prepared);
  if (!job.ok()) {
    spdlog::error("run {} ({}) attempt {}: launch failed: {}", Short(run_id), run->name, *attempt,
                  job.status().message());
    if (Status status = Finish(run_id, *attempt,
                               {AttemptCause::kInfrastructure,
                                fmt::format("launch failed: {}", job.status().message())},
                               JobExit{});
        !status.ok()) {
      spdlog::error("run {}: {}", Short(run_id), status.message());
    }
    return;
  }

  json provenance = options_.provenance;
  provenance["host"] = host_;
  provenance["launcher"] = launcher->name();
  provenance["command"] = job->command;
  provenance["devices"] = labels;
  provenance["seed"] = run->seed;
  provenance.update(job->provenance);
  if (Status status = store_->AttemptRunning(run_id, *attempt, job->pid, job->handle, provenance);
      !status.ok()) {
    // The worker runs, the store does not know its pid: a restarted coordinator finds it by the
    // attempt marker in its environment (ProcessLauncher::Find).
    spdlog::error("run {}: recording the launch: {}", Short(run_id), status.message());
  }
  Result<Supervision> supervision = store_->SupervisionOf(run_id);
  ingestor_.Track(run_id, dir + "/metrics.jsonl", supervision.ok() ? supervision->ingest_offset : 0,
                  supervision.ok() && supervision->complete_step.has_value());
  ActiveRun& active = active_[run_id];
  active.attempt = *attempt;
  active.launcher = launcher;
  active.handle = job->handle;
  active.last_progress = Clock::now();
  active.stop = StopRequest::kNone;
  spdlog::info("run {} ({}) attempt {}: started {} on {}", Short(run_id), run->name, *attempt,
               launcher->Describe(job->handle), devices);
}

ExitCallback RunSupervisor::OnExitOf(const std::string& run_id, int64_t attempt) {
  return [this, run_id, attempt](const JobExit& exit) { OnExit(run_id, attempt, exit); };
}

void RunSupervisor::OnExit(const std::string& run_id, int64_t attempt, const JobExit& exit) {
  auto it = active_.find(run_id);
  if (it == active_.end() || it->second.attempt != attempt) return;  // already concluded
  ActiveRun& active = it->second;
  if (active.kill_timer) active.kill_timer->cancel();

  Result<IngestProgress> progress = ingestor_.IngestFinal(run_id);
  AttemptOutcome outcome;
  Status status = progress.status();
  if (progress.ok()) {
    outcome = Classify(exit, progress->complete, active.stop);
    spdlog::info("run {} attempt {}: worker ended: {}", Short(run_id), attempt, outcome.Text());
    status = Finish(run_id, attempt, outcome, exit);
  }
  if (!status.ok()) {
    // Nothing was decided; the exit is handled again once the store accepts writes.
    spdlog::error("run {} attempt {}: recording its end: {}; trying again", Short(run_id), attempt,
                  status.message());
    auto timer = std::make_shared<asio::steady_timer>(io_, kStoreRetryDelay);
    timer->async_wait([this, timer, run_id, attempt, exit](const boost::system::error_code& e) {
      if (!e && !stopped_) OnExit(run_id, attempt, exit);
    });
  }
}

Status RunSupervisor::Finish(const std::string& run_id, int64_t attempt,
                             const AttemptOutcome& outcome, const JobExit& exit) {
  Result<RunRow> run = store_->Run(run_id);
  if (!run.ok()) return run.status();
  AttemptEnd end;
  end.run_id = run_id;
  end.attempt = attempt;
  end.cause = outcome.Text();
  if (exit.status_known) end.exit_status = exit.signal != 0 ? -exit.signal : exit.exit_code;
  end.state = StateAfter(outcome.cause);
  end.reason = fmt::format("attempt {}: {}", attempt, outcome.Text());

  RetryDecision decision;
  // A run cancelled by the user stays cancelled even if its worker then failed.
  if (run->state != RunState::kCancelled || outcome.cause == AttemptCause::kCompleted) {
    Result<Supervision> supervision = store_->SupervisionOf(run_id);
    if (!supervision.ok()) return supervision.status();
    Result<std::vector<AttemptRow>> attempts = store_->Attempts(run_id);
    if (!attempts.ok()) return attempts.status();
    std::vector<AttemptRow> history;
    for (AttemptRow& row : *attempts) {
      if (row.attempt <= supervision->budget_from_attempt) continue;
      if (row.attempt == attempt) row.cause = end.cause;
      history.push_back(std::move(row));
    }
    const int64_t max_retries =
        run->config.value("resources", json::object()).value("max_retries", int64_t{0});
    decision = DecideRetry(outcome, history, max_retries, options_.retry);
  } else {
    end.state = RunState::kCancelled;
  }
  if (decision.retry) {
    end.retry_delay_s = decision.delay_s;
    end.retry_reason = decision.reason;
  } else if (!decision.reason.empty()) {
    end.reason += "; " + decision.reason;
  }
  ISOFLOP_RETURN_IF_ERROR(store_->EndAttempt(end));
  if (!decision.reason.empty()) spdlog::info("run {}: {}", Short(run_id), decision.reason);

  ingestor_.Untrack(run_id);
  scheduler_->Release(run_id);
  active_.erase(run_id);
  if (decision.retry) ArmRetry(run_id, decision.delay_s);
  RequestSchedule();
  return Status::OK();
}

void RunSupervisor::ArmRetry(const std::string& run_id, double delay_s) {
  auto& timer = retry_timers_[run_id];
  timer = std::make_unique<asio::steady_timer>(io_, Millis(delay_s));
  timer->async_wait([this, run_id](const boost::system::error_code& error) {
    if (error || stopped_) return;
    retry_timers_.erase(run_id);
    if (Status status = store_->RetryDue(run_id); !status.ok()) {
      spdlog::error("run {}: re-queueing after its wait: {}", Short(run_id), status.message());
      ArmRetry(run_id, std::chrono::duration<double>(kStoreRetryDelay).count());
      return;
    }
    RequestSchedule();
  });
}

void RunSupervisor::StopWorker(const std::string& run_id, ActiveRun& active, StopRequest why) {
  active.stop = why;
  // A hung worker cannot act on SIGTERM (it checks between optimizer steps): kill it outright. A
  // cancelled one gets the chance to write a checkpoint first.
  const bool graceful = why == StopRequest::kCancel;
  if (Status status = active.launcher->Cancel(active.handle, graceful); !status.ok()) {
    spdlog::error("run {}: stopping {}: {}", Short(run_id),
                  active.launcher->Describe(active.handle), status.message());
  }
  if (!graceful) return;
  active.kill_timer = std::make_unique<asio::steady_timer>(io_, Millis(options_.kill_grace_s));
  active.kill_timer->async_wait([this, run_id](const boost::system::error_code& error) {
    if (error || stopped_) return;
    auto it = active_.find(run_id);
    if (it == active_.end()) return;
    spdlog::warn("run {}: still running {:g} s after SIGTERM; killing it", Short(run_id),
                 options_.kill_grace_s);
    if (Status status = it->second.launcher->Cancel(it->second.handle, /*graceful=*/false);
        !status.ok()) {
      spdlog::error("run {}: {}", Short(run_id), status.message());
    }
  });
}

Result<std::vector<std::string>> RunSupervisor::Cancel(const std::vector<std::string>& run_ids) {
  Result<std::vector<std::string>> cancelled = store_->CancelRuns(run_ids, "cancelled by the user");
  if (!cancelled.ok()) return cancelled.status();
  for (const std::string& run_id : *cancelled) {
    if (auto timer = retry_timers_.find(run_id); timer != retry_timers_.end()) {
      timer->second->cancel();
      retry_timers_.erase(timer);
    }
    if (auto active = active_.find(run_id); active != active_.end()) {
      StopWorker(run_id, active->second, StopRequest::kCancel);
    }
  }
  return cancelled;
}

Result<std::vector<std::string>> RunSupervisor::Resume(int64_t sweep_id) {
  Result<std::vector<std::string>> requeued = store_->RequeueSweep(sweep_id, "resumed by the user");
  if (!requeued.ok()) return requeued.status();
  RequestSchedule();
  return requeued;
}

Status RunSupervisor::CheckFollowed(const std::string& run_id, int64_t attempt) const {
  auto it = active_.find(run_id);
  if (it != active_.end() && it->second.attempt == attempt && ingestor_.tracking(run_id)) {
    return Status::OK();
  }
  return Status::FailedPrecondition(
      fmt::format("run {} attempt {} is not running under this coordinator ({}); report ignored",
                  Short(run_id), attempt,
                  it == active_.end() ? std::string("no attempt of it is")
                                      : fmt::format("attempt {} is", it->second.attempt)));
}

Status RunSupervisor::WorkerAlive(const std::string& run_id, int64_t attempt) {
  ISOFLOP_RETURN_IF_ERROR(CheckFollowed(run_id, attempt));
  ingestor_.NoteAlive(run_id);
  return Status::OK();
}

Status RunSupervisor::WorkerRecord(const std::string& run_id, int64_t attempt, const json& record) {
  ISOFLOP_RETURN_IF_ERROR(CheckFollowed(run_id, attempt));
  return ingestor_.AddRecord(run_id, record);
}

void RunSupervisor::ArmIngest() {
  if (stopped_) return;
  ingest_timer_.expires_after(options_.ingest_interval);
  ingest_timer_.async_wait([this](const boost::system::error_code& error) {
    if (error || stopped_) return;
    IngestTick();
    ArmIngest();
  });
}

void RunSupervisor::IngestTick() {
  Result<std::map<std::string, IngestProgress>> progress = ingestor_.IngestAll();
  if (!progress.ok()) {
    // Offsets did not move: the same records are read again on the next tick.
    spdlog::error("ingesting worker records: {}", progress.status().message());
    return;
  }
  const Clock::time_point now = Clock::now();
  const auto timeout = Millis(options_.heartbeat_timeout_s);
  for (auto& [run_id, active] : active_) {
    auto it = progress->find(run_id);
    if (it != progress->end() && it->second.progressed) active.last_progress = now;
    // A batch job waiting for its nodes is not hung; its silence counts from when it starts.
    if (active.launcher->Waiting(active.handle)) active.last_progress = now;
    if (active.stop == StopRequest::kNone && now - active.last_progress > timeout) {
      spdlog::warn("run {}: no heartbeat for {:g} s; killing {}", Short(run_id),
                   options_.heartbeat_timeout_s, active.launcher->Describe(active.handle));
      StopWorker(run_id, active, StopRequest::kHang);
    }
  }
}

}  // namespace isoflop
