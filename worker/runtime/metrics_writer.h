// MetricsWriter: the run directory's metrics.jsonl, one JSON record per line (system.md section 3,
// step 5: a coordinator outage loses nothing because the worker also keeps this file).
//
// Every record goes out in one write(2) on an O_APPEND descriptor, so a SIGKILL or a power cut
// leaves at most the last line torn, never an interleaving; readers skip a line that does not
// parse. Opening a file whose last line is torn ends that line first, so the fragment cannot
// swallow the next attempt's first record. Sync() (fsync) runs at every checkpoint and at the end:
// a record is never less durable than the checkpoint that follows it.
//
// A sink (set_sink) sees each record once it is in the file: rank 0 forwards it to the coordinator
// over its socket (coordinator/protocol/daemon_reporter.h), so the socket never carries a record
// the file lacks.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"

namespace isoflop {

class MetricsWriter {
 public:
  // Opens (creating) path for appending. IOError naming the path.
  static Result<MetricsWriter> Open(const std::string& path);
  // A writer that keeps nothing: data-parallel ranks other than 0, which report through rank 0.
  static MetricsWriter Discarding() { return MetricsWriter(std::string(), -1); }

  MetricsWriter(MetricsWriter&& other) noexcept;
  MetricsWriter& operator=(MetricsWriter&& other) = delete;
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;
  ~MetricsWriter();

  // Appends record (an object) as one line (nothing for a discarding writer), then hands it to the
  // sink. IOError naming the path.
  Status Append(const nlohmann::json& record);
  // Called with every record appended from now on; it must not block (a queue). Empty: none.
  using Sink = std::function<void(const nlohmann::json&)>;
  void set_sink(Sink sink) { sink_ = std::move(sink); }
  // Makes every appended record durable.
  Status Sync();

  const std::string& path() const { return path_; }

 private:
  MetricsWriter(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  std::string path_;
  int fd_ = -1;
  Sink sink_;
};

}  // namespace isoflop
