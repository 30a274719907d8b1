// Processes and launchers (coordinator/launcher/): a worker starts detached in its own process
// group with its log and environment, is recognised again by identity (never by a reused pid),
// can be found by its attempt marker, and its end is reported whether or not it is our child.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "coordinator/launcher/process.h"
#include "coordinator/launcher/process_launcher.h"
#include "coordinator/launcher/process_reaper.h"
#include "coordinator_testing.h"

namespace isoflop {
namespace {

using testing::ReadFile;
using testing::ScratchDir;
using testing::WaitFor;
using namespace std::chrono_literals;

pid_t Spawn(const ScratchDir& dir, const std::string& script,
            std::vector<std::pair<std::string, std::string>> env = {}) {
  SpawnOptions options;
  options.argv = {"/bin/sh", "-c", script};
  options.env = std::move(env);
  options.log_path = dir.path() + "/out.log";
  Result<pid_t> pid = SpawnProcessGroup(options);
  EXPECT_TRUE(pid.ok()) << pid.status().ToString();
  return pid.ok() ? *pid : -1;
}

int Reap(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

TEST(ProcessTest, SpawnsInItsOwnGroupWithItsLogAndEnvironment) {
  ScratchDir dir;
  const pid_t pid =
      Spawn(dir,
            "echo out $ISOFLOP_TEST_VALUE; echo err >&2; echo pgid $(cut -d' ' -f5 /proc/$$/stat); "
            "read x || echo eof",
            {{"ISOFLOP_TEST_VALUE", "42"}});
  ASSERT_GT(pid, 0);
  const int status = Reap(pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  const std::string log = ReadFile(dir.path() + "/out.log");
  EXPECT_NE(log.find("out 42\n"), std::string::npos) << log;
  EXPECT_NE(log.find("err\n"), std::string::npos) << log;
  EXPECT_NE(log.find("pgid " + std::to_string(pid) + "\n"), std::string::npos)
      << "own process group: " << log;
  EXPECT_NE(log.find("eof"), std::string::npos) << "stdin is /dev/null: " << log;
}

TEST(ProcessTest, InheritsNoDescriptorBeyondStdio) {
  ScratchDir dir;
  const int leaked = ::open("/dev/null", O_RDONLY);  // deliberately not close-on-exec
  ASSERT_GE(leaked, 3);
  const pid_t pid = Spawn(dir, "ls /proc/$$/fd");
  Reap(pid);
  ::close(leaked);
  const std::string fds = ReadFile(dir.path() + "/out.log");
  EXPECT_EQ(fds.find(std::to_string(leaked) + "\n"), std::string::npos) << fds;
}

TEST(ProcessTest, AFailedExecIsALaunchError) {
  ScratchDir dir;
  SpawnOptions options;
  options.argv = {"/nonexistent/isoflop-worker", "--config", "x"};
  options.log_path = dir.path() + "/out.log";
  Result<pid_t> pid = SpawnProcessGroup(options);
  ASSERT_FALSE(pid.ok());
  EXPECT_NE(pid.status().message().find("/nonexistent/isoflop-worker"), std::string::npos);
  options.argv = {"/bin/true"};
  options.log_path = dir.path() + "/no/such/dir/out.log";
  EXPECT_FALSE(SpawnProcessGroup(options).ok());
}

TEST(ProcessTest, IdentityDefeatsPidReuse) {
  ScratchDir dir;
  const pid_t pid = Spawn(dir, "sleep 30");
  Result<ProcessIdentity> identity = IdentifyProcess(pid);
  ASSERT_TRUE(identity.ok());
  EXPECT_TRUE(IsRunning(*identity));
  EXPECT_EQ(*ProcessIdentity::FromJson(identity->ToJson()), *identity);

  ProcessIdentity reused = *identity;  // same pid, another process's start time
  reused.start_ticks += 1;
  EXPECT_FALSE(IsRunning(reused));
  ProcessIdentity rebooted = *identity;
  rebooted.boot_id = "another-boot";
  EXPECT_FALSE(IsRunning(rebooted));

  ASSERT_TRUE(SignalProcessTree(pid, SIGKILL).ok());
  // Exited but not reaped (a zombie) already counts as not running.
  ASSERT_TRUE(WaitFor([&] { return !IsRunning(*identity); }, 5s));
  Reap(pid);
  EXPECT_FALSE(IsRunning(*identity));
  EXPECT_FALSE(ProcessIdentity::FromJson({{"pid", "x"}}).ok());
}

TEST(ProcessTest, SignalProcessTreeReachesChildrenInOtherGroups) {
  ScratchDir dir;
  // The child makes a process group of its own, as mpirun's ranks do.
  const pid_t pid = Spawn(dir, "setsid sleep 30 & echo $! > " + dir.path() + "/child; wait");
  ASSERT_TRUE(WaitFor([&] { return !ReadFile(dir.path() + "/child").empty(); }, 5s));
  const pid_t child = std::stoi(ReadFile(dir.path() + "/child"));
  ASSERT_TRUE(SignalProcessTree(pid, SIGKILL).ok());
  Reap(pid);
  EXPECT_TRUE(WaitFor(
      [&] {
        Result<ProcessIdentity> id = IdentifyProcess(child);
        return !id.ok() || !IsRunning(*id);
      },
      5s));
}

TEST(ProcessTest, FindsTheLaunchedProcessByItsAttemptMarker) {
  ScratchDir dir;
  const std::string marker = AttemptMarker(std::string(64, 'a'), 3);
  const size_t equals = marker.find('=');
  // The launched shell and the sleep it starts both carry the marker; the shell is the one.
  const pid_t pid =
      Spawn(dir, "sleep 30 & wait", {{marker.substr(0, equals), marker.substr(equals + 1)}});
  std::optional<pid_t> found;
  ASSERT_TRUE(
      WaitFor([&] { return (found = FindProcessWithEnvironment(marker)).has_value(); }, 5s));
  EXPECT_EQ(*found, pid);
  EXPECT_FALSE(FindProcessWithEnvironment(AttemptMarker(std::string(64, 'a'), 4)).has_value());
  SignalProcessTree(pid, SIGKILL);
  Reap(pid);
}

TEST(ProcessReaperTest, ReportsExitsOfChildrenAndOfAdoptedProcesses) {
  ScratchDir dir;
  boost::asio::io_context io;
  ProcessReaper reaper(io, 50ms);
  const pid_t child = Spawn(dir, "exit 7");
  std::optional<JobExit> child_exit;
  reaper.WatchChild(child, [&](const JobExit& exit) { child_exit = exit; });

  // Not our child: started by a grandchild that exits at once, so init adopts it.
  const pid_t middle = Spawn(dir, "sleep 0.3 & echo $! > " + dir.path() + "/orphan");
  ASSERT_TRUE(WaitFor([&] { return !ReadFile(dir.path() + "/orphan").empty(); }, 5s));
  Reap(middle);
  Result<ProcessIdentity> orphan = IdentifyProcess(std::stoi(ReadFile(dir.path() + "/orphan")));
  ASSERT_TRUE(orphan.ok());
  std::optional<JobExit> orphan_exit;
  ASSERT_TRUE(reaper.WatchAdopted(*orphan, [&](const JobExit& exit) { orphan_exit = exit; }));

  boost::asio::steady_timer deadline(io, 10s);
  deadline.async_wait([&](const boost::system::error_code&) { io.stop(); });
  while (!(child_exit && orphan_exit) && !io.stopped()) io.run_one();
  ASSERT_TRUE(child_exit.has_value());
  EXPECT_TRUE(child_exit->status_known);
  EXPECT_EQ(child_exit->exit_code, 7);
  ASSERT_TRUE(orphan_exit.has_value());
  EXPECT_FALSE(orphan_exit->status_known);
  EXPECT_EQ(reaper.watched(), 0u);
  // An adopted process that is already gone is reported as such, not watched.
  EXPECT_FALSE(reaper.WatchAdopted(*orphan, [](const JobExit&) {}));
}

TEST(LauncherTest, LocalLauncherRunsTheWorkerWithItsSlotAndReattaches) {
  ScratchDir dir;
  boost::asio::io_context io;
  ProcessReaper reaper(io, 50ms);
  const std::string script = dir.path() + "/worker.sh";
  testing::WriteFile(script,
                     "#!/bin/sh\necho \"$@\" CUDA=$CUDA_VISIBLE_DEVICES NVLS=$NCCL_NVLS_ENABLE "
                     "RUN=$ISOFLOP_RUN_ID\nsleep 1\nexit 3\n");
  ::chmod(script.c_str(), 0755);
  LocalLauncher launcher(reaper, script);
  LaunchRequest request;
  request.run_id = std::string(64, 'b');
  request.attempt = 1;
  request.run_dir = dir.path();
  request.config_path = dir.path() + "/run.json";
  request.log_path = dir.path() + "/worker.log";
  request.gpus = {"GPU-1", "GPU-2"};
  request.ranks = 2;
  std::optional<JobExit> exit;
  Result<LaunchedJob> job = launcher.Launch(request, [&](const JobExit& e) { exit = e; });
  ASSERT_TRUE(job.ok()) << job.status().ToString();
  EXPECT_EQ(job->command.at(0), script);
  EXPECT_EQ(job->handle["pid"], job->pid);
  EXPECT_NE(launcher.Describe(job->handle).find(std::to_string(job->pid)), std::string::npos);
  // A second coordinator would find it by its handle...
  ProcessReaper other(io, 50ms);
  LocalLauncher adopter(other, script);
  std::optional<JobExit> adopted_exit;
  Result<bool> alive = adopter.Reattach(job->handle, [&](const JobExit& e) { adopted_exit = e; });
  ASSERT_TRUE(alive.ok());
  EXPECT_TRUE(*alive);
  // ...or, had it died before storing the handle, by the marker in the worker's environment.
  // (Polled: a sanitizer's posix_spawn may return before the child's exec shows its environment.)
  EXPECT_TRUE(WaitFor([&] { return adopter.Find(request.run_id, 1)["pid"] == job->pid; }, 5s));

  while (!(exit && adopted_exit)) io.run_one();
  EXPECT_EQ(exit->exit_code, 3);
  const std::string log = ReadFile(request.log_path);
  EXPECT_NE(log.find("--config " + request.config_path + " --run-dir " + dir.path()),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("CUDA=GPU-1,GPU-2"), std::string::npos) << log;
  EXPECT_NE(log.find("RUN=" + request.run_id), std::string::npos) << log;
  if (std::getenv("NCCL_NVLS_ENABLE") == nullptr) {
    EXPECT_NE(log.find("NVLS=0"), std::string::npos) << log;
  }
  // Gone now: reattaching says so, and cancelling is a no-op.
  EXPECT_FALSE(*adopter.Reattach(job->handle, [](const JobExit&) {}));
  EXPECT_TRUE(launcher.Cancel(job->handle, /*graceful=*/true).ok());
  nlohmann::json elsewhere = job->handle;
  elsewhere["host"] = "another-host";
  EXPECT_FALSE(adopter.Reattach(elsewhere, [](const JobExit&) {}).ok());
}

TEST(LauncherTest, MpiLauncherWrapsTheWorkerInMpirun) {
  boost::asio::io_context io;
  ProcessReaper reaper(io);
  LaunchRequest request;
  request.run_id = std::string(64, 'c');
  request.attempt = 2;
  request.run_dir = "/state/runs/c";
  request.config_path = "/state/runs/c/run.json";
  request.ranks = 4;
  MpiLauncher launcher(reaper, "/bin/isoflop-worker", "/usr/bin/mpirun");
  Result<ProcessLauncher::Command> command = launcher.BuildCommand(request);
  ASSERT_TRUE(command.ok());
  const std::vector<std::string>& argv = command->argv;
  ASSERT_GE(argv.size(), 8u);
  EXPECT_EQ(argv[0], "/usr/bin/mpirun");
  EXPECT_EQ(std::vector<std::string>(argv.begin() + 1, argv.begin() + 3),
            (std::vector<std::string>{"-np", "4"}));
  auto has = [&](const std::string& word) {
    return std::find(argv.begin(), argv.end(), word) != argv.end();
  };
  EXPECT_EQ(has("--allow-run-as-root"), ::geteuid() == 0);
  EXPECT_TRUE(has("--oversubscribe"));  // CPU slots
  EXPECT_TRUE(has("ISOFLOP_ATTEMPT"));  // exported with -x
  EXPECT_TRUE(has("NCCL_NVLS_ENABLE") || std::getenv("NCCL_NVLS_ENABLE") != nullptr);
  EXPECT_EQ(std::vector<std::string>(argv.end() - 5, argv.end()),
            (std::vector<std::string>{"/bin/isoflop-worker", "--config", request.config_path,
                                      "--run-dir", request.run_dir}));
  request.gpus = {"0", "1", "2", "3"};
  Result<ProcessLauncher::Command> on_gpus = launcher.BuildCommand(request);
  ASSERT_TRUE(on_gpus.ok());
  EXPECT_EQ(std::count(on_gpus->argv.begin(), on_gpus->argv.end(), "--oversubscribe"), 0);
  MpiLauncher missing(reaper, "/bin/isoflop-worker", "no-such-mpirun-anywhere");
  EXPECT_EQ(missing.BuildCommand(request).status().code(), Status::Code::kInvalidArgument);
}

}  // namespace
}  // namespace isoflop
