// isoflopd with the slurm launcher on a real Slurm cluster: the one-node cluster on localhost that
// cluster/slurm_localhost.sh starts (munged, slurmctld and slurmd from Debian's slurm-wlm). The
// worker is fake_worker (tests/fake_worker.cpp), so a run takes a second or two; each test skips,
// saying why, when no cluster answers.
//
// What they prove: the smoke sweep, submitted with `launcher: slurm`, runs every run as a batch
// job to completion; a job held in the queue outlives the heartbeat timeout without being killed;
// `isoflop cancel` scancels a running job (the worker checkpoints, the run is CANCELLED) and an
// operator's scancel is an infrastructure fault that is retried and resumes; a job requeued by
// Slurm (`scontrol requeue`) runs again under the same job id and attempt and resumes from its
// checkpoint; a coordinator killed while its jobs run reattaches to them by id.
#include <gtest/gtest.h>

#include <algorithm>
#include <regex>

#include "coordinator/launcher/command.h"
#include "coordinator/launcher/slurm_job_state.h"
#include "coordinator_testing.h"

namespace isoflop::testing {
namespace {

using nlohmann::json;

// sinfo's answer for the cluster's nodes, or why there is none.
std::string ClusterProblem() {
  Result<CommandOutput> sinfo = RunCommand({{"sinfo", "--noheader", "--format=%T"}, {}, 3s});
  if (!sinfo.ok()) return sinfo.status().message();
  if (sinfo->exit_code != 0) return DescribeFailure({{"sinfo"}, {}, 3s}, *sinfo);
  for (const char* usable : {"idle", "mixed", "allocated", "completing"}) {
    if (sinfo->out.find(usable) != std::string::npos) return "";
  }
  return "no usable node: sinfo says '" + sinfo->out + "'";
}

std::string Slurm(const std::vector<std::string>& argv) {
  Result<CommandOutput> output = RunCommand({argv, {}, 20s});
  EXPECT_TRUE(output.ok() && output->exit_code == 0)
      << argv[0] << ": " << (output.ok() ? output->err : output.status().message());
  return output.ok() ? output->out : "";
}

std::string JobState(const std::string& job_id) {
  std::string out =
      Slurm({"squeue", "--noheader", "--states=all", "--jobs=" + job_id, "--format=%T"});
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

class SlurmE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string problem = ClusterProblem(); !problem.empty()) {
      GTEST_SKIP() << "no Slurm cluster answers (" << problem
                   << "); start one with cluster/slurm_localhost.sh start";
    }
  }
  std::string State() { return scratch_.path() + "/state"; }
  std::vector<std::string> DaemonArgs() {
    return {"--cpu-slots",          "8",  "--slurm-poll-min", "0.2",  "--slurm-poll-max",    "1",
            "--ingest-interval-ms", "50", "--retry-backoff",  "0.05", "--retry-backoff-max", "0.2",
            "--kill-grace",         "10"};
  }
  std::string OneRunSweep(const std::string& name) {
    return WriteFile(scratch_.path() + "/" + name + ".yaml",
                     SweepYaml(name, 1, "resources: {launcher: slurm}\n"));
  }
  // The job id of the run's open attempt, once it has one.
  std::string OpenJob(const Results& results) {
    std::string job_id;
    WaitFor(
        [&] {
          auto rows = results.Rows(
              "SELECT json_extract(handle, '$.job_id') FROM attempts WHERE ended_at IS NULL");
          if (rows.empty() || !rows[0][0].is_string()) return false;
          job_id = rows[0][0].get<std::string>();
          return true;
        },
        20s);
    return job_id;
  }

  ScratchDir scratch_;
};

TEST_F(SlurmE2eTest, SmokeSweepRunsEveryRunAsABatchJob) {
  const std::string data = std::string(ISOFLOP_SOURCE_DIR) + "/data/smoke/";
  if (!fs::exists(data)) GTEST_SKIP() << data << " is missing: run cluster/setup.sh";
  std::string yaml = ReadFile(std::string(ISOFLOP_SOURCE_DIR) + "/sweeps/smoke.yaml");
  yaml = std::regex_replace(yaml, std::regex("launcher: local"), "launcher: slurm");
  yaml = std::regex_replace(yaml, std::regex(R"(\.\./data/smoke/)"), data);
  ASSERT_NE(yaml.find("launcher: slurm"), std::string::npos);

  TestDaemon daemon(State(), DaemonArgs(),
                    {{"FAKE_WORKER_STEPS", "4"},
                     {"FAKE_WORKER_STEP_MS", "5"},
                     {"FAKE_WORKER_CHECKPOINT_EVERY", "2"}});
  daemon.Start();
  ASSERT_GT(daemon.Submit(WriteFile(scratch_.path() + "/smoke.yaml", yaml)), 0);
  Results results(daemon.state());
  const int64_t runs = results.Count("SELECT count(*) FROM runs");
  ASSERT_GT(runs, 0);
  ASSERT_TRUE(WaitFor([&] { return results.AllCompleted(runs); }, 55s))
      << results.Dump() << daemon.log();

  // One batch job per run, each completed on its first attempt.
  EXPECT_EQ(results.Count("SELECT count(*) FROM attempts WHERE launcher = 'slurm' AND "
                          "cause = 'completed' AND exit_status = 0"),
            runs)
      << results.Dump();
  std::vector<std::string> job_ids;
  for (const auto& row : results.Rows(
           "SELECT run_id, json_extract(handle, '$.job_id') FROM attempts ORDER BY run_id")) {
    ASSERT_TRUE(row[1].is_string()) << results.Dump();
    job_ids.push_back(row[1].get<std::string>());
    const std::string dir = daemon.state().run(row[0].get<std::string>());
    EXPECT_TRUE(fs::exists(dir + "/slurm-attempt-1.sbatch")) << dir;
    EXPECT_EQ(ReadFile(dir + "/slurm-" + job_ids.back() + ".exit"), "0\n");
    EXPECT_NE(ReadFile(dir + "/worker.log").find("==== isoflop: Slurm job " + job_ids.back()),
              std::string::npos);
  }
  std::string list;
  for (const std::string& id : job_ids) list += (list.empty() ? "" : ",") + id;
  const std::string states =
      Slurm({"squeue", "--noheader", "--states=all", "--jobs=" + list, "--format=%T"});
  EXPECT_EQ(std::count(states.begin(), states.end(), '\n'), runs) << states;
  EXPECT_EQ(states.find_first_not_of("COMPLETED\n"), std::string::npos) << states;
}

TEST_F(SlurmE2eTest, AJobWaitingInTheQueueIsNotTakenForAHang) {
  std::vector<std::string> args = DaemonArgs();
  args.insert(args.end(), {"--heartbeat-timeout", "1"});
  TestDaemon daemon(State(), args, {{"FAKE_WORKER_STEPS", "10"}, {"FAKE_WORKER_STEP_MS", "20"}});
  daemon.Start();
  // Held in the queue for 4 s, four heartbeat timeouts.
  daemon.Submit(
      WriteFile(scratch_.path() + "/pending.yaml",
                SweepYaml("pending", 1,
                          "resources: {launcher: slurm, slurm: {extra: [\"--begin=now+4\"]}}\n")));
  Results results(daemon.state());
  const std::string job_id = OpenJob(results);
  ASSERT_FALSE(job_id.empty()) << results.Dump();
  EXPECT_EQ(JobState(job_id), "PENDING");
  ASSERT_TRUE(WaitFor([&] { return results.AllCompleted(1); }, 30s)) << results.Dump();
  EXPECT_EQ(results.Count("SELECT count(*) FROM attempts"), 1) << results.Dump();
}

TEST_F(SlurmE2eTest, IsoflopCancelScancelsTheJobAndTheWorkerCheckpoints) {
  TestDaemon daemon(State(), DaemonArgs(),
                    {{"FAKE_WORKER_STEPS", "400"}, {"FAKE_WORKER_STEP_MS", "50"}});
  daemon.Start();
  daemon.Submit(OneRunSweep("cancel"));
  Results results(daemon.state());
  const std::string job_id = OpenJob(results);
  ASSERT_FALSE(job_id.empty()) << results.Dump();
  ASSERT_TRUE(WaitFor([&] { return results.Count("SELECT max(step) FROM metrics") >= 3; }, 30s))
      << results.Dump();
  const std::string run_id = results.Rows("SELECT id FROM runs")[0][0].get<std::string>();

  Result<json> reply = daemon.Call(protocol::Cancel{run_id});
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  ASSERT_TRUE(WaitFor(
      [&] { return results.Count("SELECT count(*) FROM attempts WHERE ended_at IS NULL") == 0; },
      30s))
      << results.Dump();
  EXPECT_EQ(results.RunsIn("CANCELLED"), 1);
  const auto attempt = results.Rows("SELECT cause, exit_status FROM attempts");
  ASSERT_EQ(attempt.size(), 1u);
  // scancel --signal=TERM reached the worker, which checkpointed and exited 75.
  EXPECT_EQ(attempt[0][0].get<std::string>().rfind("cancelled", 0), 0u) << results.Dump();
  EXPECT_EQ(attempt[0][1], 75) << results.Dump();
  EXPECT_GE(results.Count("SELECT count(*) FROM checkpoints"), 1);
  EXPECT_EQ(PhaseOf(JobState(job_id)), SlurmPhase::kEnded) << JobState(job_id);
}

TEST_F(SlurmE2eTest, AnOperatorsScancelIsRetriedAndTheRunResumes) {
  TestDaemon daemon(State(), DaemonArgs(),
                    {{"FAKE_WORKER_STEPS", "40"}, {"FAKE_WORKER_STEP_MS", "100"}});
  daemon.Start();
  daemon.Submit(OneRunSweep("scancel"));
  Results results(daemon.state());
  const std::string job_id = OpenJob(results);
  ASSERT_FALSE(job_id.empty()) << results.Dump();
  ASSERT_TRUE(WaitFor([&] { return results.Count("SELECT max(step) FROM metrics") >= 7; }, 30s));
  Slurm({"scancel", job_id});

  ASSERT_TRUE(WaitFor([&] { return results.AllCompleted(1); }, 50s)) << results.Dump();
  const auto attempts = results.Rows("SELECT cause FROM attempts ORDER BY attempt");
  ASSERT_EQ(attempts.size(), 2u) << results.Dump();
  EXPECT_EQ(attempts[0][0].get<std::string>().rfind("infrastructure", 0), 0u) << results.Dump();
  EXPECT_NE(attempts[0][0].get<std::string>().find("CANCELLED"), std::string::npos);
  EXPECT_EQ(attempts[1][0], "completed");
  EXPECT_EQ(results.Count("SELECT count(DISTINCT step) FROM metrics"), 40);
  const std::string run_id = results.Rows("SELECT id FROM runs")[0][0].get<std::string>();
  EXPECT_NE(ReadFile(daemon.state().run(run_id) + "/metrics.jsonl").find("\"type\":\"resume\""),
            std::string::npos);
}

TEST_F(SlurmE2eTest, ARequeuedJobRunsAgainUnderItsIdAndResumes) {
  TestDaemon daemon(State(), DaemonArgs(),
                    {{"FAKE_WORKER_STEPS", "40"}, {"FAKE_WORKER_STEP_MS", "100"}});
  daemon.Start();
  daemon.Submit(OneRunSweep("requeue"));
  Results results(daemon.state());
  const std::string job_id = OpenJob(results);
  ASSERT_FALSE(job_id.empty()) << results.Dump();
  ASSERT_TRUE(WaitFor([&] { return results.Count("SELECT max(step) FROM metrics") >= 12; }, 30s));
  Slurm({"scontrol", "requeue", job_id});
  // Back in the queue, then running again once its old credential expires (cred_expire, 10 s in
  // cluster/slurm_localhost.sh's configuration).
  ASSERT_TRUE(WaitFor([&] { return PhaseOf(JobState(job_id)) == SlurmPhase::kWaiting; }, 20s))
      << JobState(job_id);
  ASSERT_TRUE(WaitFor([&] { return results.AllCompleted(1); }, 40s))
      << results.Dump() << daemon.log();
  // The same job and attempt throughout: a requeue is Slurm's business, not a retry.
  const std::string run_id = results.Rows("SELECT id FROM runs")[0][0].get<std::string>();
  const auto attempts =
      results.Rows("SELECT json_extract(handle, '$.job_id'), cause FROM attempts");
  ASSERT_EQ(attempts.size(), 1u) << results.Dump()
                                 << ReadFile(daemon.state().run(run_id) + "/worker.log");
  EXPECT_EQ(attempts[0][0], job_id);
  EXPECT_EQ(attempts[0][1], "completed");
  EXPECT_EQ(results.Count("SELECT count(DISTINCT step) FROM metrics"), 40);
  const std::string metrics = ReadFile(daemon.state().run(run_id) + "/metrics.jsonl");
  std::smatch resume;
  ASSERT_TRUE(std::regex_search(metrics, resume, std::regex(R"(\{[^\n]*"type":"resume"[^\n]*\})")))
      << metrics;
  EXPECT_GE(json::parse(resume.str()).value("step", 0), 10);
}

TEST_F(SlurmE2eTest, ARestartedCoordinatorReattachesToItsJobsById) {
  TestDaemon daemon(State(), DaemonArgs(),
                    {{"FAKE_WORKER_STEPS", "40"}, {"FAKE_WORKER_STEP_MS", "100"}});
  daemon.Start();
  daemon.Submit(OneRunSweep("reattach"));
  Results results(daemon.state());
  const std::string job_id = OpenJob(results);
  ASSERT_FALSE(job_id.empty()) << results.Dump();
  ASSERT_TRUE(WaitFor([&] { return results.Count("SELECT max(step) FROM metrics") >= 5; }, 30s));
  daemon.Kill(SIGKILL);
  EXPECT_EQ(PhaseOf(JobState(job_id)), SlurmPhase::kRunning);  // the job does not need us
  daemon.Start();

  ASSERT_TRUE(WaitFor([&] { return results.AllCompleted(1); }, 30s)) << results.Dump();
  const auto attempts =
      results.Rows("SELECT json_extract(handle, '$.job_id'), cause FROM attempts");
  ASSERT_EQ(attempts.size(), 1u) << results.Dump();
  EXPECT_EQ(attempts[0][0], job_id);
  EXPECT_EQ(attempts[0][1], "completed");
  EXPECT_NE(daemon.log().find("adopted Slurm job " + job_id), std::string::npos);
  EXPECT_EQ(results.Count("SELECT count(DISTINCT step) FROM metrics"), 40);
}

}  // namespace
}  // namespace isoflop::testing
