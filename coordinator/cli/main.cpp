// isoflop: the command line of the isoflop system (system.md section 1, the user journey).
//
// Each subcommand is a thin function over the libraries: it parses flags, calls one entry point,
// prints, and turns a non-OK Status into a message on stderr and exit status 1 (2 for usage errors,
// as CLI11 does). Commands that change the results database (submit, cancel, resume, run) go
// through isoflopd, its only writer, starting it when none runs; commands that read it (status,
// results, query, logs, reproduce) open it read-only themselves.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/atomic_file.h"
#include "common/store/results_format.h"
#include "common/store/run_store.h"
#include "common/sweep/sweep_loader.h"
#include "coordinator/cli/daemon_control.h"
#include "coordinator/cli/plan_table.h"
#include "coordinator/cli/status_view.h"
#include "coordinator/daemon/installation.h"
#include "coordinator/daemon/state_dir.h"

#ifdef ISOFLOP_HAVE_TEXT
#include "coordinator/cli/data_command.h"
#endif
#ifdef ISOFLOP_HAVE_FIT
#include "coordinator/cli/curves_command.h"
#endif

namespace isoflop {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

int Fail(const Status& status) {
  std::fprintf(stderr, "isoflop: %s\n", status.message().c_str());
  return 1;
}

Result<ResultFormat> ParseFormat(const std::string& s) {
  ResultFormat f;
  if (!Parse(s, &f))
    return Status::InvalidArgument("--format: expected table, csv or json, got " + s);
  return f;
}

Result<std::unique_ptr<RunStore>> OpenResults(const StateDir& state) {
  std::error_code error;
  if (!fs::exists(state.database(), error)) {
    return Status::NotFound(
        fmt::format("no results database in {} (nothing submitted yet)", state.root));
  }
  return RunStore::OpenReadOnly(state.database());
}

struct PlanFlags {
  std::string file;
  std::string format = "table";
  double mfu = ThroughputModel().mfu;
  double peak_tflops = ThroughputModel().peak_flops / 1e12;
  std::string configs_dir;  // plan --write-configs: one run.json per run
};

void AddPlanFlags(CLI::App* cmd, PlanFlags* f) {
  cmd->add_option("file", f->file, "sweep YAML file")->required();
  cmd->add_option("--format", f->format, "table, csv or json")->capture_default_str();
  cmd->add_option("--mfu", f->mfu, "model FLOP utilisation assumed for GPU-hours")
      ->capture_default_str();
  cmd->add_option("--peak-tflops", f->peak_tflops, "peak TFLOP/s per GPU assumed for GPU-hours")
      ->capture_default_str();
}

// plan --write-configs DIR: each run's resolved config, the file `isoflop-worker --config` reads,
// as DIR/<run name with '/' as '_'>.json. Each file is written whole or not at all.
Status WriteRunConfigs(const ExpandedSweep& sweep, const std::string& dir) {
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) return Status::IOError(fmt::format("{}: cannot create: {}", dir, error.message()));
  std::map<std::string, std::string> written;  // file -> the run it holds
  for (const RunConfig& run : sweep.runs) {
    std::string file = run.name;
    std::replace(file.begin(), file.end(), '/', '_');
    if (auto [it, fresh] = written.emplace(file, run.name); !fresh) {
      return Status::InvalidArgument(
          fmt::format("--write-configs: runs {} and {} would both be written to {}.json; rename a "
                      "size or variant",
                      it->second, run.name, file));
    }
    ISOFLOP_RETURN_IF_ERROR(
        WriteFileAtomically((fs::path(dir) / (file + ".json")).string(), ToJson(run).dump(2)));
  }
  return Status::OK();
}

void AddDaemonFlags(CLI::App* cmd, DaemonLaunchFlags* f) {
  cmd->add_option("--worker", f->worker,
                  "worker binary, if isoflopd must be started (default: $ISOFLOP_WORKER, then the "
                  "build tree's worker/isoflop-worker)");
  cmd->add_option("--cpu-slots", f->cpu_slots,
                  "if isoflopd must be started: run on N CPU slots even when GPUs are present");
  cmd->add_option("--listen", f->listen,
                  "if isoflopd must be started: also serve TCP on HOST:PORT");
  cmd->add_option("--daemon-arg", f->extra,
                  "if isoflopd must be started: pass this argument on (repeatable)")
      ->allow_extra_args(false);
}

int RunPlan(const PlanFlags& f) {
  auto format = ParseFormat(f.format);
  if (!format.ok()) return Fail(format.status());
  auto sweep = LoadSweep(f.file);
  if (!sweep.ok()) return Fail(sweep.status());
  ThroughputModel model;
  model.mfu = f.mfu;
  model.peak_flops = f.peak_tflops * 1e12;
  if (!f.configs_dir.empty()) {
    if (Status st = WriteRunConfigs(*sweep, f.configs_dir); !st.ok()) return Fail(st);
  }
  std::cout << FormatResult(PlanRows(*sweep, model), *format);
  // The summary goes to stderr so that `--format csv|json > file` stays machine-readable.
  std::cerr << PlanSummary(*sweep, model);
  return 0;
}

// Hands the sweep file to the daemon, which plans and stores it. Returns the sweep id.
Result<int64_t> Submit(const std::string& file, const StateDir& state,
                       const DaemonLaunchFlags& daemon) {
  std::error_code error;
  const fs::path path = fs::absolute(file, error);
  if (error || !fs::is_regular_file(path, error)) {
    return Status::NotFound(fmt::format("{}: no such sweep file", file));
  }
  Result<DaemonClient> client = ConnectOrStartDaemon(state, daemon);
  if (!client.ok()) return client.status();
  Result<json> reply = client->Call(protocol::Submit{path.lexically_normal().string()});
  if (!reply.ok()) return reply.status();
  for (const json& dropped : reply->value("dropped", json::array())) {
    std::cerr << fmt::format("dropped {}: {}\n", dropped.value("name", ""),
                             dropped.value("reason", ""));
  }
  for (const json& warning : reply->value("warnings", json::array())) {
    std::cerr << "warning: " << warning.get<std::string>() << "\n";
  }
  std::cerr << fmt::format("sweep {} #{}: {} runs, {} added, {} already present\n",
                           reply->value("name", ""), reply->value("sweep_id", int64_t{0}),
                           reply->value("runs", int64_t{0}), reply->value("runs_added", int64_t{0}),
                           reply->value("runs_existing", int64_t{0}));
  return reply->value("sweep_id", int64_t{0});
}

int RunSubmit(const PlanFlags& f, bool dry_run, const StateDir& state,
              const DaemonLaunchFlags& daemon) {
  if (dry_run) return RunPlan(f);
  Result<int64_t> sweep_id = Submit(f.file, state, daemon);
  if (!sweep_id.ok()) return Fail(sweep_id.status());
  std::cout << *sweep_id << "\n";
  return 0;
}

int RunQuery(const StateDir& state, const std::string& sql, const std::string& format_name) {
  auto format = ParseFormat(format_name);
  if (!format.ok()) return Fail(format.status());
  auto store = OpenResults(state);
  if (!store.ok()) return Fail(store.status());
  auto result = (*store)->Query(sql);
  if (!result.ok()) return Fail(result.status());
  std::cout << FormatResult(*result, *format);
  return 0;
}

Status PrintResults(const RunStore& store, int64_t sweep_id, ResultFormat format) {
  auto result = store.Query(fmt::format(
      "SELECT name AS run, variant, size, budget, seed, state, params, tokens, flops, train_loss, "
      "val_loss FROM sweep_results WHERE sweep_id = {} ORDER BY variant, size, budget, seed",
      sweep_id));
  if (!result.ok()) return result.status();
  std::cout << FormatResult(*result, format);
  return Status::OK();
}

int RunResults(const StateDir& state, const std::string& sweep, const std::string& format_name) {
  auto format = ParseFormat(format_name);
  if (!format.ok()) return Fail(format.status());
  auto store = OpenResults(state);
  if (!store.ok()) return Fail(store.status());
  auto sweep_id = (*store)->FindSweep(sweep);
  if (!sweep_id.ok()) return Fail(sweep_id.status());
  if (Status printed = PrintResults(**store, *sweep_id, *format); !printed.ok()) {
    return Fail(printed);
  }
  return 0;
}

Result<std::string> RenderStatus(const RunStore& store, const std::string& target, bool as_json) {
  if (target.empty()) return RenderSweeps(store, as_json);
  Result<int64_t> sweep_id = store.FindSweep(target);
  if (sweep_id.ok()) return RenderSweep(store, *sweep_id, as_json);
  if (sweep_id.status().code() != Status::Code::kNotFound) return sweep_id.status();
  Result<std::string> run_id = store.FindRun(target);
  if (!run_id.ok()) {
    if (run_id.status().code() == Status::Code::kInvalidArgument &&
        target.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
      return Status::NotFound(fmt::format("no sweep or run '{}'", target));
    }
    return run_id.status();
  }
  return RenderRun(store, *run_id, as_json);
}

int RunStatus(const StateDir& state, const std::string& target, bool watch, bool as_json) {
  auto store = OpenResults(state);
  if (!store.ok()) return Fail(store.status());
  for (;;) {
    Result<std::string> text = RenderStatus(**store, target, as_json);
    if (!text.ok()) return Fail(text.status());
    std::string out;
    if (watch) out += "\x1b[H\x1b[2J";  // home, clear screen
    if (!as_json) {
      std::optional<pid_t> daemon = RunningDaemon(state);
      out += daemon ? fmt::format("isoflopd running (pid {}) on {}\n\n", *daemon, state.root)
                    : fmt::format("isoflopd not running on {}\n\n", state.root);
    }
    out += *text;
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    if (!watch) return 0;
    std::this_thread::sleep_for(1s);
  }
}

bool IsFinal(const std::string& state) {
  return state == "COMPLETED" || state == "FAILED" || state == "LOST" || state == "CANCELLED";
}

int RunLogs(const StateDir& state, const std::string& target, bool follow) {
  auto store = OpenResults(state);
  if (!store.ok()) return Fail(store.status());
  Result<std::string> run_id = (*store)->FindRun(target);
  if (!run_id.ok()) return Fail(run_id.status());
  const std::string path = state.run(*run_id) + "/worker.log";
  std::ifstream log;
  auto run_state = [&]() -> std::string {
    Result<RunRow> run = (*store)->Run(*run_id);
    return run.ok() ? ToString(run->state) : "";
  };
  if (!follow && !fs::exists(path)) {
    return Fail(Status::NotFound(fmt::format("run {} has no log yet ({})", target, path)));
  }
  std::string chunk(65536, '\0');
  for (;;) {
    if (!log.is_open()) log.open(path, std::ios::binary);
    bool wrote = false;
    while (log.is_open()) {
      log.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
      const std::streamsize n = log.gcount();
      if (n <= 0) break;
      std::fwrite(chunk.data(), 1, static_cast<size_t>(n), stdout);
      wrote = true;
    }
    std::fflush(stdout);
    if (!follow) return 0;
    log.clear();  // at end of file: keep reading from here as the worker appends
    // A finished run writes no more: stop once it is final and everything is printed.
    if (!wrote && IsFinal(run_state())) return 0;
    std::this_thread::sleep_for(200ms);
  }
}

int RunCancel(const StateDir& state, const std::string& target, const DaemonLaunchFlags& daemon) {
  Result<DaemonClient> client = ConnectOrStartDaemon(state, daemon);
  if (!client.ok()) return Fail(client.status());
  Result<json> reply = client->Call(protocol::Cancel{target});
  if (!reply.ok()) return Fail(reply.status());
  const json& cancelled = (*reply)["cancelled"];
  for (const json& id : cancelled) std::cout << id.get<std::string>().substr(0, 16) << "\n";
  std::cerr << fmt::format("{} run(s) cancelled\n", cancelled.size());
  return 0;
}

int RunResume(const StateDir& state, const std::string& sweep, const DaemonLaunchFlags& daemon) {
  Result<DaemonClient> client = ConnectOrStartDaemon(state, daemon);
  if (!client.ok()) return Fail(client.status());
  Result<json> reply = client->Call(protocol::Resume{sweep});
  if (!reply.ok()) return Fail(reply.status());
  std::cerr << fmt::format("sweep #{}: {} run(s) queued again\n", reply->value("sweep_id", 0),
                           (*reply)["requeued"].size());
  return 0;
}

int RunDaemon(const StateDir& state, const std::string& action, const DaemonLaunchFlags& flags) {
  if (action == "start") {
    if (Status created = state.Create(); !created.ok()) return Fail(created);
    if (Status started = StartDaemon(state, flags); !started.ok()) return Fail(started);
    std::cout << fmt::format("isoflopd started (pid {}) on {}\n", RunningDaemon(state).value_or(0),
                             state.root);
    return 0;
  }
  if (action == "stop") {
    if (Status stopped = StopDaemon(state); !stopped.ok()) return Fail(stopped);
    std::cout
        << "isoflopd stopped; running workers continue and are adopted by the next isoflopd\n";
    return 0;
  }
  std::optional<pid_t> pid = RunningDaemon(state);
  if (!pid) {
    std::cout << fmt::format("isoflopd not running on {}\n", state.root);
    return 3;  // as `systemctl status` does for a stopped service
  }
  Result<DaemonClient> client = ConnectToDaemon(state);
  Result<json> ping = client.ok() ? client->Call(protocol::Ping{}) : Result<json>(client.status());
  if (!ping.ok()) {
    std::cout << fmt::format("isoflopd (pid {}) holds {} but does not answer: {}\n", *pid,
                             state.root, ping.status().message());
    return 1;
  }
  std::cout << fmt::format("isoflopd {} running (pid {}) on {}\n", ping->value("version", ""), *pid,
                           state.root);
  std::cout << fmt::format("slots: {} ({} free), {} active runs\nworker: {}\n",
                           (*ping)["slots"].size(), ping->value("free_slots", 0),
                           ping->value("active_runs", 0), ping->value("worker", ""));
  return 0;
}

std::string ShellQuote(const std::string& word) {
  if (!word.empty() && word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                              "0123456789-_./=:,+@%") == std::string::npos) {
    return word;
  }
  std::string quoted = "'";
  for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

int RunReproduce(const StateDir& state, const std::string& target) {
  auto store = OpenResults(state);
  if (!store.ok()) return Fail(store.status());
  Result<std::string> run_id = (*store)->FindRun(target);
  if (!run_id.ok()) return Fail(run_id.status());
  Result<QueryResult> row = (*store)->Query(
      fmt::format("SELECT r.name, s.name, r.seed, r.state, r.host, r.provenance, r.config "
                  "FROM runs AS r JOIN sweeps AS s ON s.id = r.sweep_id WHERE r.id = '{}'",
                  *run_id));
  if (!row.ok()) return Fail(row.status());
  const auto& values = row->rows.at(0);
  const json provenance = values[5].is_string()
                              ? json::parse(values[5].get<std::string>(), nullptr, false)
                              : json::object();
  const json config = json::parse(values[6].get<std::string>(), nullptr, false);
  const json coordinator = provenance.value("coordinator", json::object());
  const json worker = provenance.value("worker", json::object());

  std::cout << fmt::format("# run {} ({}) of sweep {}, {}\n", *run_id, values[0].get<std::string>(),
                           values[1].get<std::string>(), values[3].get<std::string>());
  if (provenance.is_object() && !provenance.empty()) {
    std::cout << fmt::format("# isoflop {}, git {}{}, {}\n",
                             coordinator.value("isoflop_version", "?"),
                             coordinator.value("git_commit", "?"),
                             coordinator.value("git_dirty", false) ? " (modified)" : "",
                             coordinator.value("compiler", "?"));
    std::cout << fmt::format(
        "# worker {}: LibTorch {}, device {}{}\n", provenance.value("worker_binary", "?"),
        worker.value("torch", "?"), worker.value("device", "?"),
        worker.value("gpu", json()).is_string() ? " (" + worker["gpu"].get<std::string>() + ")"
                                                : "");
    std::cout << fmt::format("# host {}, launcher {}, devices {}, seed {}\n",
                             provenance.value("host", "?"), provenance.value("launcher", "?"),
                             provenance.value("devices", json::array()).dump(),
                             values[2].get<int64_t>());
    if (provenance.contains("mpi")) std::cout << "# " << provenance.value("mpi", "") << "\n";
    if (provenance.contains("command")) {
      std::string command;
      for (const json& word : provenance["command"])
        command += ShellQuote(word.get<std::string>()) + " ";
      if (!command.empty()) command.pop_back();
      std::cout << "# last launched as: " << command << "\n";
    }
  } else {
    std::cout << "# never launched: no provenance recorded yet\n";
  }
  const std::string worker_binary = provenance.value("worker_binary", FindWorkerBinary(""));
  std::cout << "\n# to run it again from scratch (a fresh run directory; the config below):\n";
  std::cout << fmt::format("{} --config {} --run-dir {}\n\n", ShellQuote(worker_binary),
                           ShellQuote(state.run(*run_id) + "/run.json"),
                           ShellQuote(fmt::format("reproduce-{}", run_id->substr(0, 16))));
  std::cout << "# run.json\n" << config.dump(2) << "\n";
  return 0;
}

int RunRun(const std::string& file, const StateDir& state, const DaemonLaunchFlags& daemon,
           const std::string& format_name) {
  auto format = ParseFormat(format_name);
  if (!format.ok()) return Fail(format.status());
  Result<int64_t> sweep_id = Submit(file, state, daemon);
  if (!sweep_id.ok()) return Fail(sweep_id.status());
  auto store = OpenResults(state);
  if (!store.ok()) return Fail(store.status());
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  std::string last_line;
  auto last_print = std::chrono::steady_clock::now();
  for (;;) {
    Result<SweepProgress> progress = ReadSweepProgress(**store, *sweep_id);
    if (!progress.ok()) return Fail(progress.status());
    const std::string line = ProgressLine(*progress, *sweep_id);
    const auto now = std::chrono::steady_clock::now();
    if (tty) {
      std::fprintf(stderr, "\r%s\x1b[K", line.c_str());  // rewrite the line in place
    } else if (line != last_line && (now - last_print > 5s || progress->finished())) {
      std::fprintf(stderr, "%s\n", line.c_str());
      last_print = now;
      last_line = line;
    }
    if (progress->finished()) {
      if (tty) std::fprintf(stderr, "\n");
      if (Status printed = PrintResults(**store, *sweep_id, *format); !printed.ok()) {
        return Fail(printed);
      }
      if (progress->completed != progress->runs) {
        std::fprintf(stderr,
                     "isoflop: %lld of %lld runs did not complete; `isoflop status %lld` says why, "
                     "`isoflop resume %lld` tries them again\n",
                     static_cast<long long>(progress->runs - progress->completed),
                     static_cast<long long>(progress->runs), static_cast<long long>(*sweep_id),
                     static_cast<long long>(*sweep_id));
        return 1;
      }
      return 0;
    }
    std::this_thread::sleep_for(250ms);
  }
}

}  // namespace
}  // namespace isoflop

int main(int argc, char** argv) {
  using namespace isoflop;
  CLI::App app{"isoflop: how does each transformer variant's loss scale with training compute?"};
  app.require_subcommand(1);
  std::string state_flag;
  app.add_option("--state-dir", state_flag,
                 "coordinator state directory (default $ISOFLOP_STATE_DIR or ./.isoflop)");
  app.add_flag_callback("--version", [] {
    std::printf("isoflop %s\n", VersionString().c_str());
    std::exit(0);
  });

  PlanFlags plan_flags;
  CLI::App* plan =
      app.add_subcommand("plan", "expand a sweep and print its runs, tokens and FLOPs");
  AddPlanFlags(plan, &plan_flags);
  plan->add_option(
      "--write-configs", plan_flags.configs_dir,
      "also write each run's resolved config (isoflop-worker --config) into this folder");

  PlanFlags submit_flags;
  DaemonLaunchFlags submit_daemon;
  bool dry_run = false;
  CLI::App* submit =
      app.add_subcommand("submit", "queue a sweep's runs (starts isoflopd if none runs)");
  AddPlanFlags(submit, &submit_flags);
  AddDaemonFlags(submit, &submit_daemon);
  submit->add_flag("--dry-run", dry_run, "print the plan and write nothing");

  std::string run_file, run_format = "table";
  DaemonLaunchFlags run_daemon;
  CLI::App* run = app.add_subcommand(
      "run", "submit a sweep, show its progress until it ends, then print its results");
  run->add_option("file", run_file, "sweep YAML file")->required();
  run->add_option("--format", run_format, "results as table, csv or json")->capture_default_str();
  AddDaemonFlags(run, &run_daemon);

  std::string status_target;
  bool watch = false, status_json = false;
  CLI::App* status = app.add_subcommand("status", "state and progress of sweeps and runs");
  status->add_option("target", status_target, "a sweep (name or number) or a run id (prefix)");
  status->add_flag("--watch,-w", watch, "refresh every second");
  status->add_flag("--json", status_json, "machine-readable output");

  std::string logs_run;
  bool follow = false;
  CLI::App* logs = app.add_subcommand("logs", "a run's worker log");
  logs->add_option("run", logs_run, "run id (prefix)")->required();
  logs->add_flag("--follow,-f", follow, "keep printing as the worker writes, until the run ends");

  std::string cancel_target;
  DaemonLaunchFlags cancel_daemon;
  CLI::App* cancel =
      app.add_subcommand("cancel", "cancel a run or every unfinished run of a sweep");
  cancel->add_option("target", cancel_target, "a run id (prefix) or a sweep (name or number)")
      ->required();

  std::string resume_sweep;
  DaemonLaunchFlags resume_daemon;
  CLI::App* resume =
      app.add_subcommand("resume", "queue a sweep's failed, lost and cancelled runs again");
  resume->add_option("sweep", resume_sweep, "sweep name or number")->required();
  AddDaemonFlags(resume, &resume_daemon);

  std::string daemon_action;
  DaemonLaunchFlags daemon_flags;
  CLI::App* daemon = app.add_subcommand("daemon", "start, stop or inspect isoflopd");
  daemon->add_option("action", daemon_action, "start, stop or status")
      ->required()
      ->check(CLI::IsMember({"start", "stop", "status"}));
  AddDaemonFlags(daemon, &daemon_flags);

  std::string reproduce_run;
  CLI::App* reproduce =
      app.add_subcommand("reproduce", "the command, provenance and config that re-run a run");
  reproduce->add_option("run", reproduce_run, "run id (prefix)")->required();

  std::string sql, query_format = "table";
  CLI::App* query = app.add_subcommand("query", "read-only SQL on the results database");
  query->add_option("sql", sql, "one SELECT statement")->required();
  query->add_option("--format", query_format, "table, csv or json")->capture_default_str();

  std::string results_sweep, results_format = "table";
  CLI::App* results = app.add_subcommand("results", "final metrics of every run of a sweep");
  results->add_option("sweep", results_sweep, "sweep name or id")->required();
  results->add_option("--format", results_format, "table, csv or json")->capture_default_str();

#ifdef ISOFLOP_HAVE_FIT
  CurvesFlags curves_flags;
  CLI::App* curves = AddCurvesCommand(&app, &curves_flags);
#endif

#ifdef ISOFLOP_HAVE_TEXT
  DataPrepareFlags data_flags;
  CLI::App* data = app.add_subcommand("data", "prepare token shards from text");
  data->require_subcommand(1);
  AddDataPrepareCommand(data, &data_flags);
#endif

  CLI11_PARSE(app, argc, argv);
  const StateDir state = StateDir::Resolve(state_flag);
  if (*plan) return RunPlan(plan_flags);
  if (*submit) return RunSubmit(submit_flags, dry_run, state, submit_daemon);
  if (*run) return RunRun(run_file, state, run_daemon, run_format);
  if (*status) return RunStatus(state, status_target, watch, status_json);
  if (*logs) return RunLogs(state, logs_run, follow);
  if (*cancel) return RunCancel(state, cancel_target, cancel_daemon);
  if (*resume) return RunResume(state, resume_sweep, resume_daemon);
  if (*daemon) return RunDaemon(state, daemon_action, daemon_flags);
  if (*reproduce) return RunReproduce(state, reproduce_run);
  if (*query) return RunQuery(state, sql, query_format);
  if (*results) return RunResults(state, results_sweep, results_format);
#ifdef ISOFLOP_HAVE_FIT
  if (*curves) return RunCurves(state, curves_flags);
#endif
#ifdef ISOFLOP_HAVE_TEXT
  if (*data) return RunDataPrepare(data_flags);
#endif
  return 2;
}
