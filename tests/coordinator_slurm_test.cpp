// The Slurm launcher's parts that need no cluster: squeue and sbatch output (captured from Debian's
// slurm-wlm 22.05), what each job state means for the retry policy, the rendered batch script, and
// RunCommand's output capture and timeout.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <fstream>

#include "coordinator/launcher/command.h"
#include "coordinator/launcher/slurm_job_state.h"
#include "coordinator/launcher/slurm_launcher.h"
#include "coordinator/supervisor/retry_policy.h"

namespace isoflop {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

TEST(SlurmJobState, ParsesSqueueOutput) {
  // squeue --noheader --states=all --jobs=1,2,3,4 --format='%i|%T|%r|%Z|%N'
  const char* output =
      "1|FAILED|NonZeroExitCode|/tmp|localhost\n"
      "2|RUNNING|None|/state/runs/ab|cd|node-[1-2]\n"
      "  3|PENDING|Priority|/state/runs/ef|  \n"
      "\n"
      "4|CANCELLED by 0|None|/tmp|localhost\n";
  Result<std::vector<SlurmJobStatus>> jobs = ParseSqueue(output);
  ASSERT_TRUE(jobs.ok()) << jobs.status().ToString();
  ASSERT_EQ(jobs->size(), 4u);
  EXPECT_EQ((*jobs)[0].job_id, "1");
  EXPECT_EQ((*jobs)[0].state, "FAILED");
  EXPECT_EQ((*jobs)[0].reason, "NonZeroExitCode");
  EXPECT_EQ((*jobs)[0].nodes, "localhost");
  // A '|' inside the working directory stays in it.
  EXPECT_EQ((*jobs)[1].work_dir, "/state/runs/ab|cd");
  EXPECT_EQ((*jobs)[1].nodes, "node-[1-2]");
  EXPECT_EQ((*jobs)[2].job_id, "3");
  EXPECT_EQ((*jobs)[2].nodes, "");
  EXPECT_EQ((*jobs)[3].state, "CANCELLED");
  EXPECT_TRUE(ParseSqueue("")->empty());
}

TEST(SlurmJobState, RejectsOutputOfAnotherFormat) {
  Result<std::vector<SlurmJobStatus>> jobs = ParseSqueue("JOBID PARTITION NAME USER ST\n");
  ASSERT_FALSE(jobs.ok());
  EXPECT_NE(jobs.status().message().find("JOBID PARTITION"), std::string::npos);
  EXPECT_FALSE(ParseSqueue("1|RUNNING\n").ok());
  EXPECT_FALSE(ParseSqueue("|RUNNING|None|/tmp|n\n").ok());
}

TEST(SlurmJobState, PhasesOfStates) {
  for (const char* state : {"PENDING", "REQUEUED", "REQUEUE_HOLD", "CONFIGURING", "SUSPENDED"})
    EXPECT_EQ(PhaseOf(state), SlurmPhase::kWaiting) << state;
  for (const char* state : {"RUNNING", "COMPLETING", "SIGNALING", "SOMETHING_NEW"})
    EXPECT_EQ(PhaseOf(state), SlurmPhase::kRunning) << state;
  for (const char* state : {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "PREEMPTED", "NODE_FAIL",
                            "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"})
    EXPECT_EQ(PhaseOf(state), SlurmPhase::kEnded) << state;
}

TEST(SlurmJobState, ParsesSbatchJobIds) {
  EXPECT_EQ(*ParseSbatchJobId("123\n"), "123");
  EXPECT_EQ(*ParseSbatchJobId("45;cluster-a\n"), "45");
  Result<std::string> bad = ParseSbatchJobId("sbatch: error: Batch job submission failed\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("Batch job submission failed"), std::string::npos);
  EXPECT_FALSE(ParseSbatchJobId("").ok());
}

// The retry class of each end: SlurmJobExit, then the coordinator's own Classify.
AttemptOutcome OutcomeOf(const std::string& state, std::optional<int> worker_status,
                         bool complete = false, StopRequest stop = StopRequest::kNone) {
  return Classify(SlurmJobExit({"7", state, "None", "/runs/x", "n1"}, worker_status), complete,
                  stop);
}

TEST(SlurmJobState, EachEndHasItsRetryClass) {
  EXPECT_EQ(OutcomeOf("COMPLETED", 0, true).cause, AttemptCause::kCompleted);
  EXPECT_EQ(OutcomeOf("COMPLETED", 0, false).cause, AttemptCause::kCodeFault);
  EXPECT_EQ(OutcomeOf("FAILED", 1).cause, AttemptCause::kConfigError);
  EXPECT_EQ(OutcomeOf("FAILED", 70).cause, AttemptCause::kCodeFault);
  EXPECT_EQ(OutcomeOf("FAILED", 75).cause, AttemptCause::kInfrastructure);
  EXPECT_EQ(OutcomeOf("FAILED", 128 + SIGSEGV).cause, AttemptCause::kCodeFault);
  EXPECT_EQ(OutcomeOf("FAILED", 128 + SIGKILL).cause, AttemptCause::kInfrastructure);
  // srun could not start the worker: no status file.
  EXPECT_EQ(OutcomeOf("FAILED", std::nullopt).cause, AttemptCause::kInfrastructure);
  // An operator's scancel, versus `isoflop cancel` (the coordinator asked).
  EXPECT_EQ(OutcomeOf("CANCELLED", std::nullopt).cause, AttemptCause::kInfrastructure);
  EXPECT_EQ(OutcomeOf("CANCELLED", std::nullopt, false, StopRequest::kCancel).cause,
            AttemptCause::kCancelled);
  for (const char* state :
       {"TIMEOUT", "PREEMPTED", "NODE_FAIL", "BOOT_FAIL", "OUT_OF_MEMORY", "DEADLINE"}) {
    const AttemptOutcome outcome = OutcomeOf(state, std::nullopt);
    EXPECT_EQ(outcome.cause, AttemptCause::kInfrastructure) << state;
    EXPECT_NE(outcome.Text().find(std::string("Slurm job 7: ") + state), std::string::npos)
        << outcome.Text();
  }
  // A run whose records say it completed is completed, whatever Slurm says afterwards.
  EXPECT_EQ(OutcomeOf("NODE_FAIL", std::nullopt, true).cause, AttemptCause::kCompleted);
}

class SlurmScriptTest : public ::testing::Test {
 protected:
  SlurmScriptTest() {
    request_.run_id = "0123abcd";
    request_.attempt = 3;
    request_.run_dir = "/state/runs/0123abcd";
    request_.config_path = "/state/runs/0123abcd/run.json";
    request_.log_path = "/state/runs/0123abcd/worker.log";
    request_.ranks = 1;
  }
  Result<std::string> Render(const json& settings, SlurmLauncherOptions options = {}) {
    if (options.worker_path.empty()) options.worker_path = "/opt/isoflop/bin/isoflop-worker";
    SlurmLauncher launcher(io_, options);
    return launcher.RenderScript(request_, settings);
  }
  static bool Has(const std::string& script, const std::string& line) {
    return script.find(line + "\n") != std::string::npos;
  }

  boost::asio::io_context io_;
  LaunchRequest request_;
};

TEST_F(SlurmScriptTest, RendersTheRunsSettingsAsDirectives) {
  request_.ranks = 8;
  Result<std::string> script = Render({{"partition", "gpu"},
                                       {"account", "lm"},
                                       {"time", "01:00:00"},
                                       {"gpus_per_node", 4},
                                       {"extra", {"--exclusive", "--constraint=h100"}}});
  ASSERT_TRUE(script.ok()) << script.status().ToString();
  EXPECT_EQ(script->rfind("#!/bin/bash\n", 0), 0u);
  for (const char* line :
       {"#SBATCH --job-name=isoflop-0123abcd-a3",
        "#SBATCH --output=/state/runs/0123abcd/worker.log", "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4", "#SBATCH --partition=gpu",
        "#SBATCH --account=lm", "#SBATCH --time=01:00:00", "#SBATCH --requeue",
        "#SBATCH --signal=TERM@300", "#SBATCH --exclusive", "#SBATCH --constraint=h100",
        "srun --kill-on-bad-exit=1 --mpi='pmix' '/opt/isoflop/bin/isoflop-worker' --config "
        "'/state/runs/0123abcd/run.json' --run-dir '/state/runs/0123abcd'"}) {
    EXPECT_TRUE(Has(*script, line)) << line << "\n" << *script;
  }
  // No key left unrendered: the only '@' is --signal's.
  const size_t signal_at = script->find("TERM@300") + 4;
  EXPECT_EQ(script->find('@'), signal_at);
  EXPECT_EQ(script->find('@', signal_at + 1), std::string::npos);
}

TEST_F(SlurmScriptTest, LeavesOutWhatTheRunDoesNotSet) {
  Result<std::string> script = Render(json::object());
  ASSERT_TRUE(script.ok()) << script.status().ToString();
  for (const char* absent : {"--partition", "--account", "--time", "--gpus-per-node", "--mpi"})
    EXPECT_EQ(script->find(absent), std::string::npos) << absent << "\n" << *script;
  EXPECT_TRUE(Has(*script, "#SBATCH --nodes=1"));
  EXPECT_TRUE(Has(*script, "#SBATCH --ntasks-per-node=1"));
}

TEST_F(SlurmScriptTest, QuotesPathsForTheShell) {
  request_.run_dir = "/runs/it's here";
  Result<std::string> script = Render(json::object());
  ASSERT_TRUE(script.ok());
  EXPECT_NE(script->find("--run-dir '/runs/it'\\''s here'"), std::string::npos) << *script;
  EXPECT_NE(script->find("exit_file='/runs/it'\\''s here'/slurm-\"$SLURM_JOB_ID\".exit"),
            std::string::npos)
      << *script;
}

TEST_F(SlurmScriptTest, RejectsSettingsItCannotHonour) {
  request_.ranks = 3;
  EXPECT_FALSE(Render({{"nodes", 2}}).ok());               // 3 ranks over 2 nodes
  EXPECT_FALSE(Render({{"gpus_per_node", "four"}}).ok());  // not a count
  EXPECT_FALSE(Render({{"extra", {"--exclusive\nrm -rf /"}}}).ok());
  EXPECT_FALSE(Render({{"partition", "gpu\n#SBATCH --qos=high"}}).ok());
  EXPECT_FALSE(Render(json::array()).ok());
}

TEST_F(SlurmScriptTest, ACustomTemplateWithAnUnknownKeyIsRefused) {
  std::filesystem::path path = std::filesystem::temp_directory_path() / "isoflop-slurm-template";
  std::ofstream(path) << "#!/bin/bash\n#SBATCH --qos=@QOS@\n@SRUN_COMMAND@\n";
  SlurmLauncherOptions options;
  options.template_path = path.string();
  Result<std::string> script = Render(json::object(), options);
  std::filesystem::remove(path);
  ASSERT_FALSE(script.ok());
  EXPECT_NE(script.status().message().find("@QOS@"), std::string::npos);
  options.template_path = "/nonexistent/template";
  EXPECT_FALSE(Render(json::object(), options).ok());
}

TEST(RunCommand, CapturesOutputAndExitStatus) {
  Result<CommandOutput> output =
      RunCommand({{"sh", "-c", "echo out; echo err >&2; exit 3"}, {}, 5s});
  ASSERT_TRUE(output.ok()) << output.status().ToString();
  EXPECT_EQ(output->exit_code, 3);
  EXPECT_EQ(output->out, "out\n");
  EXPECT_EQ(output->err, "err\n");
  CommandOptions with_env{
      {"sh", "-c", "printf %s \"$ISOFLOP_TEST_VALUE\""}, {{"ISOFLOP_TEST_VALUE", "a b"}}, 5s};
  EXPECT_EQ(RunCommand(with_env)->out, "a b");
  EXPECT_EQ(DescribeFailure({{"squeue"}, {}, 1s}, {1, "", "slurm_load_jobs error: x\nmore\n"}),
            "squeue exited with status 1: slurm_load_jobs error: x");
}

TEST(RunCommand, KillsAProgramThatOverrunsItsTimeout) {
  const auto start = std::chrono::steady_clock::now();
  Result<CommandOutput> output = RunCommand({{"sleep", "10"}, {}, 200ms});
  EXPECT_FALSE(output.ok());
  EXPECT_NE(output.status().message().find("sleep: no answer"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(RunCommand, AMissingProgramIsAnError) {
  Result<CommandOutput> output = RunCommand({{"/nonexistent/sbatch"}, {}, 1s});
  ASSERT_FALSE(output.ok());
  EXPECT_NE(output.status().message().find("/nonexistent/sbatch"), std::string::npos);
}

}  // namespace
}  // namespace isoflop

namespace isoflop {
namespace {

// SlurmLauncher against stand-in sbatch, squeue and scancel (shell scripts in a scratch
// directory): what it asks Slurm, how often, and what it concludes from the answers.
class FakeSlurmTest : public ::testing::Test {
 protected:
  FakeSlurmTest() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "isoflop-fake-slurm-XXXXXX").string();
    dir_ = ::mkdtemp(pattern.data());
    // sbatch: job ids 100, 101, ...; squeue: prints squeue.out, exits with squeue.rc; every call
    // is logged, one line each.
    Script("sbatch",
           "if [ \"$1\" = --version ]; then echo 'slurm 22.05.8'; exit 0; fi; "
           "n=$(cat \"$D/next\" 2>/dev/null || echo 100); echo $((n + 1)) > \"$D/next\"; "
           "echo \"sbatch $*\" >> \"$D/calls\"; echo \"$n\"");
    Script("squeue",
           "echo \"squeue $*\" >> \"$D/calls\"; cat \"$D/squeue.out\" 2>/dev/null; "
           "cat \"$D/squeue.err\" >&2 2>/dev/null; exit $(cat \"$D/squeue.rc\" 2>/dev/null || echo "
           "0)");
    Script("scancel", "echo \"scancel $*\" >> \"$D/calls\"");
    Write("run.json", R"({"resources": {"slurm": {"partition": "debug"}}})");
    options_.worker_path = "/bin/true";
    options_.slurm_bin_dir = dir_;
    options_.poll_min = 20ms;
    options_.poll_max = 40ms;
  }
  ~FakeSlurmTest() override { std::filesystem::remove_all(dir_); }

  void Script(const std::string& name, const std::string& body) {
    Write(name, "#!/bin/sh\nD='" + dir_ + "'\n" + body + "\n");
    std::filesystem::permissions(dir_ + "/" + name, std::filesystem::perms::owner_all);
  }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
  }
  std::vector<std::string> Calls(const std::string& program) {
    std::ifstream in(dir_ + "/calls");
    std::vector<std::string> calls;
    for (std::string line; std::getline(in, line);) {
      if (line.rfind(program + " ", 0) == 0) calls.push_back(line);
    }
    return calls;
  }
  LaunchRequest Request(const std::string& run_id) {
    LaunchRequest request;
    request.run_id = run_id;
    request.attempt = 1;
    request.run_dir = dir_;
    request.config_path = dir_ + "/run.json";
    request.log_path = dir_ + "/worker.log";
    return request;
  }
  // Runs the event loop until `done` or 5 s.
  bool RunUntil(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!done() && std::chrono::steady_clock::now() < deadline) io_.run_for(10ms);
    return done();
  }

  std::string dir_;
  boost::asio::io_context io_;
  SlurmLauncherOptions options_;
};

TEST_F(FakeSlurmTest, PollsAllJobsWithOneSqueueCallAndReportsEachEnd) {
  SlurmLauncher launcher(io_, options_);
  std::map<std::string, JobExit> exits;
  std::vector<nlohmann::json> handles;
  for (const char* run : {"run-a", "run-b", "run-c"}) {
    Result<LaunchedJob> job =
        launcher.Launch(Request(run), [&exits, run](const JobExit& exit) { exits[run] = exit; });
    ASSERT_TRUE(job.ok()) << job.status().ToString();
    handles.push_back(job->handle);
  }
  EXPECT_EQ(handles[0]["job_id"], "100");
  EXPECT_EQ(handles[2]["job_id"], "102");
  EXPECT_EQ(Calls("sbatch").size(), 3u);
  EXPECT_TRUE(std::ifstream(dir_ + "/slurm-attempt-1.sbatch").good());
  EXPECT_TRUE(launcher.Waiting(handles[0]));

  Write("squeue.out", "100|RUNNING|None|" + dir_ + "|n1\n101|PENDING|Resources|" + dir_ +
                          "|\n102|RUNNING|None|" + dir_ + "|n2\n");
  ASSERT_TRUE(RunUntil([&] { return Calls("squeue").size() >= 3; }));
  EXPECT_FALSE(launcher.Waiting(handles[0]));
  EXPECT_TRUE(launcher.Waiting(handles[1]));
  EXPECT_EQ(launcher.Describe(handles[0]), "Slurm job 100 (RUNNING on n1)");
  // One call per poll, naming every job.
  EXPECT_NE(Calls("squeue")[0].find("--jobs=100,101,102"), std::string::npos) << Calls("squeue")[0];
  EXPECT_TRUE(exits.empty());

  Write("slurm-100.exit", "0\n");
  Write("slurm-102.exit", "70\n");
  Write("squeue.out", "100|COMPLETED|None|" + dir_ + "|n1\n101|NODE_FAIL|None|" + dir_ +
                          "|n3\n102|FAILED|NonZeroExitCode|" + dir_ + "|n2\n");
  ASSERT_TRUE(RunUntil([&] { return exits.size() == 3; }));
  EXPECT_TRUE(exits["run-a"].status_known);
  EXPECT_EQ(exits["run-a"].exit_code, 0);
  EXPECT_FALSE(exits["run-b"].status_known);
  EXPECT_NE(exits["run-b"].detail.find("NODE_FAIL"), std::string::npos);
  EXPECT_EQ(exits["run-c"].exit_code, 70);
  EXPECT_EQ(launcher.watched(), 0u);
}

TEST_F(FakeSlurmTest, AJobSqueueNoLongerListsHasVanished) {
  SlurmLauncher launcher(io_, options_);
  std::optional<JobExit> exit;
  ASSERT_TRUE(launcher.Launch(Request("run-a"), [&](const JobExit& e) { exit = e; }).ok());
  Write("squeue.rc", "1");
  Write("squeue.err", "slurm_load_jobs error: Invalid job id specified\n");
  ASSERT_TRUE(RunUntil([&] { return exit.has_value(); }));
  EXPECT_FALSE(exit->status_known);
  EXPECT_NE(exit->detail.find("vanished"), std::string::npos);
  // Not on the first poll without it.
  EXPECT_GE(Calls("squeue").size(), 2u);
}

TEST_F(FakeSlurmTest, ASqueueThatFailsConcludesNothing) {
  SlurmLauncher launcher(io_, options_);
  std::optional<JobExit> exit;
  ASSERT_TRUE(launcher.Launch(Request("run-a"), [&](const JobExit& e) { exit = e; }).ok());
  Write("squeue.rc", "1");
  Write("squeue.err", "squeue: error: Unable to contact slurm controller\n");
  ASSERT_TRUE(RunUntil([&] { return Calls("squeue").size() >= 5; }));
  EXPECT_FALSE(exit.has_value());
  EXPECT_EQ(launcher.watched(), 1u);
}

TEST_F(FakeSlurmTest, ReattachFollowsAKnownJobAndRefusesAnUnknownOne) {
  SlurmLauncher launcher(io_, options_);
  std::optional<JobExit> exit;
  Write("squeue.out", "55|RUNNING|None|" + dir_ + "|n1\n");
  Result<bool> alive =
      launcher.Reattach({{"job_id", "55"}, {"run_dir", dir_}}, [&](const JobExit& e) { exit = e; });
  ASSERT_TRUE(alive.ok());
  EXPECT_TRUE(*alive);
  // It ended while no coordinator watched: the end is still reported, with the worker's status.
  Write("slurm-55.exit", "1\n");
  Write("squeue.out", "55|FAILED|NonZeroExitCode|" + dir_ + "|n1\n");
  ASSERT_TRUE(RunUntil([&] { return exit.has_value(); }));
  EXPECT_EQ(exit->exit_code, 1);

  Write("squeue.out", "");
  Write("squeue.rc", "1");
  Write("squeue.err", "slurm_load_jobs error: Invalid job id specified\n");
  alive = launcher.Reattach({{"job_id", "56"}, {"run_dir", dir_}}, [](const JobExit&) {});
  ASSERT_TRUE(alive.ok());
  EXPECT_FALSE(*alive);
  EXPECT_FALSE(launcher.Reattach({{"pid", 12}}, [](const JobExit&) {}).ok());
}

TEST_F(FakeSlurmTest, CancelSignalsARunningJobAndCancelsAWaitingOne) {
  SlurmLauncher launcher(io_, options_);
  Result<LaunchedJob> job = launcher.Launch(Request("run-a"), [](const JobExit&) {});
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE(launcher.Cancel(job->handle, /*graceful=*/true).ok());  // still PENDING
  Write("squeue.out", "100|RUNNING|None|" + dir_ + "|n1\n");
  ASSERT_TRUE(RunUntil([&] { return !launcher.Waiting(job->handle); }));
  ASSERT_TRUE(launcher.Cancel(job->handle, /*graceful=*/true).ok());
  ASSERT_TRUE(launcher.Cancel(job->handle, /*graceful=*/false).ok());
  EXPECT_EQ(Calls("scancel"),
            (std::vector<std::string>{"scancel 100", "scancel --signal=TERM 100", "scancel 100"}));
}

}  // namespace
}  // namespace isoflop
