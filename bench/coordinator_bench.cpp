// Benchmarks of the coordinator against the orchestration targets of system.md section 10:
//
//   submit   `isoflop submit` (cold: the CLI starts isoflopd) to the worker's first training step,
//            and to that step in the database. Target: under 3 s for a local run.
//   idle     time a slot stands idle between consecutive runs: from the "complete" record of one
//            run to the "start" record of the next on the same slot (process exit, reap, the
//            store's writes, the next launch, the worker's own start). Target: under 1 s.
//   status   `isoflop status` (the whole process) on a database of 10,000 runs and 10 million
//   metric
//            rows, overview, one sweep (10,000 rows printed) and one run. Target: under 100 ms.
//   ingest   worker records per second from metrics.jsonl files into the database (Ingestor, with
//            offsets written in the same transactions).
//
// fake_worker (tests/fake_worker.cpp) stands in for isoflop-worker, so what is measured is the
// coordinator. Prints one JSON object; `coordinator_bench [submit|idle|status|ingest]... [--work
// DIR]` (default all, in bench/work/coordinator). The status database is kept there between runs:
// building it takes minutes.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/store/run_store.h"
#include "common/sweep/sweep_loader.h"
#include "coordinator/daemon/daemon_lock.h"
#include "coordinator/daemon/state_dir.h"
#include "coordinator/supervisor/ingestor.h"

namespace isoflop {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "coordinator_bench: %s\n", message.c_str());
  std::exit(1);
}

double UnixNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs a program to completion with `env` added, stdout and stderr to /dev/null; its exit code.
int Run(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
  std::vector<std::string> environment;
  for (char** e = environ; *e; ++e) environment.emplace_back(*e);
  environment.insert(environment.end(), env.begin(), env.end());
  std::vector<char*> argv, envp;
  std::vector<std::string> args_copy = args;
  for (std::string& a : args_copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (std::string& e : environment) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data()) != 0) {
    Die("cannot start " + args[0]);
  }
  posix_spawn_file_actions_destroy(&actions);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string Sweep(const std::string& name, int runs) {
  std::string seeds;
  for (int i = 0; i < runs; ++i) seeds += (i ? ", " : "") + std::to_string(i);
  return fmt::format(
      "name: {}\ndata: {{train: data/train.bin, val: data/val.bin}}\n"
      "sizes:\n  s: {{n_layer: 2, d_model: 64, n_head: 2, seq_len: 64}}\n"
      "variants:\n  dense: {{}}\nbudgets: {{flops: [1e12]}}\nseeds: [{}]\n"
      "train: {{batch_tokens: 4096}}\n",
      name, seeds);
}

std::vector<json> Records(const fs::path& metrics) {
  std::vector<json> records;
  std::istringstream lines(ReadFile(metrics));
  std::string line;
  while (std::getline(lines, line)) {
    json record = json::parse(line, nullptr, false);
    if (record.is_object()) records.push_back(std::move(record));
  }
  return records;
}

void StopDaemon(const StateDir& state) {
  Run({ISOFLOP_CLI_BIN, "--state-dir", state.root, "daemon", "stop"});
}

json BenchSubmit(const fs::path& work) {
  constexpr int kReps = 5;
  std::vector<double> to_worker_step, to_database;
  for (int rep = 0; rep < kReps; ++rep) {
    const fs::path dir = work / fmt::format("submit{}", rep);
    fs::remove_all(dir);
    fs::create_directories(dir);
    const StateDir state{(dir / "state").string()};
    std::ofstream(dir / "sweep.yaml") << Sweep("submit", 1);
    // The first step at once, then a long run: what is timed ends at the first step.
    const double start = UnixNow();
    const auto start_clock = Clock::now();
    const int rc = Run({ISOFLOP_CLI_BIN, "--state-dir", state.root, "submit",
                        (dir / "sweep.yaml").string(), "--worker", FAKE_WORKER_BIN, "--cpu-slots",
                        "1", "--daemon-arg=--ingest-interval-ms", "--daemon-arg=50"},
                       {"FAKE_WORKER_STEP_MS=0", "FAKE_WORKER_STEPS=100000"});
    if (rc != 0) Die("submit failed");
    auto store = RunStore::OpenReadOnly(state.database());
    if (!store.ok()) Die(store.status().message());
    double in_database = -1;
    while (Clock::now() - start_clock < 30s) {
      auto rows = (*store)->Query("SELECT count(*) FROM metrics");
      if (rows.ok() && rows->rows[0][0].get<int64_t>() > 0) {
        in_database = std::chrono::duration<double>(Clock::now() - start_clock).count();
        break;
      }
      std::this_thread::sleep_for(2ms);
    }
    auto run_id = (*store)->Query("SELECT id FROM runs");
    double first_step = -1;
    for (const json& record :
         Records(state.run(run_id->rows[0][0].get<std::string>()) + "/metrics.jsonl")) {
      if (record.value("type", "") == "train") {
        first_step = record["time"].get<double>() - start;
        break;
      }
    }
    Run({ISOFLOP_CLI_BIN, "--state-dir", state.root, "cancel", "submit"});
    StopDaemon(state);
    to_worker_step.push_back(first_step);
    to_database.push_back(in_database);
  }
  return {{"runs", kReps},
          {"submit_to_first_step_s", Median(to_worker_step)},
          {"submit_to_first_step_in_database_s", Median(to_database)},
          {"all_to_first_step_s", to_worker_step},
          {"target_s", 3.0}};
}

json BenchIdle(const fs::path& work) {
  constexpr int kRuns = 20;
  const fs::path dir = work / "idle";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const StateDir state{(dir / "state").string()};
  std::ofstream(dir / "sweep.yaml") << Sweep("idle", kRuns);
  if (Run({ISOFLOP_CLI_BIN, "--state-dir", state.root, "run", (dir / "sweep.yaml").string(),
           "--worker", FAKE_WORKER_BIN, "--cpu-slots", "1"},
          {"FAKE_WORKER_STEP_MS=10", "FAKE_WORKER_STEPS=5"}) != 0) {
    Die("idle sweep failed");
  }
  StopDaemon(state);
  // Per run: when its worker started and when it wrote its last record, on the worker's clock.
  std::vector<std::pair<double, double>> spans;
  for (const auto& entry : fs::directory_iterator(state.runs())) {
    double started = 0, completed = 0;
    for (const json& record : Records(entry.path() / "metrics.jsonl")) {
      if (record.value("type", "") == "start") started = record["attempt_time"].get<double>();
      if (record.value("type", "") == "complete") completed = record["time"].get<double>();
    }
    spans.emplace_back(started, completed);
  }
  std::sort(spans.begin(), spans.end());
  std::vector<double> gaps;
  for (size_t i = 1; i < spans.size(); ++i) gaps.push_back(spans[i].first - spans[i - 1].second);
  return {{"runs", kRuns},
          {"slots", 1},
          {"idle_between_runs_median_s", Median(gaps)},
          {"idle_between_runs_max_s", *std::max_element(gaps.begin(), gaps.end())},
          {"target_s", 1.0}};
}

// 10 sizes x 10 variants x 10 budgets x 10 seeds, as bench/plan_insert_bench.cpp.
std::string TenThousandRunSweep() {
  std::string y = "name: status-10k\ndata: {train: train.bin, val: val.bin}\nsizes:\n";
  for (int i = 0; i < 10; ++i) {
    y += fmt::format("  L{}: {{n_layer: {}, d_model: {}, n_head: {}, seq_len: 1024}}\n", i,
                     4 + 2 * i, 256 + 128 * i, 4 + 2 * i);
  }
  y += "variants:\n  dense: {ffn: dense}\n";
  for (int v = 1; v < 10; ++v) {
    y +=
        fmt::format("  lowrank{}: {{ffn: {{type: lowrank, rank: \"d_model * {} / 16\"}}}}\n", v, v);
  }
  y += "budgets:\n  flops: [";
  for (int b = 0; b < 10; ++b) y += fmt::format("{}{:.3g}", b ? ", " : "", 1e18 * (1 << b));
  y += "]\nseeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\ntrain: {batch_tokens: 524288}\n";
  return y;
}

void Exec(sqlite3* db, const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    Die(fmt::format("{}: {}", sql, error ? error : "?"));
  }
}

json BenchStatus(const fs::path& work) {
  constexpr int64_t kMetricsPerRun = 1000;
  const StateDir state{(work / "status-10k").string()};
  if (!fs::exists(fs::path(state.root) / "complete")) {
    fs::remove_all(state.root);
    if (!state.Create().ok()) Die("cannot create " + state.root);
    auto sweep = LoadSweepFromString(TenThousandRunSweep(), state.root + "/sweep.yaml");
    if (!sweep.ok()) Die(sweep.status().message());
    auto store = RunStore::Open(state.database());
    if (!store.ok()) Die(store.status().message());
    auto inserted = (*store)->InsertSweep(sweep->name, sweep->source, sweep->runs);
    if (!inserted.ok()) Die(inserted.status().message());
    auto ids = (*store)->SweepRunIds(inserted->sweep_id);
    std::fprintf(stderr, "status: writing %zu runs x %lld metric rows...\n", ids->size(),
                 static_cast<long long>(kMetricsPerRun));
    std::vector<MetricRecord> batch;
    for (size_t r = 0; r < ids->size(); ++r) {
      for (int64_t step = 1; step <= kMetricsPerRun; ++step) {
        batch.push_back({(*ids)[r], step, step * 524288, 1e15 * static_cast<double>(step),
                         3.0 - 1e-3 * static_cast<double>(step), 1e-3, 0.5, 4.5e5, 0.41});
      }
      if (batch.size() >= 200000) {
        if (Status s = (*store)->AppendMetrics(batch); !s.ok()) Die(s.message());
        batch.clear();
      }
    }
    if (Status s = (*store)->AppendMetrics(batch); !s.ok()) Die(s.message());
    // Half done, eight running, the rest waiting: every state the views distinguish.
    Exec((*store)->handle(), R"sql(
        UPDATE runs SET state = 'COMPLETED' WHERE rowid % 2 = 0;
        UPDATE runs SET state = 'RUNNING' WHERE rowid IN (1, 3, 5, 7, 9, 11, 13, 15);
        INSERT INTO supervision (run_id, heartbeat_at)
          SELECT id, strftime('%Y-%m-%dT%H:%M:%fZ', 'now') FROM runs WHERE state = 'RUNNING';
        ANALYZE;)sql");
    std::ofstream(fs::path(state.root) / "complete") << "1\n";
  }
  auto store = RunStore::OpenReadOnly(state.database());
  const std::string run_id = (*store)
                                 ->Query("SELECT id FROM runs WHERE state = 'RUNNING' LIMIT 1")
                                 ->rows[0][0]
                                 .get<std::string>();
  const int64_t metric_rows =
      (*store)->Query("SELECT count(*) FROM metrics")->rows[0][0].get<int64_t>();

  auto time_status = [&](const std::vector<std::string>& target) {
    std::vector<std::string> args = {ISOFLOP_CLI_BIN, "--state-dir", state.root, "status"};
    args.insert(args.end(), target.begin(), target.end());
    Run(args);  // warm the page cache: the target is for a database in use, not a cold disk
    std::vector<double> times;
    for (int i = 0; i < 11; ++i) {
      const auto start = Clock::now();
      if (Run(args) != 0) Die("isoflop status failed");
      times.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    }
    return Median(times);
  };
  return {{"runs", 10000},
          {"metric_rows", metric_rows},
          {"status_overview_s", time_status({})},
          {"status_sweep_s", time_status({"status-10k"})},
          {"status_sweep_json_s", time_status({"status-10k", "--json"})},
          {"status_run_s", time_status({run_id.substr(0, 16)})},
          {"database_bytes", static_cast<int64_t>(fs::file_size(state.database()))},
          {"target_s", 0.1}};
}

json BenchIngest(const fs::path& work) {
  constexpr int kRuns = 100;
  constexpr int kRecordsPerRun = 10000;
  const fs::path dir = work / "ingest";
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto sweep = LoadSweepFromString(Sweep("ingest", kRuns), (dir / "sweep.yaml").string());
  auto store = RunStore::Open((dir / "isoflop.db").string());
  if (!sweep.ok() || !store.ok()) Die("cannot set up the ingest benchmark");
  auto inserted = (*store)->InsertSweep(sweep->name, sweep->source, sweep->runs);
  auto ids = (*store)->SweepRunIds(inserted->sweep_id);
  int64_t bytes = 0;
  for (const std::string& id : *ids) {
    std::ofstream out(dir / (id + ".jsonl"));
    for (int step = 1; step <= kRecordsPerRun; ++step) {
      const std::string line =
          json{{"type", "train"},   {"step", step}, {"tokens", step * 4096}, {"flops", 1e9 * step},
               {"train_loss", 2.5}, {"lr", 1e-3},   {"grad_norm", 0.9},      {"tokens_per_s", 1e6},
               {"mfu", 0.4},        {"epoch", 0},   {"time", 1.7e9}}
              .dump();
      out << line << "\n";
      bytes += static_cast<int64_t>(line.size()) + 1;
    }
  }
  Ingestor ingestor(store->get());
  for (const std::string& id : *ids) ingestor.Track(id, (dir / (id + ".jsonl")).string(), 0, false);
  const auto start = Clock::now();
  int rounds = 0;
  for (;;) {
    auto progress = ingestor.IngestAll();
    if (!progress.ok()) Die(progress.status().message());
    ++rounds;
    if ((*store)->Query("SELECT count(*) FROM metrics")->rows[0][0].get<int64_t>() ==
        int64_t{kRuns} * kRecordsPerRun) {
      break;
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  fs::remove_all(dir);
  return {{"records", kRuns * kRecordsPerRun},
          {"runs", kRuns},
          {"bytes", bytes},
          {"transactions", rounds},
          {"seconds", seconds},
          {"records_per_s", kRuns * kRecordsPerRun / seconds}};
}

}  // namespace
}  // namespace isoflop

int main(int argc, char** argv) {
  using namespace isoflop;
  std::vector<std::string> which;
  fs::path work = fs::path(ISOFLOP_SOURCE_DIR) / "bench/work/coordinator";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--work" && i + 1 < argc) {
      work = argv[++i];
    } else {
      which.push_back(arg);
    }
  }
  if (which.empty()) which = {"submit", "idle", "status", "ingest"};
  fs::create_directories(work);
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  json out = {
      {"benchmark", "coordinator"}, {"host", host}, {"cores", std::thread::hardware_concurrency()}};
  for (const std::string& name : which) {
    std::fprintf(stderr, "running %s...\n", name.c_str());
    if (name == "submit")
      out["submit"] = BenchSubmit(work);
    else if (name == "idle")
      out["idle"] = BenchIdle(work);
    else if (name == "status")
      out["status"] = BenchStatus(work);
    else if (name == "ingest")
      out["ingest"] = BenchIngest(work);
    else
      Die("unknown benchmark " + name);
  }
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}
