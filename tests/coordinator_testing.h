// Test support for the coordinator's end-to-end tests: a scratch state directory, an isoflopd run
// as a child process of the test (so it can be SIGKILLed and restarted), sweeps of N runs, and
// read-only queries of the results database. Paths of the programs come in as compile definitions
// (tests/coordinator.cmake): ISOFLOPD_BIN, ISOFLOP_CLI_BIN, FAKE_WORKER_BIN.
#pragma once

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/store/run_store.h"
#include "coordinator/daemon/state_dir.h"
#include "coordinator/launcher/process.h"
#include "coordinator/protocol/daemon_client.h"

namespace isoflop::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A fresh directory under the system's temp directory, removed at the end. Short, because the
// daemon's socket path inside it must fit in sockaddr_un (108 bytes).
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = (fs::temp_directory_path() / "isoflop-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~ScratchDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// YAML of a sweep with `runs` runs of a tiny model (one size, one budget, seeds 0..runs-1), with
// `extra` appended (a resources: block, say).
inline std::string SweepYaml(const std::string& name, int runs, const std::string& extra = "") {
  std::string seeds;
  for (int i = 0; i < runs; ++i) seeds += (i ? ", " : "") + std::to_string(i);
  return fmt::format(
      "name: {}\n"
      "data: {{train: data/train.bin, val: data/val.bin}}\n"
      "sizes:\n  s: {{n_layer: 2, d_model: 64, n_head: 2, seq_len: 64}}\n"
      "variants:\n  dense: {{}}\n"
      "budgets: {{flops: [1e12]}}\n"
      "seeds: [{}]\n"
      "train: {{batch_tokens: 4096}}\n{}",
      name, seeds, extra);
}

inline std::string WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Polls `done` every 20 ms until it holds or `timeout` passes.
inline bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// isoflopd on a state directory, in the foreground, as a child of the test.
class TestDaemon {
 public:
  TestDaemon(std::string state_dir, std::vector<std::string> args,
             std::vector<std::pair<std::string, std::string>> env,
             std::string worker = FAKE_WORKER_BIN)
      : state_{std::move(state_dir)},
        args_(std::move(args)),
        env_(std::move(env)),
        worker_(std::move(worker)) {}
  ~TestDaemon() {
    Kill(SIGKILL);
    // In a sanitizer build, a report on the daemon's stderr is a failure even if the test passed.
    const std::string errors = ReadFile(state_.root + "/isoflopd.stderr");
    EXPECT_EQ(errors.find("runtime error"), std::string::npos) << errors;
    EXPECT_EQ(errors.find("Sanitizer"), std::string::npos) << errors;
  }

  // Starts isoflopd and waits until it answers on its socket.
  void Start() {
    ASSERT_EQ(pid_, 0) << "already running";
    SpawnOptions options;
    options.argv = {ISOFLOPD_BIN, "--state-dir", state_.root, "--worker", worker_};
    options.argv.insert(options.argv.end(), args_.begin(), args_.end());
    options.env = env_;
    options.log_path = state_.root + "/isoflopd.stderr";
    fs::create_directories(state_.root);
    Result<pid_t> pid = SpawnProcessGroup(options);
    ASSERT_TRUE(pid.ok()) << pid.status().ToString();
    pid_ = *pid;
    const bool up = WaitFor(
        [&] {
          Result<DaemonClient> client = DaemonClient::ConnectUnix(state_.socket(), 2s);
          return client.ok() && client->Call(protocol::Ping{}).ok();
        },
        20s);
    ASSERT_TRUE(up) << "isoflopd did not come up:\n" << ReadFile(options.log_path);
  }

  // Sends `signal` and reaps the daemon (its workers live on).
  void Kill(int signal) {
    if (pid_ <= 0) return;
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = 0;
  }

  // Waits for the daemon to exit by itself; its exit status, or -1 if a signal ended it.
  int Wait() {
    int status = 0;
    if (pid_ <= 0 || ::waitpid(pid_, &status, 0) != pid_) return -1;
    pid_ = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  Result<nlohmann::json> Call(const protocol::RequestBody& request) {
    Result<DaemonClient> client = DaemonClient::ConnectUnix(state_.socket(), 30s);
    if (!client.ok()) return client.status();
    return client->Call(request);
  }

  int64_t Submit(const std::string& yaml_path) {
    Result<nlohmann::json> reply = Call(protocol::Submit{yaml_path});
    EXPECT_TRUE(reply.ok()) << reply.status().ToString();
    return reply.ok() ? reply->value("sweep_id", int64_t{0}) : 0;
  }

  pid_t pid() const { return pid_; }
  bool alive() const { return pid_ > 0 && ::kill(pid_, 0) == 0; }
  const StateDir& state() const { return state_; }
  std::string log() const { return ReadFile(state_.daemon_log()); }

 private:
  StateDir state_;
  std::vector<std::string> args_;
  std::vector<std::pair<std::string, std::string>> env_;
  std::string worker_;
  pid_t pid_ = 0;
};

// Read-only views of a state directory's database.
class Results {
 public:
  explicit Results(const StateDir& state) : path_(state.database()) {}

  int64_t Count(const std::string& sql) const {
    auto rows = Rows(sql);
    return rows.empty() || rows[0].empty() || !rows[0][0].is_number() ? -1
                                                                      : rows[0][0].get<int64_t>();
  }
  std::vector<std::vector<nlohmann::json>> Rows(const std::string& sql) const {
    Result<std::unique_ptr<RunStore>> store = RunStore::OpenReadOnly(path_);
    if (!store.ok()) return {};
    Result<QueryResult> result = (*store)->Query(sql);
    EXPECT_TRUE(result.ok()) << sql << ": " << result.status().ToString();
    return result.ok() ? result->rows : std::vector<std::vector<nlohmann::json>>{};
  }
  int64_t RunsIn(const std::string& state) const {
    return Count(fmt::format("SELECT count(*) FROM runs WHERE state = '{}'", state));
  }
  bool AllCompleted(int64_t runs) const { return RunsIn("COMPLETED") == runs; }
  // Every run's attempts, events and metrics, for a test failure message.
  std::string Dump() const {
    std::string out;
    for (const char* sql :
         {"SELECT substr(id, 1, 8), name, state, attempts FROM runs ORDER BY name",
          "SELECT substr(run_id, 1, 8), attempt, pid, started_at, ended_at, exit_status, cause "
          "FROM attempts ORDER BY run_id, attempt",
          "SELECT substr(run_id, 1, 8), from_state, to_state, reason FROM events ORDER BY id"}) {
      for (const auto& row : Rows(sql)) {
        for (const auto& value : row) out += value.dump() + " ";
        out += "\n";
      }
      out += "--\n";
    }
    return out;
  }

 private:
  std::string path_;
};

}  // namespace isoflop::testing
