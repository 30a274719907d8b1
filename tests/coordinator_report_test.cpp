// Workers reporting to the coordinator over its socket, piece by piece: the worker messages of the
// wire protocol (protocol_codec.h), the settings a launcher passes in the environment, the
// reporter's thread against a real ApiServer (daemon_reporter.h), and the ingestor storing what
// arrives over the socket and through metrics.jsonl once (ingestor.h).
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "common/sweep/sweep_loader.h"
#include "coordinator/daemon/api_server.h"
#include "coordinator/launcher/process_launcher.h"
#include "coordinator/protocol/daemon_reporter.h"
#include "coordinator/protocol/protocol_codec.h"
#include "coordinator/supervisor/ingestor.h"
#include "coordinator_testing.h"

namespace isoflop {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using testing::ScratchDir;
using testing::WaitFor;

const std::string kRunId(64, 'a');

std::string WithoutNewline(std::string line) {
  EXPECT_EQ(line.back(), '\n');
  line.pop_back();
  return line;
}

// ---- Protocol

TEST(WorkerProtocolTest, WorkerMessagesRoundTrip) {
  const json record = {{"type", "train"}, {"step", 7}, {"train_loss", 2.5}, {"lr", nullptr}};
  const std::vector<protocol::Request> requests = {
      {1, protocol::WorkerHello{std::nullopt, kRunId, 1, 0}},
      {2, protocol::WorkerHello{std::string(64, 'f'), kRunId, 3, 2}},
      {3, protocol::Heartbeat{kRunId, 2, 0}},
      {"h", protocol::Heartbeat{kRunId, 2, 123456789012}},
      {4, protocol::Record{kRunId, 1, record}},
  };
  for (const protocol::Request& request : requests) {
    const std::string line = protocol::EncodeRequest(request);
    Result<protocol::Request> decoded = protocol::DecodeRequest(WithoutNewline(line));
    ASSERT_TRUE(decoded.ok()) << line << ": " << decoded.status().ToString();
    EXPECT_EQ(decoded->id, request.id);
    EXPECT_EQ(decoded->body.index(), request.body.index());
    EXPECT_EQ(protocol::EncodeRequest(*decoded), line);
  }
  const auto hello = protocol::DecodeRequest(R"({"v":1,"type":"worker_hello","id":1,"run_id":")" +
                                             kRunId + R"(","attempt":3,"rank":0})");
  ASSERT_TRUE(hello.ok()) << hello.status().ToString();
  const auto& body = std::get<protocol::WorkerHello>(hello->body);
  EXPECT_FALSE(body.token.has_value());  // optional: the Unix socket needs none
  EXPECT_EQ(body.attempt, 3);
  const auto sent = protocol::DecodeRequest(WithoutNewline(protocol::EncodeRequest(requests[4])));
  EXPECT_EQ(std::get<protocol::Record>(sent->body).record, record);
  EXPECT_STREQ(protocol::TypeName(requests[0].body), "worker_hello");
  EXPECT_STREQ(protocol::TypeName(requests[2].body), "heartbeat");
  EXPECT_STREQ(protocol::TypeName(requests[4].body), "record");
}

TEST(WorkerProtocolTest, RejectsMalformedWorkerMessages) {
  const std::string id = kRunId;
  const auto hello = [&](const std::string& fields) {
    return R"({"v":1,"type":"worker_hello",)" + fields + "}";
  };
  const auto heartbeat = [&](const std::string& fields) {
    return R"({"v":1,"type":"heartbeat",)" + fields + "}";
  };
  const auto record = [&](const std::string& body) {
    return R"({"v":1,"type":"record","run_id":")" + id + R"(","attempt":1,"record":)" + body + "}";
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {hello(R"("run_id":"abc","attempt":1,"rank":0)"), "64-hex-digit id"},
      {hello(R"("run_id":")" + std::string(64, 'A') + R"(","attempt":1,"rank":0)"),
       "64-hex-digit id"},
      {hello(R"("run_id":")" + id + R"(","attempt":0,"rank":0)"), "\"attempt\" must be at least 1"},
      {hello(R"("run_id":")" + id + R"(","attempt":1,"rank":-1)"), "\"rank\" must be at least 0"},
      {hello(R"("run_id":")" + id + R"(","attempt":1)"), "missing field \"rank\""},
      {hello(R"("token":"","run_id":")" + id + R"(","attempt":1,"rank":0)"), "\"token\" is empty"},
      {hello(R"("token":5,"run_id":")" + id + R"(","attempt":1,"rank":0)"),
       "\"token\" must be a string"},
      {hello(R"("run_id":")" + id + R"(","attempt":1,"rank":0,"pid":7)"), "unknown field \"pid\""},
      {heartbeat(R"("run_id":")" + id + R"(","attempt":1,"step":-1)"),
       "\"step\" must be at least 0"},
      {heartbeat(R"("run_id":")" + id + R"(","attempt":1,"step":1.5)"),
       "\"step\" must be an integer"},
      {heartbeat(R"("run_id":")" + id + R"(","attempt":"1","step":1)"),
       "\"attempt\" must be an integer"},
      {heartbeat(R"("run_id":")" + id + R"(","attempt":18446744073709551615,"step":1)"),
       "\"attempt\" must be an integer"},
      {heartbeat(R"("run_id":")" + id + R"(","attempt":1)"), "missing field \"step\""},
      {record("[]"), "must be an object with a string \"type\""},
      {record("{}"), "must be an object with a string \"type\""},
      {record(R"({"type":""})"), "must be an object with a string \"type\""},
      {record(R"({"type":3})"), "must be an object with a string \"type\""},
      {record(R"("train")"), "must be an object with a string \"type\""},
  };
  for (const auto& [line, expected] : cases) {
    Result<protocol::Request> decoded = protocol::DecodeRequest(line);
    ASSERT_FALSE(decoded.ok()) << line;
    EXPECT_EQ(decoded.status().code(), Status::Code::kInvalidArgument) << line;
    EXPECT_NE(decoded.status().message().find(expected), std::string::npos)
        << line << " -> " << decoded.status().message();
  }
}

// ---- Settings in the environment

TEST(ReportingSettingsTest, TheLauncherEnvironmentRoundTrips) {
  ReportingSettings settings{"tcp:[::1]:7000", "secret", 0.25, 8};
  std::map<std::string, std::string> env;
  for (const auto& [key, value] : ReportingEnvironment(settings)) env[key] = value;
  env["ISOFLOP_ATTEMPT"] = kRunId + "/3";
  const auto lookup = [&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  auto options = DaemonReporter::OptionsFromEnvironment(lookup);
  ASSERT_TRUE(options.ok()) << options.status().ToString();
  ASSERT_TRUE(options->has_value());
  EXPECT_EQ((*options)->settings.address, "tcp:[::1]:7000");
  EXPECT_EQ((*options)->settings.token, "secret");
  EXPECT_EQ((*options)->settings.heartbeat_interval_s, 0.25);
  EXPECT_EQ((*options)->settings.max_silence_s, 8);
  EXPECT_EQ((*options)->run_id, kRunId);
  EXPECT_EQ((*options)->attempt, 3);

  // No address: no reporting, and nothing in the environment.
  EXPECT_TRUE(ReportingEnvironment(ReportingSettings{}).empty());
  auto none = DaemonReporter::OptionsFromEnvironment([](const char*) { return nullptr; });
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  const std::vector<std::pair<std::map<std::string, std::string>, std::string>> malformed = {
      {{{"ISOFLOP_DAEMON", "http://host"}}, "ISOFLOP_DAEMON"},
      {{{"ISOFLOP_DAEMON", "unix:"}}, "ISOFLOP_DAEMON"},
      {{{"ISOFLOP_DAEMON", "tcp:host"}}, "ISOFLOP_DAEMON"},
      {{{"ISOFLOP_DAEMON", "tcp:host:0"}, {"ISOFLOP_TOKEN", "t"}}, "ISOFLOP_DAEMON"},
      {{{"ISOFLOP_DAEMON", "tcp:host:99999"}, {"ISOFLOP_TOKEN", "t"}}, "ISOFLOP_DAEMON"},
      {{{"ISOFLOP_DAEMON", "tcp:host:7000"}}, "ISOFLOP_TOKEN"},
      {{{"ISOFLOP_DAEMON", "unix:/s"}, {"ISOFLOP_HEARTBEAT_INTERVAL", "0"}},
       "ISOFLOP_HEARTBEAT_INTERVAL"},
      {{{"ISOFLOP_DAEMON", "unix:/s"}, {"ISOFLOP_HEARTBEAT_INTERVAL", "5s"}},
       "ISOFLOP_HEARTBEAT_INTERVAL"},
      {{{"ISOFLOP_DAEMON", "unix:/s"}, {"ISOFLOP_MAX_SILENCE", "-1"}}, "ISOFLOP_MAX_SILENCE"},
      {{{"ISOFLOP_DAEMON", "unix:/s"}}, "ISOFLOP_ATTEMPT"},
      {{{"ISOFLOP_DAEMON", "unix:/s"}, {"ISOFLOP_ATTEMPT", kRunId}}, "ISOFLOP_ATTEMPT"},
      {{{"ISOFLOP_DAEMON", "unix:/s"}, {"ISOFLOP_ATTEMPT", kRunId + "/0"}}, "ISOFLOP_ATTEMPT"},
      {{{"ISOFLOP_DAEMON", "unix:/s"}, {"ISOFLOP_ATTEMPT", "/2"}}, "ISOFLOP_ATTEMPT"},
  };
  for (const auto& [variables, named] : malformed) {
    auto options = DaemonReporter::OptionsFromEnvironment([&](const char* name) -> const char* {
      auto it = variables.find(name);
      return it == variables.end() ? nullptr : it->second.c_str();
    });
    ASSERT_FALSE(options.ok()) << variables.begin()->second;
    EXPECT_EQ(options.status().code(), Status::Code::kInvalidArgument);
    EXPECT_EQ(options.status().message().rfind(named, 0), 0u) << options.status().message();
  }
}

TEST(ReportingSettingsTest, BothLaunchersPassThemToTheWorker) {
  boost::asio::io_context io;
  ProcessReaper reaper(io);
  LaunchRequest request;
  request.run_id = kRunId;
  request.attempt = 2;
  request.run_dir = "/state/runs/a";
  request.config_path = "/state/runs/a/run.json";
  request.reporting = {"unix:/state/isoflopd.sock", "", 0.5, 60};
  LocalLauncher local(reaper, "/bin/isoflop-worker");
  Result<ProcessLauncher::Command> command = local.BuildCommand(request);
  ASSERT_TRUE(command.ok());
  std::map<std::string, std::string> env(command->env.begin(), command->env.end());
  EXPECT_EQ(env["ISOFLOP_DAEMON"], "unix:/state/isoflopd.sock");
  EXPECT_EQ(env.count("ISOFLOP_TOKEN"), 0u);  // the Unix socket needs none
  EXPECT_EQ(env["ISOFLOP_HEARTBEAT_INTERVAL"], "0.5");
  EXPECT_EQ(env["ISOFLOP_MAX_SILENCE"], "60");
  EXPECT_EQ(env["ISOFLOP_ATTEMPT"], kRunId + "/2");

  // mpirun exports them to every rank (the worker lets rank 0 alone report).
  MpiLauncher mpi(reaper, "/bin/isoflop-worker", "/usr/bin/mpirun");
  request.ranks = 2;
  Result<ProcessLauncher::Command> wrapped = mpi.BuildCommand(request);
  ASSERT_TRUE(wrapped.ok());
  for (const char* name : {"ISOFLOP_DAEMON", "ISOFLOP_HEARTBEAT_INTERVAL", "ISOFLOP_MAX_SILENCE"}) {
    auto it = std::find(wrapped->argv.begin(), wrapped->argv.end(), name);
    ASSERT_NE(it, wrapped->argv.end()) << name;
    EXPECT_EQ(*(it - 1), "-x") << name;
  }

  // Without an address the worker reports through its file alone.
  request.reporting = ReportingSettings{};
  command = local.BuildCommand(request);
  ASSERT_TRUE(command.ok());
  for (const auto& [key, value] : command->env) EXPECT_NE(key, "ISOFLOP_DAEMON");
}

// ---- The reporter against a real ApiServer

// Answers worker messages as the daemon would, and remembers them. Runs on the server's thread.
class RecordingHandler : public RequestHandler {
 public:
  Result<json> Handle(const protocol::RequestBody& request, std::function<void()>*) override {
    std::lock_guard<std::mutex> lock(mutex_);
    received_.push_back(request);
    if (!following_) return Status::FailedPrecondition("run a attempt 1 is not running");
    if (const auto* record = std::get_if<protocol::Record>(&request)) {
      if (record->record["type"] == "refused") return Status::InvalidArgument("not a record");
      records_.push_back(record->record);
    }
    if (const auto* heartbeat = std::get_if<protocol::Heartbeat>(&request)) {
      heartbeat_steps_.push_back(heartbeat->step);
    }
    if (std::holds_alternative<protocol::WorkerHello>(request)) ++hellos_;
    return json::object();
  }

  void set_following(bool following) {
    std::lock_guard<std::mutex> lock(mutex_);
    following_ = following;
  }
  size_t messages() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return received_.size();
  }
  std::vector<json> records() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return records_;
  }
  std::vector<int64_t> heartbeat_steps() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return heartbeat_steps_;
  }
  int hellos() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return hellos_;
  }

 private:
  mutable std::mutex mutex_;
  bool following_ = true;
  std::vector<protocol::RequestBody> received_;
  std::vector<json> records_;
  std::vector<int64_t> heartbeat_steps_;
  int hellos_ = 0;
};

// An ApiServer on a thread of its own, listening on a Unix socket and on TCP (loopback).
class ServerThread {
 public:
  ServerThread(RequestHandler* handler, const std::string& socket_path, std::string token)
      : server_(io_, handler, ApiServerOptions{std::move(token)}) {
    EXPECT_TRUE(server_.ListenUnix(socket_path).ok());
    EXPECT_TRUE(server_.ListenTcp("127.0.0.1", 0).ok());
    thread_ = std::thread([this] { io_.run(); });
  }
  ~ServerThread() {
    boost::asio::post(io_, [this] {
      server_.Close();
      io_.stop();
    });
    thread_.join();
  }
  uint16_t tcp_port() const { return server_.tcp_port(); }

 private:
  boost::asio::io_context io_;
  ApiServer server_;
  std::thread thread_;
};

json TrainRecord(int64_t step) {
  return {{"type", "train"}, {"step", step}, {"tokens", step * 10}, {"flops", step * 1e6}};
}

class ReporterTest : public ::testing::Test {
 protected:
  std::string Socket() const { return scratch_.path() + "/d.sock"; }
  DaemonReporter::Options Options(const std::string& address, const std::string& token = "") {
    DaemonReporter::Options options;
    options.settings = {address, token, /*heartbeat_interval_s=*/0.05, /*max_silence_s=*/0};
    options.run_id = kRunId;
    options.attempt = 1;
    options.io_timeout = 1s;
    options.flush_timeout = 2s;
    return options;
  }

  ScratchDir scratch_;
  RecordingHandler handler_;
};

TEST_F(ReporterTest, SendsEveryRecordInOrderAndHeartbeatsInBetween) {
  ServerThread server(&handler_, Socket(), "token");
  {
    DaemonReporter reporter(Options("unix:" + Socket()));
    for (int64_t step = 1; step <= 50; ++step) reporter.Report(TrainRecord(step));
    ASSERT_TRUE(WaitFor([&] { return handler_.records().size() == 50; }, 10s));
    // Idle now: heartbeats, carrying the last step reported.
    ASSERT_TRUE(WaitFor([&] { return handler_.heartbeat_steps().size() >= 3; }, 10s));
    EXPECT_EQ(handler_.heartbeat_steps().back(), 50);
    reporter.Report(TrainRecord(51));
    reporter.Report({{"type", "complete"}, {"step", 51}});
    // The destructor delivers what is still queued.
  }
  const std::vector<json> records = handler_.records();
  ASSERT_EQ(records.size(), 52u);
  for (size_t i = 0; i < 51; ++i) EXPECT_EQ(records[i]["step"], static_cast<int64_t>(i) + 1);
  EXPECT_EQ(records.back()["type"], "complete");
  EXPECT_EQ(handler_.hellos(), 1);  // one connection throughout
}

TEST_F(ReporterTest, ReportsOverTcpWithTheTokenAndNotWithoutIt) {
  ServerThread server(&handler_, Socket(), "right-token");
  const std::string address = "tcp:127.0.0.1:" + std::to_string(server.tcp_port());
  {
    DaemonReporter wrong(Options(address, "wrong-token"));
    const auto start = std::chrono::steady_clock::now();
    for (int64_t step = 1; step <= 10; ++step) wrong.Report(TrainRecord(step));
    // Queueing never waits on the socket.
    EXPECT_LT(std::chrono::steady_clock::now() - start, 100ms);
    std::this_thread::sleep_for(500ms);  // several connection attempts
    EXPECT_EQ(handler_.messages(), 0u);
    EXPECT_EQ(wrong.counters().connections, 0);
  }
  DaemonReporter right(Options(address, "right-token"));
  right.Report(TrainRecord(1));
  ASSERT_TRUE(WaitFor([&] { return handler_.records().size() == 1; }, 10s));
  EXPECT_EQ(right.counters().connections, 1);
}

TEST_F(ReporterTest, WaitsForALateDaemonWithABoundedQueue) {
  DaemonReporter::Options options = Options("unix:" + Socket());
  options.max_queued_records = 5;
  DaemonReporter reporter(options);
  for (int64_t step = 1; step <= 8; ++step) reporter.Report(TrainRecord(step));
  std::this_thread::sleep_for(300ms);  // nothing listens yet
  EXPECT_EQ(reporter.counters().records_dropped, 3);
  ServerThread server(&handler_, Socket(), "token");
  ASSERT_TRUE(WaitFor([&] { return handler_.records().size() == 5; }, 10s));
  // The oldest records went; the newest say the most.
  EXPECT_EQ(handler_.records().front()["step"], 4);
  EXPECT_EQ(handler_.records().back()["step"], 8);
  EXPECT_EQ(reporter.counters().records_sent, 5);
}

TEST_F(ReporterTest, AReconnectAfterADaemonRestartLosesNoQueuedRecord) {
  DaemonReporter reporter(Options("unix:" + Socket()));
  {
    ServerThread server(&handler_, Socket(), "token");
    reporter.Report(TrainRecord(1));
    ASSERT_TRUE(WaitFor([&] { return handler_.records().size() == 1; }, 10s));
  }
  // The daemon is down: records queue, heartbeats fail.
  for (int64_t step = 2; step <= 4; ++step) reporter.Report(TrainRecord(step));
  std::this_thread::sleep_for(200ms);
  ServerThread restarted(&handler_, Socket(), "token");
  ASSERT_TRUE(WaitFor([&] { return handler_.records().size() == 4; }, 10s));
  EXPECT_EQ(handler_.records().back()["step"], 4);
  EXPECT_EQ(handler_.hellos(), 2);
}

TEST_F(ReporterTest, ARefusedRecordIsDroppedAndAnAttemptNotFollowedStopsReporting) {
  ServerThread server(&handler_, Socket(), "token");
  DaemonReporter reporter(Options("unix:" + Socket()));
  reporter.Report({{"type", "refused"}});
  reporter.Report(TrainRecord(1));
  ASSERT_TRUE(WaitFor([&] { return handler_.records().size() == 1; }, 10s));
  EXPECT_EQ(reporter.counters().records_dropped, 1);

  handler_.set_following(false);  // the run's attempt was concluded: this worker is stale
  reporter.Report(TrainRecord(2));
  ASSERT_TRUE(WaitFor([&] { return reporter.counters().gave_up; }, 10s));
  const size_t messages = handler_.messages();
  reporter.Report(TrainRecord(3));
  std::this_thread::sleep_for(300ms);  // six heartbeat intervals
  EXPECT_EQ(handler_.messages(), messages);
}

TEST_F(ReporterTest, HeartbeatsStopWhileTheTrainerIsSilentTooLong) {
  ServerThread server(&handler_, Socket(), "token");
  DaemonReporter::Options options = Options("unix:" + Socket());
  options.settings.max_silence_s = 0.4;
  DaemonReporter reporter(options);
  ASSERT_TRUE(WaitFor([&] { return handler_.heartbeat_steps().size() >= 3; }, 10s));
  std::this_thread::sleep_for(600ms);  // past the silence bound
  const size_t stopped_at = handler_.heartbeat_steps().size();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(handler_.heartbeat_steps().size(), stopped_at);
  // A record is a sign of the trainer's life again.
  reporter.Report(TrainRecord(9));
  ASSERT_TRUE(WaitFor([&] { return handler_.heartbeat_steps().size() > stopped_at; }, 10s));
  EXPECT_EQ(handler_.heartbeat_steps().back(), 9);
}

// ---- Ingest: one store for both ways in

class IngestBothWaysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = RunStore::Open(scratch_.path() + "/isoflop.db");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    auto sweep = LoadSweepFromString(testing::SweepYaml("unit", 2), scratch_.path() + "/s.yaml");
    ASSERT_TRUE(sweep.ok()) << sweep.status().ToString();
    auto inserted = store_->InsertSweep(sweep->name, sweep->source, sweep->runs);
    ASSERT_TRUE(inserted.ok()) << inserted.status().ToString();
    ids_ = *store_->SweepRunIds(inserted->sweep_id);
  }
  std::string File() const { return scratch_.path() + "/metrics.jsonl"; }
  void Append(const json& record) { std::ofstream(File(), std::ios::app) << record.dump() << "\n"; }
  int64_t Count(const std::string& sql) {
    Result<QueryResult> result = store_->Query(sql);
    EXPECT_TRUE(result.ok()) << result.status().ToString();
    return result.ok() ? result->rows.at(0).at(0).get<int64_t>() : -1;
  }

  ScratchDir scratch_;
  std::unique_ptr<RunStore> store_;
  std::vector<std::string> ids_;
};

TEST_F(IngestBothWaysTest, ARecordThatArrivesBothWaysIsStoredOnce) {
  Ingestor ingestor(store_.get());
  ingestor.Track(ids_[0], File(), 0, false);
  const json eval = {{"type", "eval"}, {"step", 2},          {"tokens", 20},
                     {"flops", 2e6},   {"name", "val_loss"}, {"value", 3.0}};
  // The socket runs ahead of the file: steps 1 and 2 arrive before the file is read.
  ASSERT_TRUE(ingestor.AddRecord(ids_[0], TrainRecord(1)).ok());
  ASSERT_TRUE(ingestor.AddRecord(ids_[0], TrainRecord(2)).ok());
  ASSERT_TRUE(ingestor.AddRecord(ids_[0], eval).ok());
  Append(TrainRecord(1));
  auto progress = ingestor.IngestAll();
  ASSERT_TRUE(progress.ok()) << progress.status().ToString();
  EXPECT_TRUE((*progress)[ids_[0]].progressed);
  EXPECT_EQ(Count("SELECT count(*) FROM metrics"), 2);
  EXPECT_EQ(Count("SELECT count(*) FROM evals"), 1);

  // The file catches up, and the socket repeats a record after a reconnect: nothing twice.
  Append(TrainRecord(2));
  Append(eval);
  Append(TrainRecord(3));
  ASSERT_TRUE(ingestor.AddRecord(ids_[0], TrainRecord(2)).ok());
  ASSERT_TRUE(ingestor.IngestAll().ok());
  EXPECT_EQ(Count("SELECT count(*) FROM metrics"), 3);
  EXPECT_EQ(Count("SELECT count(*) FROM evals"), 1);
  // The file offset is the file's alone: every byte read, none skipped.
  EXPECT_EQ(store_->SupervisionOf(ids_[0])->ingest_offset,
            static_cast<int64_t>(std::filesystem::file_size(File())));

  // "complete" counts from whichever way brings it first; the file's copy later changes nothing.
  ASSERT_TRUE(ingestor.AddRecord(ids_[0], {{"type", "complete"}, {"step", 3}}).ok());
  progress = ingestor.IngestAll();
  ASSERT_TRUE(progress.ok());
  EXPECT_TRUE((*progress)[ids_[0]].complete);
  EXPECT_EQ(store_->SupervisionOf(ids_[0])->complete_step, 3);
  Append({{"type", "complete"}, {"step", 3}});
  Result<IngestProgress> final_read = ingestor.IngestFinal(ids_[0]);
  ASSERT_TRUE(final_read.ok());
  EXPECT_TRUE(final_read->complete);
  EXPECT_EQ(Count("SELECT count(*) FROM metrics"), 3);
}

TEST_F(IngestBothWaysTest, TheSocketAloneSufficesAndHeartbeatsCountAsProgress) {
  Ingestor ingestor(store_.get());
  // A worker on another host: its file is nowhere the coordinator can read.
  ingestor.Track(ids_[1], scratch_.path() + "/elsewhere/metrics.jsonl", 0, false);
  auto progress = ingestor.IngestAll();
  ASSERT_TRUE(progress.ok());
  EXPECT_FALSE((*progress)[ids_[1]].progressed);
  ingestor.NoteAlive(ids_[1]);
  progress = ingestor.IngestAll();
  EXPECT_TRUE((*progress)[ids_[1]].progressed);
  progress = ingestor.IngestAll();  // a heartbeat counts once
  EXPECT_FALSE((*progress)[ids_[1]].progressed);
  EXPECT_EQ(store_
                ->Query("SELECT heartbeat_at IS NOT NULL FROM supervision WHERE run_id = '" +
                        ids_[1] + "'")
                ->rows.at(0)
                .at(0),
            1);

  ASSERT_TRUE(ingestor.AddRecord(ids_[1], {{"type", "start"}, {"torch", "fake"}}).ok());
  ASSERT_TRUE(ingestor.AddRecord(ids_[1], TrainRecord(1)).ok());
  ASSERT_TRUE(
      ingestor
          .AddRecord(ids_[1], {{"type", "checkpoint"}, {"step", 1}, {"path", "/c/1"}, {"bytes", 9}})
          .ok());
  ASSERT_TRUE(ingestor.AddRecord(ids_[1], {{"type", "complete"}, {"step", 1}}).ok());
  // The worker ended before the next ingest: its final read stores what the socket brought.
  Result<IngestProgress> final_read = ingestor.IngestFinal(ids_[1]);
  ASSERT_TRUE(final_read.ok()) << final_read.status().ToString();
  EXPECT_TRUE(final_read->complete);
  EXPECT_EQ(Count("SELECT count(*) FROM metrics"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM checkpoints"), 1);
  EXPECT_EQ(json::parse(store_->Query("SELECT provenance FROM runs WHERE id = '" + ids_[1] + "'")
                            ->rows.at(0)
                            .at(0)
                            .get<std::string>())["worker"]["torch"],
            "fake");
  EXPECT_EQ(store_->SupervisionOf(ids_[1])->ingest_offset, 0);
}

TEST_F(IngestBothWaysTest, RefusesWhatIsNotARecordOfATrackedRun) {
  Ingestor ingestor(store_.get());
  ingestor.Track(ids_[0], File(), 0, false);
  EXPECT_EQ(ingestor.AddRecord(ids_[0], {{"type", "train"}, {"step", 1}}).code(),
            Status::Code::kInvalidArgument);  // no tokens, no flops
  EXPECT_EQ(ingestor.AddRecord(ids_[1], TrainRecord(1)).code(), Status::Code::kNotFound);
  // Neither left anything behind, and a refused record is no sign of life.
  auto progress = ingestor.IngestAll();
  ASSERT_TRUE(progress.ok());
  EXPECT_FALSE((*progress)[ids_[0]].progressed);
  EXPECT_EQ(Count("SELECT count(*) FROM metrics"), 0);
  // Unknown record types pass, as in the file.
  EXPECT_TRUE(ingestor.AddRecord(ids_[0], {{"type", "from_the_future"}}).ok());
}

}  // namespace
}  // namespace isoflop
