// fake_worker: a stand-in for isoflop-worker that keeps its contract with the coordinator and does
// no training, so coordinator tests run in seconds without LibTorch.
//
//   fake_worker --config run.json --run-dir DIR
//
// The contract it mimics (worker/main.cpp, worker/runtime/metrics_writer.h):
//   - appends one JSON record per line to DIR/metrics.jsonl, each in one write(2) on an O_APPEND
//     descriptor; ends a torn last line (left by a SIGKILL) before appending;
//   - "start" first, then "resume" when it continues from a checkpoint, a "train" record per step,
//     a "checkpoint" record per checkpoint, an "eval" and a "complete" record at the end;
//   - resumes from DIR/checkpoints/step (written by rename, like a real checkpoint);
//   - exit 0 when complete; on SIGTERM it checkpoints at the next step boundary and exits 75.
//   - rank 0 also reports every record, and heartbeats, over the daemon's socket when the launcher
//     says where (ISOFLOP_DAEMON: coordinator/protocol/daemon_reporter.h, the real worker's
//     reporter), after writing it to the file.
// Under mpirun only rank 0 (OMPI_COMM_WORLD_RANK) writes records; the other ranks keep time.
//
// Knobs (environment; the coordinator passes its own environment on):
//   FAKE_WORKER_STEPS=N             steps of the run (default: the config's budget.steps)
//   FAKE_WORKER_STEP_MS=T           milliseconds per step (default 20)
//   FAKE_WORKER_CHECKPOINT_EVERY=K  steps between checkpoints (default 5)
//   FAKE_WORKER_FAULT=KIND@STEP     at STEP: exit:CODE (exit with CODE), hang (freeze: no record,
//                                   no heartbeat, SIGTERM ignored), stall:MS (write no record for
//                                   MS milliseconds while heartbeats go on, like a long evaluation
//                                   or a trainer stuck in a live process; then carry on), sigkill
//                                   (kill itself), sigsegv
//   FAKE_WORKER_FAULT_MATCH=TEXT    only runs whose name contains TEXT get the fault
//   FAKE_WORKER_FAULT_ONCE=1        only the first attempt of a run gets it (DIR/fault-injected)
//   FAKE_WORKER_HIDDEN_RECORDS=1    write DIR/hidden/metrics.jsonl, a file the coordinator does not
//                                   read: a worker on a host that shares no file system with it
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "coordinator/protocol/daemon_reporter.h"

namespace {

using nlohmann::json;

std::atomic<bool> stop_requested{false};

extern "C" void OnSigterm(int) {
  stop_requested.store(true);
}

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

long EnvInt(const char* name, long fallback) {
  const char* value = std::getenv(name);
  return value && *value ? std::strtol(value, nullptr, 10) : fallback;
}

std::string EnvString(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "fake_worker: %s\n", message.c_str());
  std::exit(1);
}

class Records {
 public:
  Records(const std::string& path, bool enabled) : enabled_(enabled) {
    if (!enabled_) return;
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) Die(path + ": " + std::strerror(errno));
    // End a line torn by a SIGKILL of the previous attempt, as MetricsWriter does.
    struct stat info {};
    if (::fstat(fd_, &info) == 0 && info.st_size > 0) {
      const int reader = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      char last = '\n';
      if (reader >= 0 && ::pread(reader, &last, 1, info.st_size - 1) == 1 && last != '\n') {
        Write("\n");
      }
      if (reader >= 0) ::close(reader);
    }
  }
  ~Records() {
    if (fd_ >= 0) ::close(fd_);
  }
  void Append(const json& record) {
    if (!enabled_) return;
    Write(record.dump() + "\n");
    if (reporter_) reporter_->Report(record);  // after the file, as MetricsWriter's sink
  }
  void Sync() {
    if (enabled_) ::fsync(fd_);
  }
  // Starts reporting over the daemon's socket, when the launcher says where.
  void StartReporting() {
    auto options = isoflop::DaemonReporter::OptionsFromEnvironment();
    if (!options.ok()) {
      std::fprintf(stderr, "fake_worker: not reporting: %s\n", options.status().message().c_str());
    } else if (options->has_value()) {
      reporter_ = std::make_unique<isoflop::DaemonReporter>(std::move(**options));
    }
  }
  // Stops reporting (a frozen process sends nothing).
  void StopReporting() { reporter_.reset(); }

 private:
  void Write(const std::string& text) {
    if (::write(fd_, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
      Die(std::string("write: ") + std::strerror(errno));
    }
  }
  bool enabled_;
  int fd_ = -1;
  std::unique_ptr<isoflop::DaemonReporter> reporter_;
};

struct Fault {
  std::string kind;  // "", "exit", "hang", "sigkill", "sigsegv"
  int code = 0;
  long step = -1;
};

Fault ParseFault(const std::string& run_dir, const std::string& run_name) {
  Fault fault;
  const std::string spec = EnvString("FAKE_WORKER_FAULT");
  if (spec.empty()) return fault;
  const std::string match = EnvString("FAKE_WORKER_FAULT_MATCH");
  if (!match.empty() && run_name.find(match) == std::string::npos) return fault;
  const std::string marker = run_dir + "/fault-injected";
  if (EnvInt("FAKE_WORKER_FAULT_ONCE", 0) != 0) {
    if (::access(marker.c_str(), F_OK) == 0) return fault;
  }
  const size_t at = spec.find('@');
  if (at == std::string::npos) Die("FAKE_WORKER_FAULT: expected KIND@STEP, got " + spec);
  std::string kind = spec.substr(0, at);
  fault.step = std::strtol(spec.c_str() + at + 1, nullptr, 10);
  if (kind.rfind("exit:", 0) == 0) {
    fault.code = std::atoi(kind.c_str() + 5);
    kind = "exit";
  } else if (kind.rfind("stall:", 0) == 0) {
    fault.code = std::atoi(kind.c_str() + 6);  // milliseconds
    kind = "stall";
  }
  fault.kind = kind;
  return fault;
}

void Inject(const Fault& fault, const std::string& run_dir, Records& records) {
  records.Sync();
  if (EnvInt("FAKE_WORKER_FAULT_ONCE", 0) != 0) {
    std::ofstream(run_dir + "/fault-injected") << "1\n";
  }
  std::fprintf(stderr, "fake_worker: injecting fault %s at step %ld\n", fault.kind.c_str(),
               fault.step);
  if (fault.kind == "exit") std::_Exit(fault.code);
  if (fault.kind == "sigkill") ::raise(SIGKILL);
  if (fault.kind == "sigsegv") {
    ::signal(SIGSEGV, SIG_DFL);
    ::raise(SIGSEGV);
  }
  if (fault.kind == "hang") {
    ::signal(SIGTERM, SIG_IGN);
    records.StopReporting();
    for (;;) ::pause();
  }
  if (fault.kind == "stall") {
    std::this_thread::sleep_for(std::chrono::milliseconds(fault.code));
    return;
  }
  Die("unknown fault " + fault.kind);
}

long ReadCheckpoint(const std::string& path) {
  std::ifstream in(path);
  long step = 0;
  return in >> step ? step : 0;
}

void WriteCheckpoint(const std::string& dir, long step, Records& records) {
  const std::string path = dir + "/step";
  {
    std::ofstream out(path + ".tmp", std::ios::trunc);
    out << step << "\n";
  }
  if (::rename((path + ".tmp").c_str(), path.c_str()) != 0) Die("rename checkpoint");
  records.Append({{"type", "checkpoint"}, {"step", step}, {"path", path}, {"bytes", 8}});
  records.Sync();
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path, run_dir;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--config") == 0)
      config_path = argv[++i];
    else if (std::strcmp(argv[i], "--run-dir") == 0)
      run_dir = argv[++i];
  }
  if (config_path.empty() || run_dir.empty()) Die("usage: fake_worker --config F --run-dir D");
  std::ifstream config_file(config_path);
  const json config = json::parse(config_file, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) Die(config_path + ": not a run config");
  ::signal(SIGTERM, OnSigterm);

  const std::string run_name = config.value("name", std::string());
  const long steps =
      EnvInt("FAKE_WORKER_STEPS", config.value("budget", json::object()).value("steps", long{10}));
  const long step_ms = EnvInt("FAKE_WORKER_STEP_MS", 20);
  const long checkpoint_every = std::max(1L, EnvInt("FAKE_WORKER_CHECKPOINT_EVERY", 5));
  const bool rank0 = EnvInt("OMPI_COMM_WORLD_RANK", 0) == 0;
  const std::string checkpoints = run_dir + "/checkpoints";
  ::mkdir(checkpoints.c_str(), 0755);

  std::string records_dir = run_dir;
  if (EnvInt("FAKE_WORKER_HIDDEN_RECORDS", 0) != 0) {
    records_dir += "/hidden";
    ::mkdir(records_dir.c_str(), 0755);
  }
  Records records(records_dir + "/metrics.jsonl", rank0);
  if (rank0) records.StartReporting();
  const Fault fault = rank0 ? ParseFault(run_dir, run_name) : Fault{};
  const long resumed = ReadCheckpoint(checkpoints + "/step");
  records.Append({{"type", "start"},
                  {"attempt_time", Now()},
                  {"resumed_from_step", resumed},
                  {"device", "cpu"},
                  {"gpu", nullptr},
                  {"torch", "fake"},
                  {"run_id", EnvString("ISOFLOP_RUN_ID")}});
  if (resumed > 0) records.Append({{"type", "resume"}, {"step", resumed}});
  if (fault.step == 0) Inject(fault, run_dir, records);

  const long tokens_per_step = 4096;
  for (long step = resumed + 1; step <= steps; ++step) {
    std::this_thread::sleep_for(std::chrono::milliseconds(step_ms));
    if (fault.step == step) Inject(fault, run_dir, records);
    const double loss = 4.0 * std::exp(-0.01 * static_cast<double>(step)) + 1.0;
    records.Append({{"type", "train"},
                    {"step", step},
                    {"tokens", step * tokens_per_step},
                    {"flops", 1e9 * static_cast<double>(step)},
                    {"train_loss", loss},
                    {"lr", 1e-3},
                    {"grad_norm", 1.0},
                    {"tokens_per_s", 1e6},
                    {"mfu", 0.1},
                    {"epoch", 0},
                    {"time", Now()}});
    if (step % checkpoint_every == 0 && rank0) WriteCheckpoint(checkpoints, step, records);
    if (stop_requested.load()) {
      if (rank0) WriteCheckpoint(checkpoints, step, records);
      return 75;
    }
  }
  records.Append({{"type", "eval"},
                  {"step", steps},
                  {"tokens", steps * tokens_per_step},
                  {"flops", 1e9 * static_cast<double>(steps)},
                  {"name", "val_loss"},
                  {"value", 1.5},
                  {"count", 1024}});
  records.Append({{"type", "complete"},
                  {"step", steps},
                  {"tokens", steps * tokens_per_step},
                  {"flops", 1e9 * static_cast<double>(steps)},
                  {"final_train_loss", 1.5},
                  {"time", Now()}});
  records.Sync();
  return 0;
}
