// isoflopd with workers that report over its socket (fake_worker runs the real worker's reporter,
// coordinator/protocol/daemon_reporter.h): heartbeats keep a worker that writes nothing for longer
// than the heartbeat timeout alive, and stop for a trainer that hangs; records that arrive both
// over the socket and through metrics.jsonl are stored once, and the socket alone suffices for a
// worker whose file the daemon cannot see; a TCP worker without the token gets nothing, and a
// stale worker's reports change nothing.
//
// The converse of the first test, a worker that neither reports nor writes, is
// DaemonTest.HungWorkerIsKilledAsLostAndRetried (coordinator_daemon_test.cpp).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <regex>

#include "coordinator/daemon/access_token.h"
#include "coordinator_testing.h"

namespace isoflop::testing {
namespace {

using nlohmann::json;

// Daemon flags that keep tests fast: small retry waits, quick ingest, 2 CPU slots.
std::vector<std::string> FastDaemonArgs(std::vector<std::string> more = {},
                                        const std::string& ingest_interval_ms = "50") {
  std::vector<std::string> args = {"--cpu-slots",          "2",
                                   "--retry-backoff",      "0.05",
                                   "--ingest-interval-ms", ingest_interval_ms,
                                   "--kill-grace",         "5",
                                   "--retry-backoff-max",  "0.2"};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

class ReportingDaemonTest : public ::testing::Test {
 protected:
  std::string SweepFile(const std::string& name, int runs) {
    return WriteFile(scratch_.path() + "/" + name + ".yaml", SweepYaml(name, runs));
  }
  std::string State() { return scratch_.path() + "/state"; }
  // The records a fake worker of `steps` steps writes: start, one train per step, a checkpoint
  // every 5 steps, eval, complete.
  static int64_t RecordsOf(int64_t steps) { return 1 + steps + steps / 5 + 2; }

  ScratchDir scratch_;
};

TEST_F(ReportingDaemonTest, HeartbeatsKeepAWorkerAliveWhileItWritesNothing) {
  // A "long evaluation": 5 s without a record, more than twice the heartbeat timeout.
  TestDaemon daemon(State(), FastDaemonArgs({"--heartbeat-timeout", "2"}),
                    {{"FAKE_WORKER_STEPS", "6"},
                     {"FAKE_WORKER_STEP_MS", "10"},
                     {"FAKE_WORKER_FAULT", "stall:5000@3"}});
  daemon.Start();
  daemon.Submit(SweepFile("quiet", 1));
  Results results(daemon.state());
  ASSERT_TRUE(WaitFor([&] { return results.AllCompleted(1); }, 25s)) << results.Dump();
  EXPECT_EQ(results.Count("SELECT count(*) FROM attempts"), 1) << results.Dump();
  EXPECT_EQ(results.Count("SELECT count(*) FROM events WHERE to_state = 'LOST'"), 0);
  EXPECT_EQ(results.Count("SELECT count(*) FROM metrics"), 6);
  // Its file really stood still for longer than the timeout: the socket kept it alive.
  const std::string run_id = results.Rows("SELECT id FROM runs")[0][0].get<std::string>();
  EXPECT_NE(ReadFile(daemon.state().run(run_id) + "/worker.log").find("stall"), std::string::npos);
}

TEST_F(ReportingDaemonTest, ATrainerThatHangsInALiveProcessIsStillLost) {
  // The process lives and could send heartbeats forever; they stop after 4 timeouts without a
  // record, and the run is LOST and retried.
  TestDaemon daemon(State(), FastDaemonArgs({"--heartbeat-timeout", "1"}),
                    {{"FAKE_WORKER_STEPS", "6"},
                     {"FAKE_WORKER_STEP_MS", "10"},
                     {"FAKE_WORKER_FAULT", "stall:600000@3"},
                     {"FAKE_WORKER_FAULT_ONCE", "1"}});
  daemon.Start();
  daemon.Submit(SweepFile("stuck", 1));
  Results results(daemon.state());
  ASSERT_TRUE(WaitFor([&] { return results.AllCompleted(1); }, 25s)) << results.Dump();
  const auto causes = results.Rows("SELECT cause FROM attempts ORDER BY attempt");
  ASSERT_EQ(causes.size(), 2u) << results.Dump();
  EXPECT_EQ(causes[0][0].get<std::string>().rfind("hang: no heartbeat", 0), 0u) << causes[0][0];
  EXPECT_EQ(results.Count("SELECT count(*) FROM events WHERE to_state = 'LOST'"), 1);
  EXPECT_EQ(results.Count("SELECT count(*) FROM metrics"), 6);
}

TEST_F(ReportingDaemonTest, RecordsArrivingBothWaysAreStoredOnce) {
  // A slow ingest lets socket records and the file's copies of them meet in one transaction.
  const int64_t steps = 20;
  TestDaemon daemon(State(), FastDaemonArgs({}, /*ingest_interval_ms=*/"400"),
                    {{"FAKE_WORKER_STEPS", std::to_string(steps)}, {"FAKE_WORKER_STEP_MS", "10"}});
  daemon.Start();
  daemon.Submit(SweepFile("both", 3));
  Results results(daemon.state());
  ASSERT_TRUE(WaitFor([&] { return results.AllCompleted(3); }, 25s)) << results.Dump();
  EXPECT_EQ(results.Count("SELECT count(*) FROM metrics"), 3 * steps);
  EXPECT_EQ(results.Count("SELECT count(*) FROM evals"), 3);
  EXPECT_EQ(results.Count("SELECT count(*) FROM checkpoints"), 3 * steps / 5);
  for (const auto& row : results.Rows("SELECT run_id, ingest_offset FROM supervision")) {
    const std::string dir = daemon.state().run(row[0].get<std::string>());
    // The file was read to its end...
    EXPECT_EQ(row[1].get<int64_t>(), static_cast<int64_t>(fs::file_size(dir + "/metrics.jsonl")));
    // ...and every record also went over the socket.
    EXPECT_NE(
        ReadFile(dir + "/worker.log")
            .find(fmt::format("reported to isoflopd: {} records (0 dropped)", RecordsOf(steps))),
        std::string::npos)
        << ReadFile(dir + "/worker.log");
  }
}

TEST_F(ReportingDaemonTest, AWorkerWithoutASharedFileSystemReportsThroughTheSocketAlone) {
  const int64_t steps = 15;
  TestDaemon daemon(State(), FastDaemonArgs(),
                    {{"FAKE_WORKER_STEPS", std::to_string(steps)},
                     {"FAKE_WORKER_STEP_MS", "10"},
                     {"FAKE_WORKER_HIDDEN_RECORDS", "1"}});
  daemon.Start();
  daemon.Submit(SweepFile("remote", 2));
  Results results(daemon.state());
  ASSERT_TRUE(WaitFor([&] { return results.AllCompleted(2); }, 25s)) << results.Dump();
  EXPECT_EQ(results.Count("SELECT count(*) FROM attempts WHERE cause = 'completed'"), 2);
  EXPECT_EQ(results.Count("SELECT count(*) FROM metrics"), 2 * steps);
  EXPECT_EQ(results.Count("SELECT count(*) FROM evals"), 2);
  EXPECT_EQ(results.Count("SELECT count(*) FROM checkpoints"), 2 * steps / 5);
  EXPECT_EQ(results.Count("SELECT count(*) FROM supervision WHERE complete_step = 15"), 2);
  // Nothing came from a file: there was none to read.
  EXPECT_EQ(results.Count("SELECT count(*) FROM supervision WHERE ingest_offset > 0"), 0);
  const json provenance = json::parse(
      results.Rows("SELECT provenance FROM runs LIMIT 1").at(0).at(0).get<std::string>());
  EXPECT_EQ(provenance["worker"]["torch"], "fake");
}

// A raw connection, to send what no reporter would.
class RawConnection {
 public:
  explicit RawConnection(sockaddr_storage address, socklen_t size)
      : fd_(::socket(address.ss_family, SOCK_STREAM, 0)) {
    EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&address), size), 0);
    timeval timeout{3, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  }
  static RawConnection Tcp(uint16_t port) {
    sockaddr_storage storage{};
    auto* address = reinterpret_cast<sockaddr_in*>(&storage);
    address->sin_family = AF_INET;
    address->sin_port = htons(port);
    address->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return RawConnection(storage, sizeof(sockaddr_in));
  }
  static RawConnection Unix(const std::string& path) {
    sockaddr_storage storage{};
    auto* address = reinterpret_cast<sockaddr_un*>(&storage);
    address->sun_family = AF_UNIX;
    std::strncpy(address->sun_path, path.c_str(), sizeof(address->sun_path) - 1);
    return RawConnection(storage, sizeof(sockaddr_un));
  }
  RawConnection(RawConnection&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  void Send(const std::string& bytes) {
    EXPECT_EQ(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  // What the daemon sends until it closes the connection (or 3 s pass).
  std::string ReceiveAll(bool* closed) {
    std::string received;
    char buffer[4096];
    for (;;) {
      const ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
      if (n > 0) {
        received.append(buffer, static_cast<size_t>(n));
        continue;
      }
      *closed = n == 0 || errno == ECONNRESET;
      return received;
    }
  }
  // Sends one line and returns the reply line.
  std::string Exchange(const std::string& line) {
    Send(line);
    std::string reply;
    char c = 0;
    while (::recv(fd_, &c, 1, 0) == 1 && c != '\n') reply += c;
    return reply;
  }
  Result<json> Call(const protocol::RequestBody& request, int64_t id) {
    return protocol::DecodeResponse(Exchange(protocol::EncodeRequest({id, request})), id);
  }

 private:
  int fd_;
};

uint16_t TcpPortFromLog(const std::string& log) {
  std::smatch match;
  if (!std::regex_search(log, match, std::regex(R"(listening on 127\.0\.0\.1:(\d+) \(TCP)"))) {
    return 0;
  }
  return static_cast<uint16_t>(std::stoi(match[1].str()));
}

TEST_F(ReportingDaemonTest, ATcpWorkerWithoutTheTokenGetsNothing) {
  TestDaemon daemon(State(), FastDaemonArgs({"--listen", "127.0.0.1:0"}), {});
  daemon.Start();
  const uint16_t port = TcpPortFromLog(daemon.log());
  ASSERT_GT(port, 0) << daemon.log();
  Result<std::string> token = ReadToken(daemon.state().token());
  ASSERT_TRUE(token.ok());
  const std::string run_id(64, 'b');
  const json train = {{"type", "train"}, {"step", 1}, {"tokens", 1}, {"flops", 1}};
  for (const protocol::RequestBody& first : std::vector<protocol::RequestBody>{
           protocol::WorkerHello{std::nullopt, run_id, 1, 0},
           protocol::WorkerHello{std::string(64, '0'), run_id, 1, 0},
           protocol::Heartbeat{run_id, 1, 5},
           protocol::Record{run_id, 1, train},
       }) {
    RawConnection connection = RawConnection::Tcp(port);
    connection.Send(protocol::EncodeRequest({1, first}) +
                    protocol::EncodeRequest({2, protocol::Heartbeat{run_id, 1, 5}}));
    bool closed = false;
    EXPECT_EQ(connection.ReceiveAll(&closed), "") << protocol::TypeName(first);
    EXPECT_TRUE(closed) << protocol::TypeName(first);
  }
  // With the token it is let in, and told that no such attempt runs here.
  RawConnection connection = RawConnection::Tcp(port);
  Result<json> hello = connection.Call(protocol::WorkerHello{*token, run_id, 1, 0}, 1);
  EXPECT_EQ(hello.status().code(), Status::Code::kFailedPrecondition) << hello.status().ToString();
  // Nothing of it reached the database.
  Results results(daemon.state());
  EXPECT_EQ(results.Count("SELECT count(*) FROM supervision"), 0);
}

TEST_F(ReportingDaemonTest, ReportsOfAnAttemptNotFollowedChangeNothing) {
  TestDaemon daemon(State(), FastDaemonArgs(),
                    {{"FAKE_WORKER_STEPS", "5"}, {"FAKE_WORKER_STEP_MS", "5"}});
  daemon.Start();
  daemon.Submit(SweepFile("done", 1));
  Results results(daemon.state());
  ASSERT_TRUE(WaitFor([&] { return results.AllCompleted(1); }, 25s)) << results.Dump();
  const std::string run_id = results.Rows("SELECT id FROM runs")[0][0].get<std::string>();
  const json late = {{"type", "train"}, {"step", 99}, {"tokens", 1}, {"flops", 1}};

  RawConnection connection = RawConnection::Unix(daemon.state().socket());
  // The finished attempt, and one that never existed: both stale.
  EXPECT_EQ(connection.Call(protocol::Heartbeat{run_id, 1, 5}, 1).status().code(),
            Status::Code::kFailedPrecondition);
  EXPECT_EQ(connection.Call(protocol::Record{run_id, 2, late}, 2).status().code(),
            Status::Code::kFailedPrecondition);
  // Rank 0 alone reports; over the Unix socket a token is optional, but a wrong one is refused.
  EXPECT_EQ(connection.Call(protocol::WorkerHello{std::nullopt, run_id, 1, 1}, 3).status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(
      connection.Call(protocol::WorkerHello{std::string(64, '0'), run_id, 1, 0}, 4).status().code(),
      Status::Code::kPermissionDenied);
  // A malformed worker message is an error reply; the connection goes on.
  const json reply = json::parse(
      connection.Exchange(R"({"v":1,"type":"heartbeat","id":5,"run_id":"x","attempt":1,"step":1})"
                          "\n"),
      nullptr, false);
  EXPECT_EQ(reply.value("error", json::object()).value("code", ""), "InvalidArgument") << reply;
  EXPECT_TRUE(connection.Call(protocol::Ping{}, 6).ok());

  std::this_thread::sleep_for(300ms);  // several ingests
  EXPECT_EQ(results.Count("SELECT count(*) FROM metrics WHERE step = 99"), 0);
  EXPECT_EQ(results.Count("SELECT count(*) FROM attempts"), 1);
  EXPECT_EQ(results.RunsIn("COMPLETED"), 1);
  EXPECT_NE(daemon.log().find("is not running under this coordinator"), std::string::npos);
}

}  // namespace
}  // namespace isoflop::testing
