// isoflop-worker data-parallel under mpirun (CPU, Open MPI, oversubscribed on a small machine):
// 2 and 3 ranks with the same global batch and seed follow one process's loss curve (training
// and validation) within 1e-5; a 2-rank run stopped and resumed (with 2 ranks, then 3) continues
// that curve; a rank killed mid-run ends the job with a non-zero status well within the collective
// timeout; a rank that hangs turns into exit 69 from the watchdog, naming the rank and the
// collective.
// The mpirun and worker paths come in as ISOFLOP_MPIEXEC and ISOFLOP_WORKER_BIN.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/data/token_shard.h"
#include "common/run_config.h"
#include "tests/worker_testing.h"

extern char** environ;

namespace isoflop {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

// gpt, 2 layers of width 32, T = 16, V = 64. 12 sequences per step in micro-batches of 2: 6
// accumulated micro-batches in one process, 3 per rank with 2 ranks, 2 with 3. Validation over 16
// windows, split 8/8 and 6/5/5, every 8 steps and at the end; a checkpoint every 4 steps.
RunConfig TinyRun(const ScratchDir& dir, int64_t steps) {
  RunConfig run;
  run.name = "dense/tiny/C1/s0";
  run.sweep = "distributed-test";
  run.seed = 5;
  run.model.n_layer = 2;
  run.model.d_model = 32;
  run.model.n_head = 2;
  run.model.seq_len = 16;
  run.model.vocab_size = 64;
  run.train.batch_tokens = 12 * 16;
  run.train.micro_batch = 2;
  run.train.optimizer.lr = 1e-2;
  run.train.schedule.warmup = 0.1;
  run.train.log_every = 1;
  run.train.checkpoint_every_tokens = 4 * 12 * 16;
  run.eval.val_tokens = 16 * 16;
  run.eval.every_tokens = 8 * 12 * 16;
  run.data.train = dir / "train.bin";
  run.data.val = dir / "val.bin";
  run.data.tokenizer = "bytes";
  run.data.fingerprint = "sha256:test";
  run.budget.steps = steps;
  if (!fs::exists(run.data.train)) {
    WriteShard(run.data.train, MarkovTokens(40000, 64, 1));
    WriteShard(run.data.val, MarkovTokens(2000, 64, 2));
  }
  return run;
}

std::string WriteConfig(const RunConfig& run, const std::string& path) {
  std::ofstream(path) << ToJson(run).dump(2);
  return path;
}

// A job (the worker alone, or mpirun and its ranks) in a process group of its own, its output in
// a log file.
class Job {
 public:
  Job(const std::vector<std::string>& argv, const std::string& log) : log_(log) {
    std::string command = "exec";
    for (const std::string& arg : argv) command += " '" + arg + "'";
    command += " > '" + log + "' 2>&1";
    const char* args[] = {"/bin/sh", "-c", command.c_str(), nullptr};
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    const int rc =
        posix_spawn(&pid_, "/bin/sh", nullptr, &attr, const_cast<char* const*>(args), environ);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) pid_ = -1;
  }
  ~Job() {
    if (pid_ > 0 && !exited_) {  // a failed test: leave nothing running
      ::kill(-pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  pid_t pid() const { return pid_; }
  // The exit status (128 + signal for a signal), or -1 when it still runs after `limit`.
  int Wait(std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(50ms);
    }
    return -1;
  }
  std::string Log() const {
    std::ifstream in(log_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
  bool exited_ = false;
};

std::vector<std::string> WorkerArgs(const std::string& config, const std::string& run_dir,
                                    const std::vector<std::string>& extra) {
  std::vector<std::string> args = {ISOFLOP_WORKER_BIN, "--config", config, "--run-dir", run_dir};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// `mpirun -np ranks` around the worker; oversubscribed, since the test machine may have fewer
// cores than ranks.
std::vector<std::string> MpiArgs(int ranks, const std::vector<std::string>& worker) {
  std::vector<std::string> args = {ISOFLOP_MPIEXEC, "-np", std::to_string(ranks),
                                   "--oversubscribe"};
  if (::geteuid() == 0) args.push_back("--allow-run-as-root");  // containers
  args.insert(args.end(), worker.begin(), worker.end());
  return args;
}

struct Finished {
  int exit_code = -1;
  std::string log;
};

Finished RunToEnd(const std::vector<std::string>& argv, const std::string& log) {
  Job job(argv, log);
  Finished finished;
  finished.exit_code = job.Wait(120s);
  finished.log = job.Log();
  return finished;
}

std::vector<json> ReadRecords(const std::string& run_dir) {
  std::vector<json> records;
  std::ifstream in(fs::path(run_dir) / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    json record = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!record.is_discarded()) records.push_back(std::move(record));
  }
  return records;
}

std::vector<json> RecordsOfType(const std::vector<json>& records, const std::string& type) {
  std::vector<json> out;
  for (const json& r : records) {
    if (r["type"] == type) out.push_back(r);
  }
  return out;
}

// step -> train loss, or step -> val_loss.
std::map<int64_t, double> Losses(const std::vector<json>& records, const std::string& type) {
  std::map<int64_t, double> losses;
  for (const json& r : RecordsOfType(records, type)) {
    if (type == "train") losses[r["step"].get<int64_t>()] = r["train_loss"].get<double>();
    if (type == "eval" && r["name"] == "val_loss") {
      losses[r["step"].get<int64_t>()] = r["value"].get<double>();
    }
  }
  return losses;
}

// The largest |a - b| over the steps of `expected`, all of which `actual` must have.
double MaxDifference(const std::map<int64_t, double>& expected,
                     const std::map<int64_t, double>& actual) {
  EXPECT_EQ(actual.size(), expected.size());
  double max = 0;
  for (const auto& [step, loss] : expected) {
    const auto it = actual.find(step);
    if (it == actual.end()) {
      ADD_FAILURE() << "no loss at step " << step;
      continue;
    }
    max = std::max(max, std::abs(it->second - loss));
  }
  return max;
}

// A process, by a handle that cannot reach another process once its pid is reused (pidfd).
class Process {
 public:
  explicit Process(pid_t pid)
      : fd_(pid > 0 ? static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)) : -1) {}
  ~Process() {
    if (fd_ >= 0) ::close(fd_);
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  bool valid() const { return fd_ >= 0; }
  // False once the process is gone.
  bool Signal(int signal) const {
    return ::syscall(SYS_pidfd_send_signal, fd_, signal, nullptr, 0) == 0;
  }

 private:
  int fd_;
};

// The pid of rank `rank` among mpirun's children (Open MPI starts local ranks itself).
pid_t FindRank(pid_t mpirun, int rank) {
  const std::string wanted = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const size_t paren = line.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream fields(line.substr(paren + 2));
    char state = 0;
    pid_t parent = 0;
    fields >> state >> parent;
    if (parent != mpirun) continue;
    std::ifstream environ_file(entry.path() / "environ");
    for (std::string var; std::getline(environ_file, var, '\0');) {
      if (var == wanted) return static_cast<pid_t>(std::stol(name));
    }
  }
  return -1;
}

// Waits until the run has trained `steps` steps (its train records), up to `limit`.
bool WaitForSteps(const std::string& run_dir, size_t steps, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (RecordsOfType(ReadRecords(run_dir), "train").size() >= steps) return true;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

TEST(MpiWorker, TwoAndThreeRanksFollowTheSingleProcessLossCurve) {
  ScratchDir dir;
  const std::string config = WriteConfig(TinyRun(dir, 16), dir / "run.json");
  const Finished single = RunToEnd(WorkerArgs(config, dir / "single", {}), dir / "single.log");
  ASSERT_EQ(single.exit_code, 0) << single.log;
  const std::vector<json> expected = ReadRecords(dir / "single");
  ASSERT_EQ(Losses(expected, "train").size(), 16u);
  ASSERT_EQ(Losses(expected, "eval").size(), 2u);  // steps 8 and 16

  for (int ranks : {2, 3}) {
    SCOPED_TRACE(std::to_string(ranks) + " ranks");
    const std::string run_dir = dir / ("ranks" + std::to_string(ranks));
    const Finished job =
        RunToEnd(MpiArgs(ranks, WorkerArgs(config, run_dir, {})), run_dir + ".log");
    ASSERT_EQ(job.exit_code, 0) << job.log;
    const std::vector<json> records = ReadRecords(run_dir);

    // Rank 0 alone reports: one start record, one train record per step, one complete record.
    const std::vector<json> starts = RecordsOfType(records, "start");
    ASSERT_EQ(starts.size(), 1u);
    EXPECT_EQ(starts[0]["world_size"], ranks);
    EXPECT_EQ(starts[0]["micro_steps"], 6 / ranks);
    EXPECT_NE(starts[0]["collectives"].get<std::string>().find("MPI"), std::string::npos);
    EXPECT_EQ(RecordsOfType(records, "complete").size(), 1u);
    EXPECT_EQ(RecordsOfType(records, "checkpoint").size(), 4u);

    const double train = MaxDifference(Losses(expected, "train"), Losses(records, "train"));
    const double val = MaxDifference(Losses(expected, "eval"), Losses(records, "eval"));
    std::cout << ranks << " ranks: max |train loss - one process's| " << train
              << ", max |val loss - one process's| " << val << "\n";
    EXPECT_LT(train, 1e-5);
    EXPECT_LT(val, 1e-5);
    for (const json& eval : RecordsOfType(records, "eval")) {
      EXPECT_EQ(eval["count"], 16 * 16);  // every validation window, once over all ranks
    }
  }
}

// Resumed with 2 ranks, and then with 3: the checkpoint holds the global data position, so the
// world size may change between attempts.
TEST(MpiWorker, AStoppedAndResumedTwoRankRunContinuesTheSameCurve) {
  ScratchDir dir;
  const std::string config = WriteConfig(TinyRun(dir, 12), dir / "run.json");
  const Finished single = RunToEnd(WorkerArgs(config, dir / "single", {}), dir / "single.log");
  ASSERT_EQ(single.exit_code, 0) << single.log;
  const std::map<int64_t, double> expected = Losses(ReadRecords(dir / "single"), "train");

  const std::string run_dir = dir / "run";
  const Finished first = RunToEnd(
      MpiArgs(2, WorkerArgs(config, run_dir, {"--stop-after-steps", "6"})), run_dir + ".1.log");
  ASSERT_EQ(first.exit_code, 75) << first.log;
  EXPECT_TRUE(fs::exists(run_dir + "/checkpoints/ckpt_6.pt"));
  const Finished second = RunToEnd(
      MpiArgs(2, WorkerArgs(config, run_dir, {"--stop-after-steps", "9"})), run_dir + ".2.log");
  ASSERT_EQ(second.exit_code, 75) << second.log;
  const Finished third = RunToEnd(MpiArgs(3, WorkerArgs(config, run_dir, {})), run_dir + ".3.log");
  ASSERT_EQ(third.exit_code, 0) << third.log;

  const std::vector<json> records = ReadRecords(run_dir);
  const std::vector<json> resumes = RecordsOfType(records, "resume");
  ASSERT_EQ(resumes.size(), 2u);
  EXPECT_EQ(resumes[0]["step"], 6);
  EXPECT_EQ(resumes[1]["step"], 9);
  const double train = MaxDifference(expected, Losses(records, "train"));
  std::cout
      << "2 ranks stopped at step 6, resumed to step 9, resumed with 3 ranks: max |train loss "
         "- one process's| "
      << train << "\n";
  EXPECT_LT(train, 1e-5);
  EXPECT_EQ(records.back()["type"], "complete");
}

TEST(MpiWorker, AKilledRankEndsTheJobWithinTheTimeout) {
  ScratchDir dir;
  const std::string config = WriteConfig(TinyRun(dir, 100000), dir / "run.json");
  const std::string run_dir = dir / "run";
  Job job(MpiArgs(2, WorkerArgs(config, run_dir, {"--collective-timeout", "30"})),
          run_dir + ".log");
  ASSERT_TRUE(WaitForSteps(run_dir, 2, 60s)) << job.Log();
  const Process rank1(FindRank(job.pid(), 1));
  ASSERT_TRUE(rank1.valid()) << "rank 1 of mpirun " << job.pid() << " not found";
  const auto killed = std::chrono::steady_clock::now();
  ASSERT_TRUE(rank1.Signal(SIGKILL));
  const int exit_code = job.Wait(60s);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  std::cout << "killed rank 1: the job exited " << exit_code << " after " << seconds << " s\n";
  EXPECT_NE(exit_code, -1) << "still running a minute after rank 1 was killed\n" << job.Log();
  EXPECT_NE(exit_code, 0) << job.Log();
  EXPECT_LT(seconds, 30.0);
  EXPECT_TRUE(RecordsOfType(ReadRecords(run_dir), "complete").empty());
}

TEST(MpiWorker, AHungRankTurnsIntoExit69NamingTheRankAndCollective) {
  ScratchDir dir;
  const std::string config = WriteConfig(TinyRun(dir, 100000), dir / "run.json");
  const std::string run_dir = dir / "run";
  Job job(MpiArgs(2, WorkerArgs(config, run_dir, {"--collective-timeout", "3"})), run_dir + ".log");
  ASSERT_TRUE(WaitForSteps(run_dir, 2, 60s)) << job.Log();
  const Process rank1(FindRank(job.pid(), 1));
  ASSERT_TRUE(rank1.valid()) << "rank 1 of mpirun " << job.pid() << " not found";
  const auto stopped = std::chrono::steady_clock::now();
  ASSERT_TRUE(rank1.Signal(SIGSTOP));  // alive, holding its socket, answering nothing
  const int exit_code = job.Wait(60s);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - stopped).count();
  rank1.Signal(SIGKILL);  // mpirun should have ended it; a stopped process may outlive it
  const std::string log = job.Log();
  const size_t message = log.rfind('\n', log.find("did not finish")) + 1;  // its line, or the first
  std::cout << "stopped rank 1: the job exited " << exit_code << " after " << seconds
            << " s: " << log.substr(message, log.find('\n', message) - message) << "\n";
  EXPECT_EQ(exit_code, 69) << log;
  EXPECT_GE(seconds, 3.0);
  EXPECT_LT(seconds, 30.0);
  EXPECT_NE(log.find("rank 0 of 2: collective \""), std::string::npos) << log;
  EXPECT_NE(log.find("did not finish within 3 s"), std::string::npos) << log;
}

}  // namespace
}  // namespace isoflop
