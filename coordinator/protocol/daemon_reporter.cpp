#include "coordinator/protocol/daemon_reporter.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "coordinator/protocol/daemon_client.h"
#include "coordinator/protocol/protocol_codec.h"

namespace isoflop {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr char kAddressVariable[] = "ISOFLOP_DAEMON";
constexpr char kTokenVariable[] = "ISOFLOP_TOKEN";
constexpr char kIntervalVariable[] = "ISOFLOP_HEARTBEAT_INTERVAL";
constexpr char kSilenceVariable[] = "ISOFLOP_MAX_SILENCE";
constexpr char kAttemptVariable[] = "ISOFLOP_ATTEMPT";

// Reconnects start fast (a daemon restarting is back within a second) and slow down to this.
constexpr std::chrono::milliseconds kFirstBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{5000};

struct Endpoint {
  bool tcp = false;
  std::string path;  // unix:
  std::string host;  // tcp:
  uint16_t port = 0;
};

Result<Endpoint> ParseAddress(const std::string& address) {
  const auto malformed = [&] {
    return Status::InvalidArgument(fmt::format("{}: expected unix:PATH or tcp:HOST:PORT, got '{}'",
                                               kAddressVariable, address));
  };
  Endpoint endpoint;
  if (address.rfind("unix:", 0) == 0) {
    endpoint.path = address.substr(5);
    if (endpoint.path.empty()) return malformed();
    return endpoint;
  }
  if (address.rfind("tcp:", 0) != 0) return malformed();
  const std::string rest = address.substr(4);
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0) return malformed();
  endpoint.tcp = true;
  endpoint.host = rest.substr(0, colon);
  if (endpoint.host.size() > 2 && endpoint.host.front() == '[' && endpoint.host.back() == ']') {
    endpoint.host = endpoint.host.substr(1, endpoint.host.size() - 2);  // [::1]
  }
  const std::string port = rest.substr(colon + 1);
  auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), endpoint.port);
  if (error != std::errc() || end != port.data() + port.size() || endpoint.port == 0) {
    return malformed();
  }
  return endpoint;
}

// A number of seconds from the environment: finite, and positive (or zero where that is allowed).
Result<double> Seconds(const char* name, const char* text, bool zero_allowed) {
  char* end = nullptr;
  const double seconds = std::strtod(text, &end);
  if (end == text || *end != '\0' || !std::isfinite(seconds) || seconds < 0 ||
      (seconds == 0 && !zero_allowed)) {
    return Status::InvalidArgument(fmt::format("{}: '{}' is not a {} number of seconds", name, text,
                                               zero_allowed ? "non-negative" : "positive"));
  }
  return seconds;
}

std::chrono::milliseconds Millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(seconds * 1000.0)));
}

}  // namespace

std::vector<std::pair<std::string, std::string>> ReportingEnvironment(
    const ReportingSettings& settings) {
  std::vector<std::pair<std::string, std::string>> env;
  if (settings.address.empty()) return env;
  env.emplace_back(kAddressVariable, settings.address);
  if (!settings.token.empty()) env.emplace_back(kTokenVariable, settings.token);
  env.emplace_back(kIntervalVariable, fmt::format("{}", settings.heartbeat_interval_s));
  env.emplace_back(kSilenceVariable, fmt::format("{}", settings.max_silence_s));
  return env;
}

Result<std::optional<DaemonReporter::Options>> DaemonReporter::OptionsFromEnvironment(
    const Lookup& lookup) {
  const char* address = lookup(kAddressVariable);
  if (address == nullptr || *address == '\0') return std::optional<Options>();
  Options options;
  options.settings.address = address;
  Result<Endpoint> endpoint = ParseAddress(address);
  if (!endpoint.ok()) return endpoint.status();
  if (const char* token = lookup(kTokenVariable)) options.settings.token = token;
  if (endpoint->tcp && options.settings.token.empty()) {
    return Status::InvalidArgument(
        fmt::format("{}: a tcp: {} needs the daemon's token", kTokenVariable, kAddressVariable));
  }
  if (const char* interval = lookup(kIntervalVariable)) {
    Result<double> seconds = Seconds(kIntervalVariable, interval, /*zero_allowed=*/false);
    if (!seconds.ok()) return seconds.status();
    options.settings.heartbeat_interval_s = *seconds;
  }
  if (const char* silence = lookup(kSilenceVariable)) {
    Result<double> seconds = Seconds(kSilenceVariable, silence, /*zero_allowed=*/true);
    if (!seconds.ok()) return seconds.status();
    options.settings.max_silence_s = *seconds;
  }
  // <run id>/<attempt>, as the launcher marks every worker it starts.
  const char* marker = lookup(kAttemptVariable);
  const std::string attempt = marker != nullptr ? marker : "";
  const size_t slash = attempt.rfind('/');
  const char* number = attempt.data() + (slash == std::string::npos ? 0 : slash + 1);
  auto [end, error] = std::from_chars(number, attempt.data() + attempt.size(), options.attempt);
  if (slash == std::string::npos || slash == 0 || error != std::errc() ||
      end != attempt.data() + attempt.size() || options.attempt < 1) {
    return Status::InvalidArgument(
        fmt::format("{}: expected <run id>/<attempt>, got '{}'", kAttemptVariable, attempt));
  }
  options.run_id = attempt.substr(0, slash);
  return std::optional<Options>(std::move(options));
}

DaemonReporter::DaemonReporter(Options options)
    : options_(std::move(options)), last_report_(Clock::now()), thread_([this] { Run(); }) {}

DaemonReporter::~DaemonReporter() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
  const Counters counters = this->counters();
  spdlog::info("reported to isoflopd: {} records ({} dropped), {} heartbeats",
               counters.records_sent, counters.records_dropped, counters.heartbeats_sent);
}

void DaemonReporter::Report(const json& record) {
  std::lock_guard<std::mutex> lock(mutex_);
  last_report_ = Clock::now();
  if (auto step = record.find("step"); step != record.end() && step->is_number_integer()) {
    last_step_ = std::max(last_step_, step->get<int64_t>());
  }
  if (counters_.gave_up) {
    ++counters_.records_dropped;
    return;
  }
  if (queue_.size() >= options_.max_queued_records) {
    // The oldest goes: the newest records (a "complete" among them) say the most.
    queue_.pop_front();
    ++counters_.records_dropped;
  }
  queue_.push_back(record);
  wake_.notify_one();
}

DaemonReporter::Counters DaemonReporter::counters() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return counters_;
}

void DaemonReporter::Run() {
  const std::string& address = options_.settings.address;
  Result<Endpoint> endpoint = ParseAddress(address);
  if (!endpoint.ok()) {
    spdlog::warn("not reporting to isoflopd: {}", endpoint.status().message());
    std::lock_guard<std::mutex> lock(mutex_);
    counters_.gave_up = true;
    queue_.clear();
  }
  const auto interval = Millis(options_.settings.heartbeat_interval_s);
  const auto max_silence = Millis(options_.settings.max_silence_s);
  constexpr Clock::time_point kNever = Clock::time_point::max();

  std::optional<DaemonClient> client;
  std::optional<json> in_flight;  // taken from the queue, sent until acknowledged
  Clock::time_point next_connect = Clock::now();
  Clock::time_point next_heartbeat = Clock::now();
  Clock::time_point flush_deadline = kNever;  // set once stopping
  bool flush_failed = false;                  // the daemon could not be reached while stopping
  std::chrono::milliseconds backoff = kFirstBackoff;
  bool outage_logged = false;
  bool silent = false;

  // Closes the connection after a transport failure (the daemon is gone, or restarting).
  const auto disconnect = [&](const Status& why) {
    client.reset();
    flush_failed = flush_deadline != kNever;
    next_connect = Clock::now() + backoff;
    backoff = std::min(backoff * 2, kMaxBackoff);
    if (!outage_logged) {
      spdlog::warn("cannot report to isoflopd at {}: {}; metrics.jsonl only until it answers",
                   address, why.message());
      outage_logged = true;
    }
  };
  // The daemon does not follow this attempt, or refuses this worker: nothing it sends will help.
  const auto give_up = [&](const Status& why) {
    spdlog::warn("isoflopd at {} does not take this worker's reports ({}); reporting stops",
                 address, why.message());
    client.reset();
    std::lock_guard<std::mutex> lock(mutex_);
    counters_.gave_up = true;
    counters_.records_dropped += static_cast<int64_t>(queue_.size()) + (in_flight ? 1 : 0);
    queue_.clear();
    in_flight.reset();
  };

  for (;;) {
    std::unique_lock<std::mutex> lock(mutex_);
    const Clock::time_point now = Clock::now();
    if (stopping_ && flush_deadline == kNever) {
      // One more try at once, however long the backoff; a daemon that is down now is not waited
      // for (the file has every record): the worker's exit is not held up by an outage.
      flush_deadline = now + options_.flush_timeout;
      next_connect = now;
    }
    const bool idle = !in_flight && queue_.empty();
    if (stopping_ && (idle || counters_.gave_up || flush_failed || now >= flush_deadline)) {
      counters_.records_dropped += static_cast<int64_t>(queue_.size()) + (in_flight ? 1 : 0);
      return;
    }
    if (counters_.gave_up) {
      wake_.wait(lock, [&] { return stopping_; });
      continue;
    }
    if (client && !in_flight && !queue_.empty()) {
      in_flight = std::move(queue_.front());
      queue_.pop_front();
    }
    const bool quiet = max_silence.count() > 0 && now - last_report_ > max_silence;
    const int64_t step = last_step_;

    if (!client && now >= next_connect) {
      lock.unlock();
      Result<DaemonClient> connected =
          endpoint->tcp ? DaemonClient::OpenTcp(endpoint->host, endpoint->port, options_.io_timeout)
                        : DaemonClient::ConnectUnix(endpoint->path, options_.io_timeout);
      if (!connected.ok()) {
        disconnect(connected.status());
        continue;
      }
      protocol::WorkerHello hello{std::nullopt, options_.run_id, options_.attempt, /*rank=*/0};
      if (endpoint->tcp) hello.token = options_.settings.token;
      Result<json> reply = connected->Call(hello);
      if (!reply.ok()) {
        // A daemon that closes the connection says nothing (a wrong token looks like this too):
        // try again later. One that answers with an error means it.
        if (reply.status().code() == Status::Code::kIOError) {
          disconnect(reply.status());
        } else {
          give_up(reply.status());
        }
        continue;
      }
      client.emplace(std::move(*connected));
      backoff = kFirstBackoff;
      next_heartbeat = Clock::now() + interval;
      if (outage_logged) spdlog::info("reporting to isoflopd at {} again", address);
      outage_logged = false;
      std::lock_guard<std::mutex> relock(mutex_);
      ++counters_.connections;
      continue;
    }

    if (client && in_flight) {
      lock.unlock();
      Result<json> reply =
          client->Call(protocol::Record{options_.run_id, options_.attempt, *in_flight});
      if (!reply.ok() && reply.status().code() == Status::Code::kIOError) {
        disconnect(reply.status());  // the record stays in flight and goes again
        continue;
      }
      if (!reply.ok() && reply.status().code() == Status::Code::kFailedPrecondition) {
        give_up(reply.status());
        continue;
      }
      if (!reply.ok()) {
        spdlog::warn("isoflopd refused a record ({}); it stays in metrics.jsonl",
                     reply.status().message());
      }
      in_flight.reset();
      next_heartbeat = Clock::now() + interval;  // a record is a sign of life too
      std::lock_guard<std::mutex> relock(mutex_);
      ++(reply.ok() ? counters_.records_sent : counters_.records_dropped);
      continue;
    }

    if (client && now >= next_heartbeat) {
      next_heartbeat = now + interval;
      if (quiet != silent) {
        silent = quiet;
        if (silent) {
          spdlog::warn("no record for {} s: heartbeats stop, so that isoflopd can tell a hang",
                       options_.settings.max_silence_s);
        } else {
          spdlog::info("records again: heartbeats resume");
        }
      }
      if (silent) continue;
      lock.unlock();
      Result<json> reply =
          client->Call(protocol::Heartbeat{options_.run_id, options_.attempt, step});
      if (!reply.ok() && reply.status().code() == Status::Code::kFailedPrecondition) {
        give_up(reply.status());
      } else if (!reply.ok()) {
        disconnect(reply.status());
      } else {
        std::lock_guard<std::mutex> relock(mutex_);
        ++counters_.heartbeats_sent;
      }
      continue;
    }

    // Nothing to do now: sleep until a heartbeat or a reconnect is due, or a record can go.
    Clock::time_point due = client ? next_heartbeat : next_connect;
    if (stopping_) due = std::min(due, flush_deadline);
    wake_.wait_until(lock, due, [&] {
      return (stopping_ && flush_deadline == kNever) || (client && !queue_.empty());
    });
  }
}

}  // namespace isoflop
