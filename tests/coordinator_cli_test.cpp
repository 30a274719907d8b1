// The `isoflop` command line against a real isoflopd (started by the CLI itself, as a user's first
// `isoflop run` does) and fake_worker: run, submit, status, logs, cancel, resume, reproduce and
// daemon start/stop/status.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

#include "coordinator/daemon/daemon_lock.h"
#include "coordinator_testing.h"

namespace isoflop::testing {
namespace {

using nlohmann::json;

struct Output {
  int exit_code = -1;
  std::string out;
  std::string err;
};

class CliTest : public ::testing::Test {
 protected:
  void TearDown() override {
    // The CLI started a detached daemon: stop it, whatever the test did.
    Isoflop("daemon stop");
  }

  // Runs `isoflop --state-dir STATE <args>` with the fake worker's knobs in its environment (the
  // daemon it starts inherits them, and passes them to the workers).
  Output Isoflop(const std::string& args, const std::string& env = "") {
    const std::string out = scratch_.path() + "/cli.out", err = scratch_.path() + "/cli.err";
    const std::string command = fmt::format(
        "cd {} && env FAKE_WORKER_STEPS=10 FAKE_WORKER_STEP_MS=10 {} {} --state-dir "
        "{} {} > {} 2> {}",
        scratch_.path(), env, ISOFLOP_CLI_BIN, state_.root, args, out, err);
    const int status = std::system(command.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ReadFile(out), ReadFile(err)};
  }
  std::string DaemonFlags() const {
    return fmt::format(
        "--worker {} --cpu-slots 2 --daemon-arg=--retry-backoff "
        "--daemon-arg=0.05 --daemon-arg=--ingest-interval-ms --daemon-arg=50",
        FAKE_WORKER_BIN);
  }
  std::string Sweep(const std::string& name, int runs, const std::string& extra = "") {
    return WriteFile(scratch_.path() + "/" + name + ".yaml", SweepYaml(name, runs, extra));
  }

  ScratchDir scratch_;
  StateDir state_{scratch_.path() + "/state"};
};

TEST_F(CliTest, RunSubmitsWatchesAndPrintsTheResults) {
  Sweep("four", 4);
  Output run = Isoflop("run four.yaml " + DaemonFlags());
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.err.find("four #1: 4/4 done"), std::string::npos) << run.err;
  EXPECT_NE(run.out.find("run "), std::string::npos) << run.out;  // the results table's header
  size_t completed = 0;
  for (size_t at = run.out.find("COMPLETED"); at != std::string::npos;
       at = run.out.find("COMPLETED", at + 1)) {
    ++completed;
  }
  EXPECT_EQ(completed, 4u) << run.out;

  Output overview = Isoflop("status");
  ASSERT_EQ(overview.exit_code, 0) << overview.err;
  EXPECT_NE(overview.out.find("isoflopd running"), std::string::npos) << overview.out;
  EXPECT_NE(overview.out.find("four"), std::string::npos) << overview.out;

  Output sweep = Isoflop("status four --json");
  ASSERT_EQ(sweep.exit_code, 0) << sweep.err;
  const json detail = json::parse(sweep.out);
  ASSERT_EQ(detail["run_status"].size(), 4u);
  const std::string run_id = detail["run_status"][0]["run_id"].get<std::string>();
  EXPECT_EQ(detail["completed"], 4);

  Output one = Isoflop("status " + run_id.substr(0, 16));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_NE(one.out.find("COMPLETED, 1 attempt(s)"), std::string::npos) << one.out;
  EXPECT_NE(one.out.find("attempts"), std::string::npos) << one.out;

  Output reproduce = Isoflop("reproduce " + run_id.substr(0, 12));
  ASSERT_EQ(reproduce.exit_code, 0) << reproduce.err;
  EXPECT_NE(reproduce.out.find(std::string(FAKE_WORKER_BIN) + " --config " + state_.run(run_id) +
                               "/run.json --run-dir reproduce-" + run_id.substr(0, 16)),
            std::string::npos)
      << reproduce.out;
  EXPECT_NE(reproduce.out.find("LibTorch fake"), std::string::npos) << reproduce.out;
  EXPECT_NE(reproduce.out.find("\"sweep\": \"four\""), std::string::npos) << reproduce.out;

  EXPECT_EQ(Isoflop("logs " + run_id.substr(0, 16)).exit_code, 0);
  EXPECT_EQ(Isoflop("logs " + run_id.substr(0, 16) + " -f").exit_code, 0);  // returns: run is done
  EXPECT_EQ(Isoflop("status nosuchsweep").exit_code, 1);

  Output daemon = Isoflop("daemon status");
  ASSERT_EQ(daemon.exit_code, 0) << daemon.out << daemon.err;
  EXPECT_NE(daemon.out.find("slots: 2"), std::string::npos) << daemon.out;
  ASSERT_EQ(Isoflop("daemon stop").exit_code, 0);
  EXPECT_FALSE(DaemonLock::Holder(state_.pid_file()).has_value());
  EXPECT_EQ(Isoflop("daemon status").exit_code, 3);
  // Reading needs no daemon.
  EXPECT_EQ(Isoflop("results four").exit_code, 0);
}

TEST_F(CliTest, DryRunPlansWithoutADaemon) {
  Sweep("plan", 3);
  Output plan = Isoflop("submit plan.yaml --dry-run");
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  EXPECT_NE(plan.out.find("dense/s/C1e+12/s2"), std::string::npos) << plan.out;
  EXPECT_FALSE(DaemonLock::Holder(state_.pid_file()).has_value());
  EXPECT_FALSE(fs::exists(state_.database()));
}

// plan --write-configs: each run's resolved config, the file isoflop-worker reads, one per run and
// named after it; nothing else is written (no daemon, no database).
TEST_F(CliTest, PlanWritesEachRunsResolvedConfig) {
  Sweep("plan", 3);
  Output plan = Isoflop("plan plan.yaml --format csv --write-configs configs");
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  const fs::path dir = fs::path(scratch_.path()) / "configs";
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path().filename());
  std::sort(files.begin(), files.end());
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[2], "dense_s_C1e+12_s2.json");
  const json config = json::parse(ReadFile((dir / files[2]).string()));
  EXPECT_EQ(config["name"], "dense/s/C1e+12/s2");
  EXPECT_EQ(config["seed"], 2);
  EXPECT_EQ(config["data"]["order"], "shuffled");  // the default order, written out
  EXPECT_TRUE(RunConfigFromJson(config).ok());     // what the worker will accept
  EXPECT_FALSE(fs::exists(state_.database()));
  // A folder that cannot be made is an error that names it, and exits non-zero.
  WriteFile(scratch_.path() + "/blocker", "");
  Output bad = Isoflop("plan plan.yaml --write-configs blocker/configs");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("blocker/configs"), std::string::npos) << bad.err;
}

TEST_F(CliTest, CancelASweepThenResumeIt) {
  Sweep("long", 3);
  const std::string slow = "FAKE_WORKER_STEPS=200 FAKE_WORKER_STEP_MS=20";
  Output submitted = Isoflop("submit long.yaml " + DaemonFlags(), slow);
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  EXPECT_EQ(submitted.out, "1\n");
  Results results(state_);
  ASSERT_TRUE(WaitFor([&] { return results.RunsIn("RUNNING") == 2; }, 20s)) << results.Dump();

  Output cancelled = Isoflop("cancel long");
  ASSERT_EQ(cancelled.exit_code, 0) << cancelled.err;
  EXPECT_NE(cancelled.err.find("3 run(s) cancelled"), std::string::npos) << cancelled.err;
  ASSERT_TRUE(WaitFor(
      [&] { return results.Count("SELECT count(*) FROM attempts WHERE ended_at IS NULL") == 0; },
      20s));
  EXPECT_EQ(results.RunsIn("CANCELLED"), 3);

  Output resumed = Isoflop("resume long");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("3 run(s) queued again"), std::string::npos) << resumed.err;
  ASSERT_TRUE(WaitFor([&] { return results.AllCompleted(3); }, 60s)) << results.Dump();
  EXPECT_EQ(results.Count("SELECT count(*) FROM metrics"), 3 * 200);
}

TEST_F(CliTest, RunExitsNonZeroWhenRunsFail) {
  Sweep("broken", 2);
  Output run = Isoflop("run broken.yaml " + DaemonFlags(), "FAKE_WORKER_FAULT=exit:1@0");
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  EXPECT_NE(run.err.find("2 of 2 runs did not complete"), std::string::npos) << run.err;
  EXPECT_NE(run.out.find("FAILED"), std::string::npos) << run.out;
}

}  // namespace
}  // namespace isoflop::testing
