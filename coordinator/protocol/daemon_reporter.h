// DaemonReporter: rank 0 of a worker telling isoflopd, over the daemon's socket, that it is alive
// and what it records (protocol_codec.h: worker_hello, heartbeat, record).
//
// Why a socket as well as metrics.jsonl: the file's growth is the coordinator's only other sign of
// a worker, and it needs a file system both can see (a Slurm worker on another host may share
// none) and goes quiet while the worker evaluates or writes a checkpoint. Heartbeats come from a
// thread of their own, so they go on through both.
//
// What it must never do is slow down or fail training. Report() only queues (bounded: the oldest
// record is dropped when it is full); every socket call happens on the reporter's thread under a
// timeout; an unreachable daemon costs a reconnect with backoff and nothing else. metrics.jsonl
// stays the durable record: a record the socket loses is read from the file wherever the
// coordinator can see it, and a record that arrives both ways is stored once (the store keeps the
// first copy of each (run, step)). A record is re-sent until the daemon acknowledges it, so a
// reconnect may repeat one, which is harmless for the same reason.
//
// Heartbeats vouch for the trainer, not only for the process: once no record has been reported for
// `max_silence_s` they stop, so a trainer stuck in a hung kernel or a deadlock still times out at
// the coordinator. The coordinator sets that bound to a multiple of its heartbeat timeout, well
// above any evaluation or checkpoint.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/status.h"

namespace isoflop {

// Where and how a worker reports. The launcher passes it in the worker's environment
// (ReportingEnvironment); with an empty address the worker reports through its file alone.
struct ReportingSettings {
  std::string address;  // "unix:/state/isoflopd.sock" or "tcp:HOST:PORT" ("tcp:[::1]:7000")
  std::string token;    // the state directory's token; a tcp: address requires it
  double heartbeat_interval_s = 5;
  double max_silence_s = 3600;  // heartbeats stop after this long without a record; 0: never
};

// The environment entries that carry `settings`: ISOFLOP_DAEMON, ISOFLOP_TOKEN (when set),
// ISOFLOP_HEARTBEAT_INTERVAL and ISOFLOP_MAX_SILENCE (seconds). None for an empty address.
std::vector<std::pair<std::string, std::string>> ReportingEnvironment(
    const ReportingSettings& settings);

class DaemonReporter {
 public:
  struct Options {
    ReportingSettings settings;
    std::string run_id;  // the run's full id
    int64_t attempt = 0;
    std::chrono::milliseconds io_timeout{5000};     // one connect, or one request and its reply
    std::chrono::milliseconds flush_timeout{5000};  // how long the destructor delivers what is left
    size_t max_queued_records = 4096;
  };
  // Reads a variable of the environment; std::getenv by default, a map in tests.
  using Lookup = std::function<const char*(const char*)>;
  // The options the launcher's environment describes: ReportingEnvironment's variables, and the run
  // and attempt from ISOFLOP_ATTEMPT=<run id>/<attempt> (process_launcher.h). nullopt when
  // ISOFLOP_DAEMON is unset (a worker started by hand); InvalidArgument naming the variable that is
  // malformed.
  static Result<std::optional<Options>> OptionsFromEnvironment(const Lookup& lookup = std::getenv);

  // Starts the reporting thread. Never fails: an address that cannot be reached is retried.
  explicit DaemonReporter(Options options);
  // Delivers what is still queued, for at most flush_timeout (plus one io_timeout for a call in
  // progress): the last record ("complete") matters to a coordinator that cannot read the file. A
  // daemon that cannot be reached then gets one immediate try, not the whole flush_timeout.
  ~DaemonReporter();
  DaemonReporter(const DaemonReporter&) = delete;
  DaemonReporter& operator=(const DaemonReporter&) = delete;

  // Queues one metrics.jsonl record for the daemon, and counts as a sign of the trainer's life.
  // Thread-safe; never waits for the socket.
  void Report(const nlohmann::json& record);

  struct Counters {
    int64_t records_sent = 0;     // acknowledged by the daemon
    int64_t records_dropped = 0;  // the queue was full, the daemon refused it, or it was left
                                  // undelivered at the end
    int64_t heartbeats_sent = 0;  // acknowledged by the daemon
    int64_t connections = 0;      // worker_hello exchanges that succeeded
    bool gave_up = false;         // the daemon does not follow this attempt: reporting has stopped
  };
  Counters counters() const;

 private:
  using Clock = std::chrono::steady_clock;
  void Run();

  const Options options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  // Guarded by mutex_:
  std::deque<nlohmann::json> queue_;
  Clock::time_point last_report_;  // when Report() was last called (or the reporter started)
  int64_t last_step_ = 0;          // the highest "step" of a reported record
  bool stopping_ = false;
  Counters counters_;

  std::thread thread_;  // last: it starts once everything above is initialised
};

}  // namespace isoflop
