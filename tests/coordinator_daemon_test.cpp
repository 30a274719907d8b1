// isoflopd end to end, with fake_worker (tests/fake_worker.cpp) standing in for isoflop-worker: a
// sweep runs to completion with every record stored once; workers that crash, hang, or are killed
// are classified and retried, resuming from their checkpoints; a daemon killed with SIGKILL and
// restarted loses and duplicates nothing; bad clients cannot hurt the daemon.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <regex>

#include "coordinator/daemon/access_token.h"
#include "coordinator_testing.h"

namespace isoflop::testing {
namespace {

using nlohmann::json;

// Daemon flags that keep tests fast: small retry waits, quick ingest, 2 CPU slots.
std::vector<std::string> FastDaemonArgs(std::vector<std::string> more = {}) {
  std::vector<std::string> args = {"--cpu-slots",          "2",  "--retry-backoff", "0.05",
                                   "--ingest-interval-ms", "50", "--kill-grace",    "5",
                                   "--retry-backoff-max",  "0.2"};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

class DaemonTest : public ::testing::Test {
 protected:
  std::string SweepFile(const std::string& name, int runs, const std::string& extra = "") {
    return WriteFile(scratch_.path() + "/" + name + ".yaml", SweepYaml(name, runs, extra));
  }
  std::string State(const std::string& name = "state") { return scratch_.path() + "/" + name; }

  ScratchDir scratch_;
};

TEST_F(DaemonTest, SweepRunsToCompletionWithEveryRecordStoredOnce) {
  TestDaemon daemon(State(), FastDaemonArgs(),
                    {{"FAKE_WORKER_STEPS", "15"}, {"FAKE_WORKER_STEP_MS", "5"}});
  daemon.Start();
  const int64_t sweep_id = daemon.Submit(SweepFile("six", 6));
  ASSERT_GT(sweep_id, 0);
  Results results(daemon.state());
  ASSERT_TRUE(WaitFor([&] { return results.AllCompleted(6); }, 30s)) << results.Dump();

  EXPECT_EQ(results.Count("SELECT count(*) FROM metrics"), 6 * 15);
  EXPECT_EQ(results.Count("SELECT count(*) FROM evals WHERE name = 'val_loss'"), 6);
  EXPECT_EQ(results.Count("SELECT count(*) FROM checkpoints"), 6 * 3);  // steps 5, 10, 15
  EXPECT_EQ(results.Count("SELECT count(*) FROM events WHERE to_state = 'COMPLETED'"), 6);
  EXPECT_EQ(results.Count("SELECT count(*) FROM attempts"), 6);
  EXPECT_EQ(results.Count("SELECT count(*) FROM attempts WHERE ended_at IS NULL"), 0);
  EXPECT_EQ(results.Count("SELECT count(*) FROM attempts WHERE exit_status = 0 AND "
                          "cause = 'completed'"),
            6);
  // Every byte of every metrics.jsonl was ingested.
  for (const auto& row : results.Rows("SELECT run_id, ingest_offset FROM supervision")) {
    const std::string file = daemon.state().run(row[0].get<std::string>()) + "/metrics.jsonl";
    EXPECT_EQ(row[1].get<int64_t>(), static_cast<int64_t>(fs::file_size(file)));
  }
  // Provenance from both sides: the coordinator at launch, the worker's "start" record.
  const auto provenance = results.Rows("SELECT provenance FROM runs LIMIT 1");
  const json recorded = json::parse(provenance.at(0).at(0).get<std::string>());
  EXPECT_EQ(recorded["worker"]["torch"], "fake");
  EXPECT_TRUE(recorded["coordinator"].contains("git_commit"));
  EXPECT_EQ(recorded["launcher"], "local");
  EXPECT_EQ(recorded["command"][0], FAKE_WORKER_BIN);
  // Two slots: never more than two runs at once.
  EXPECT_EQ(results.Count(R"sql(
      SELECT max(n) FROM (SELECT (SELECT count(*) FROM attempts AS b
                                  WHERE b.started_at <= a.started_at AND b.ended_at > a.started_at)
                                 AS n FROM attempts AS a))sql"),
            2);
}

TEST_F(DaemonTest, WorkerKilledMidRunIsRetriedAndResumesFromItsCheckpoint) {
  TestDaemon daemon(State(), FastDaemonArgs(),
                    {{"FAKE_WORKER_STEPS", "40"}, {"FAKE_WORKER_STEP_MS", "25"}});
  daemon.Start();
  daemon.Submit(SweepFile("one", 1));
  Results results(daemon.state());
  ASSERT_TRUE(WaitFor([&] { return results.Count("SELECT max(step) FROM metrics") >= 12; }, 20s));
  const int64_t pid = results.Count("SELECT pid FROM attempts WHERE ended_at IS NULL");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(static_cast<pid_t>(pid), SIGKILL), 0);

  ASSERT_TRUE(WaitFor([&] { return results.AllCompleted(1); }, 30s)) << results.Dump();
  const auto attempts = results.Rows("SELECT exit_status, cause FROM attempts ORDER BY attempt");
  ASSERT_EQ(attempts.size(), 2u) << results.Dump();
  EXPECT_EQ(attempts[0][0], -SIGKILL);
  EXPECT_EQ(attempts[0][1], "infrastructure: killed by SIGKILL");
  EXPECT_EQ(attempts[1][1], "completed");
  EXPECT_EQ(results.Count("SELECT count(*) FROM events WHERE to_state = 'LOST'"), 1);
  EXPECT_EQ(results.Count("SELECT count(*) FROM events WHERE to_state = 'RETRY_WAIT'"), 1);
  // Every step exactly once, although the second attempt re-logged the steps after its checkpoint.
  EXPECT_EQ(results.Count("SELECT count(*) FROM metrics"), 40);
  EXPECT_EQ(results.Count("SELECT count(DISTINCT step) FROM metrics"), 40);
  // The same run directory, and the worker resumed from a checkpoint instead of starting over.
  const std::string run_id = results.Rows("SELECT id FROM runs")[0][0].get<std::string>();
  const std::string metrics = ReadFile(daemon.state().run(run_id) + "/metrics.jsonl");
  std::smatch resume;
  ASSERT_TRUE(std::regex_search(metrics, resume, std::regex(R"(\{[^\n]*"type":"resume"[^\n]*\})")))
      << metrics;
  EXPECT_GE(json::parse(resume.str()).value("step", 0), 10);
}

TEST_F(DaemonTest, DaemonKilledMidSweepAndRestartedLosesAndDuplicatesNothing) {
  const std::vector<std::pair<std::string, std::string>> env = {{"FAKE_WORKER_STEPS", "30"},
                                                                {"FAKE_WORKER_STEP_MS", "20"}};
  // An undisturbed sweep, for reference.
  int64_t reference_metrics = 0;
  {
    TestDaemon daemon(State("reference"), FastDaemonArgs(), env);
    daemon.Start();
    daemon.Submit(SweepFile("eight", 8));
    Results results(daemon.state());
    ASSERT_TRUE(WaitFor([&] { return results.AllCompleted(8); }, 30s)) << results.Dump();
    reference_metrics = results.Count("SELECT count(*) FROM metrics");
  }

  TestDaemon daemon(State(), FastDaemonArgs(), env);
  daemon.Start();
  daemon.Submit(SweepFile("eight", 8));
  Results results(daemon.state());
  auto two_workers_midway = [&] {
    return results.Count(
               "SELECT count(*) FROM attempts AS a JOIN last_metrics AS m "
               "ON m.run_id = a.run_id WHERE a.ended_at IS NULL AND m.step >= 5") == 2;
  };
  // Killed while two workers run: back before they finish, it adopts them.
  ASSERT_TRUE(
      WaitFor([&] { return results.RunsIn("COMPLETED") >= 2 && two_workers_midway(); }, 20s));
  daemon.Kill(SIGKILL);
  std::this_thread::sleep_for(100ms);
  daemon.Start();
  EXPECT_NE(daemon.log().find("adopted"), std::string::npos) << daemon.log();

  // Killed again, and away long enough for both workers to finish with nobody watching: their
  // records wait in metrics.jsonl, and the restarted daemon concludes the runs from them.
  ASSERT_TRUE(WaitFor(two_workers_midway, 20s));
  daemon.Kill(SIGKILL);
  std::this_thread::sleep_for(1500ms);
  daemon.Start();
  EXPECT_NE(daemon.log().find("its worker is gone: completed"), std::string::npos) << daemon.log();

  ASSERT_TRUE(WaitFor([&] { return results.AllCompleted(8); }, 30s)) << results.Dump();
  EXPECT_EQ(results.Count("SELECT count(*) FROM runs"), 8);
  EXPECT_EQ(results.Count("SELECT count(*) FROM metrics"), reference_metrics);
  EXPECT_EQ(results.Count("SELECT count(*) FROM events WHERE to_state = 'COMPLETED'"), 8);
  // Nothing ran twice: one attempt per run, adopted or concluded after each restart.
  EXPECT_EQ(results.Count("SELECT count(*) FROM attempts"), 8) << results.Dump();
}

TEST_F(DaemonTest, HungWorkerIsKilledAsLostAndRetried) {
  TestDaemon daemon(State(), FastDaemonArgs({"--heartbeat-timeout", "1"}),
                    {{"FAKE_WORKER_STEPS", "10"},
                     {"FAKE_WORKER_STEP_MS", "10"},
                     {"FAKE_WORKER_FAULT", "hang@4"},
                     {"FAKE_WORKER_FAULT_ONCE", "1"}});
  daemon.Start();
  daemon.Submit(SweepFile("hang", 1));
  Results results(daemon.state());
  ASSERT_TRUE(WaitFor([&] { return results.AllCompleted(1); }, 30s)) << results.Dump();
  const auto causes = results.Rows("SELECT cause FROM attempts ORDER BY attempt");
  ASSERT_EQ(causes.size(), 2u) << results.Dump();
  EXPECT_EQ(causes[0][0].get<std::string>().rfind("hang: no heartbeat", 0), 0u) << causes[0][0];
  EXPECT_EQ(results.Count("SELECT count(*) FROM events WHERE to_state = 'LOST'"), 1);
  EXPECT_EQ(results.Count("SELECT count(*) FROM metrics"), 10);
}

TEST_F(DaemonTest, ACrashLoopStopsRetryingAndSaysWhy) {
  TestDaemon daemon(State(), FastDaemonArgs({"--crash-loop", "3"}),
                    {{"FAKE_WORKER_FAULT", "exit:3@0"}});
  daemon.Start();
  daemon.Submit(SweepFile("loop", 1, "resources: {max_retries: 10}\n"));
  Results results(daemon.state());
  ASSERT_TRUE(WaitFor([&] { return results.RunsIn("FAILED") == 1; }, 30s)) << results.Dump();
  EXPECT_EQ(results.Count("SELECT attempts FROM runs"), 3);
  const auto reasons = results.Rows("SELECT reason FROM events ORDER BY id DESC LIMIT 1");
  EXPECT_NE(reasons[0][0].get<std::string>().find("crash loop"), std::string::npos)
      << reasons[0][0];
}

TEST_F(DaemonTest, CodeFaultsSpendMaxRetriesAndConfigErrorsAreNotRetried) {
  TestDaemon daemon(State(), FastDaemonArgs({"--crash-loop", "0"}),
                    {{"FAKE_WORKER_STEPS", "5"},
                     {"FAKE_WORKER_STEP_MS", "1"},
                     {"FAKE_WORKER_FAULT", "exit:70@2"},
                     {"FAKE_WORKER_FAULT_MATCH", "/s0"}});
  daemon.Start();
  daemon.Submit(SweepFile("faults", 2, "resources: {max_retries: 2}\n"));
  Results results(daemon.state());
  ASSERT_TRUE(
      WaitFor([&] { return results.RunsIn("FAILED") + results.RunsIn("COMPLETED") == 2; }, 30s))
      << results.Dump();
  // seed 0 fails every time: 1 attempt + max_retries 2; seed 1 is unaffected.
  EXPECT_EQ(results.Count("SELECT attempts FROM runs WHERE name LIKE '%/s0'"), 3);
  EXPECT_EQ(results.Count("SELECT count(*) FROM runs WHERE name LIKE '%/s0' AND state = 'FAILED'"),
            1);
  EXPECT_EQ(results.Count("SELECT count(*) FROM attempts WHERE cause = 'code fault: exit status "
                          "70'"),
            3);
  EXPECT_EQ(results.Count("SELECT count(*) FROM runs WHERE name LIKE '%/s1' AND "
                          "state = 'COMPLETED'"),
            1);

  TestDaemon config_daemon(State("config"), FastDaemonArgs(), {{"FAKE_WORKER_FAULT", "exit:1@0"}});
  config_daemon.Start();
  config_daemon.Submit(SweepFile("config", 1));
  Results config_results(config_daemon.state());
  ASSERT_TRUE(WaitFor([&] { return config_results.RunsIn("FAILED") == 1; }, 30s));
  EXPECT_EQ(config_results.Count("SELECT attempts FROM runs"), 1);
  const auto reason = config_results.Rows("SELECT reason FROM events ORDER BY id DESC LIMIT 1");
  EXPECT_NE(reason[0][0].get<std::string>().find("rejected the run as configured"),
            std::string::npos);
}

TEST_F(DaemonTest, CancelStopsARunningWorkerAndResumeRunsItAgainFromItsCheckpoint) {
  TestDaemon daemon(State(), FastDaemonArgs(),
                    {{"FAKE_WORKER_STEPS", "60"}, {"FAKE_WORKER_STEP_MS", "20"}});
  daemon.Start();
  const int64_t sweep_id = daemon.Submit(SweepFile("cancel", 1));
  Results results(daemon.state());
  ASSERT_TRUE(WaitFor([&] { return results.Count("SELECT max(step) FROM metrics") >= 7; }, 20s));
  const std::string run_id = results.Rows("SELECT id FROM runs")[0][0].get<std::string>();

  Result<json> cancelled = daemon.Call(protocol::Cancel{run_id.substr(0, 16)});
  ASSERT_TRUE(cancelled.ok()) << cancelled.status().ToString();
  EXPECT_EQ((*cancelled)["cancelled"].size(), 1u);
  ASSERT_TRUE(WaitFor(
      [&] {
        return results.Count(
                   "SELECT count(*) FROM attempts WHERE ended_at "
                   "IS NULL") == 0;
      },
      10s));
  EXPECT_EQ(results.RunsIn("CANCELLED"), 1);
  // SIGTERM: the worker checkpointed and exited 75 (EX_TEMPFAIL).
  EXPECT_EQ(results.Count("SELECT exit_status FROM attempts"), 75);
  const int64_t stopped_at = results.Count("SELECT max(step) FROM checkpoints");
  EXPECT_GE(stopped_at, 7);

  Result<json> resumed = daemon.Call(protocol::Resume{std::to_string(sweep_id)});
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_EQ((*resumed)["requeued"].size(), 1u);
  ASSERT_TRUE(WaitFor([&] { return results.AllCompleted(1); }, 30s)) << results.Dump();
  EXPECT_EQ(results.Count("SELECT count(*) FROM metrics"), 60);
  const std::string metrics = ReadFile(daemon.state().run(run_id) + "/metrics.jsonl");
  EXPECT_NE(metrics.find(fmt::format(R"("step":{},"type":"resume")", stopped_at)),
            std::string::npos)
      << metrics;
}

TEST_F(DaemonTest, MpiLauncherRunsEachRunAsAnMpiWorldOnItsSlots) {
  if (std::system("command -v mpirun > /dev/null 2>&1") != 0) GTEST_SKIP() << "no mpirun";
  TestDaemon daemon(State(), FastDaemonArgs(),
                    {{"FAKE_WORKER_STEPS", "10"}, {"FAKE_WORKER_STEP_MS", "10"}});
  daemon.Start();
  daemon.Submit(SweepFile("mpi", 2, "resources: {gpus: 2, launcher: mpi}\n"));
  Results results(daemon.state());
  ASSERT_TRUE(WaitFor([&] { return results.AllCompleted(2); }, 60s))
      << results.Dump() << daemon.log();
  EXPECT_EQ(results.Count("SELECT count(*) FROM attempts WHERE launcher = 'mpi' AND "
                          "slots = 'cpu0,cpu1'"),
            2);
  EXPECT_EQ(results.Count("SELECT count(*) FROM metrics"), 2 * 10);  // rank 0 reports
  const auto command = results.Rows("SELECT json_extract(provenance, '$.command') FROM runs");
  const json argv = json::parse(command.at(0).at(0).get<std::string>());
  EXPECT_NE(argv[0].get<std::string>().find("mpirun"), std::string::npos) << argv;
  EXPECT_EQ(argv[2], "2");  // -np 2
  const auto mpi = results.Rows("SELECT json_extract(provenance, '$.mpi') FROM runs");
  EXPECT_NE(mpi.at(0).at(0).get<std::string>().find("mpirun"), std::string::npos) << mpi[0][0];
}

TEST_F(DaemonTest, OnlyOneDaemonRunsOnAStateDirectory) {
  TestDaemon daemon(State(), FastDaemonArgs(), {});
  daemon.Start();
  const std::string output = State() + "/second.out";
  const std::string command = fmt::format("{} --state-dir {} --worker {} > {} 2>&1", ISOFLOPD_BIN,
                                          State(), FAKE_WORKER_BIN, output);
  const int status = std::system(command.c_str());
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(ReadFile(output).find("another isoflopd (pid " + std::to_string(daemon.pid())),
            std::string::npos)
      << ReadFile(output);
  EXPECT_TRUE(daemon.alive());
}

TEST_F(DaemonTest, SocketAndTokenAreReadableByTheOwnerOnly) {
  TestDaemon daemon(State(), FastDaemonArgs(), {});
  daemon.Start();
  struct stat info {};
  ASSERT_EQ(::stat(daemon.state().socket().c_str(), &info), 0);
  EXPECT_TRUE(S_ISSOCK(info.st_mode));
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(daemon.state().token().c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(daemon.state().root.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0700u);
}

// A raw connection, to send what no DaemonClient would.
class RawConnection {
 public:
  static RawConnection Unix(const std::string& path) {
    RawConnection c(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    EXPECT_EQ(::connect(c.fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    return c;
  }
  static RawConnection Tcp(uint16_t port) {
    RawConnection c(::socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(c.fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    return c;
  }
  RawConnection(RawConnection&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  void Send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;  // the daemon may close before all of it is sent
      sent += static_cast<size_t>(n);
    }
  }
  // Everything the daemon sends until it closes the connection or `quiet` passes without a byte.
  std::string ReceiveUntilClosed(std::chrono::milliseconds quiet, bool* closed) {
    timeval timeout{0, static_cast<suseconds_t>(quiet.count() * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    std::string received;
    char buffer[4096];
    for (;;) {
      const ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
      if (n > 0) {
        received.append(buffer, static_cast<size_t>(n));
        continue;
      }
      *closed = n == 0 || (n < 0 && errno == ECONNRESET);
      return received;
    }
  }
  // One response line.
  std::string ReceiveLine() {
    std::string line;
    char c = 0;
    while (::recv(fd_, &c, 1, 0) == 1 && c != '\n') line += c;
    return line;
  }

 private:
  explicit RawConnection(int fd) : fd_(fd) {}
  int fd_;
};

uint16_t TcpPortFromLog(const std::string& log) {
  std::smatch match;
  if (!std::regex_search(log, match, std::regex(R"(listening on 127\.0\.0\.1:(\d+) \(TCP)"))) {
    return 0;
  }
  return static_cast<uint16_t>(std::stoi(match[1].str()));
}

TEST_F(DaemonTest, UnauthenticatedTcpClientsGetNothing) {
  TestDaemon daemon(State(), FastDaemonArgs({"--listen", "127.0.0.1:0"}), {});
  daemon.Start();
  const uint16_t port = TcpPortFromLog(daemon.log());
  ASSERT_GT(port, 0) << daemon.log();
  const std::string ping = protocol::EncodeRequest({1, protocol::Ping{}});
  const std::string wrong_token =
      protocol::EncodeRequest({1, protocol::Hello{std::string(64, 'a')}});
  for (const std::string& attempt :
       {ping, wrong_token, std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        protocol::EncodeRequest({1, protocol::Submit{"/etc/passwd"}})}) {
    RawConnection connection = RawConnection::Tcp(port);
    connection.Send(attempt + ping);
    bool closed = false;
    EXPECT_EQ(connection.ReceiveUntilClosed(3s, &closed), "") << attempt;
    EXPECT_TRUE(closed) << attempt;
  }
  // The right token opens the door.
  Result<std::string> token = ReadToken(daemon.state().token());
  ASSERT_TRUE(token.ok());
  Result<DaemonClient> client = DaemonClient::ConnectTcp("127.0.0.1", port, *token, 5s);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  EXPECT_TRUE(client->Call(protocol::Ping{}).ok());
  EXPECT_NE(daemon.log().find("unauthenticated (wrong token)"), std::string::npos);
}

TEST_F(DaemonTest, MalformedAndOversizedMessagesAreRejectedAndTheDaemonCarriesOn) {
  TestDaemon daemon(State(), FastDaemonArgs(), {});
  daemon.Start();
  {
    RawConnection connection = RawConnection::Unix(daemon.state().socket());
    for (const std::string& bad :
         {std::string("not json"), std::string("[1,2,3]"), std::string(R"({"v":2,"type":"ping"})"),
          std::string(R"({"v":1,"type":"launch_missiles"})"),
          std::string(R"({"v":1,"type":"submit","path":7})"),
          std::string(R"({"v":1,"type":"cancel","target":"x","extra":1})"),
          std::string("\xff\xfe\x00\x01garbage", 11)}) {
      connection.Send(bad + "\n");
      const json reply = json::parse(connection.ReceiveLine(), nullptr, false);
      ASSERT_TRUE(reply.is_object()) << bad;
      EXPECT_EQ(reply["type"], "error") << bad;
      EXPECT_EQ(reply["error"]["code"], "InvalidArgument") << bad;
    }
    // The same connection still serves a good request after all that.
    connection.Send(protocol::EncodeRequest({9, protocol::Ping{}}));
    EXPECT_EQ(json::parse(connection.ReceiveLine())["type"], "ok");
  }
  {
    // Two megabytes without a newline: refused and disconnected, not buffered without end.
    RawConnection connection = RawConnection::Unix(daemon.state().socket());
    connection.Send(std::string(2 << 20, 'x'));
    bool closed = false;
    const std::string reply = connection.ReceiveUntilClosed(5s, &closed);
    EXPECT_TRUE(closed);
    EXPECT_NE(reply.find("exceeds"), std::string::npos) << reply;
  }
  EXPECT_TRUE(daemon.alive());
  EXPECT_TRUE(daemon.Call(protocol::Ping{}).ok());
}

TEST_F(DaemonTest, ShutdownLeavesWorkersRunningForTheNextDaemon) {
  TestDaemon daemon(State(), FastDaemonArgs(),
                    {{"FAKE_WORKER_STEPS", "40"}, {"FAKE_WORKER_STEP_MS", "20"}});
  daemon.Start();
  daemon.Submit(SweepFile("handover", 2));
  Results results(daemon.state());
  ASSERT_TRUE(WaitFor([&] { return results.Count("SELECT count(*) FROM metrics") >= 4; }, 20s));
  const auto pids = results.Rows("SELECT pid FROM attempts WHERE ended_at IS NULL");
  ASSERT_EQ(pids.size(), 2u);
  ASSERT_TRUE(daemon.Call(protocol::Shutdown{}).ok());
  EXPECT_EQ(daemon.Wait(), 0);
  for (const auto& pid : pids) EXPECT_EQ(::kill(pid[0].get<pid_t>(), 0), 0) << "worker died";

  TestDaemon next(State(), FastDaemonArgs(),
                  {{"FAKE_WORKER_STEPS", "40"}, {"FAKE_WORKER_STEP_MS", "20"}});
  next.Start();
  ASSERT_TRUE(WaitFor([&] { return results.AllCompleted(2); }, 30s)) << results.Dump();
  EXPECT_EQ(results.Count("SELECT count(*) FROM attempts"), 2);
  EXPECT_EQ(results.Count("SELECT count(*) FROM metrics"), 80);
}

}  // namespace
}  // namespace isoflop::testing
