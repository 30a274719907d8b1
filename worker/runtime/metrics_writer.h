// MetricsWriter: the run directory's metrics.jsonl, one JSON record per line (system.md section 3,
// step 5: a coordinator outage loses nothing because the worker also keeps this file).
//
// Every record goes out in one write(2) on an O_APPEND descriptor, so a SIGKILL or a power cut
// leaves at most the last line torn, never an interleaving; readers skip a line that does not
// parse. Opening a file whose last line is torn ends that line first, so the fragment cannot
// swallow the next attempt's first record. Sync() (fsync) runs at every checkpoint and at the end:
// a record is never less durable than the checkpoint that follows it.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"

namespace isoflop {

class MetricsWriter {
 public:
  // Opens (creating) path for appending. IOError naming the path.
  static Result<MetricsWriter> Open(const std::string& path);

  MetricsWriter(MetricsWriter&& other) noexcept;
  MetricsWriter& operator=(MetricsWriter&& other) = delete;
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;
  ~MetricsWriter();

  // Appends record (an object) as one line. IOError naming the path.
  Status Append(const nlohmann::json& record);
  // Makes every appended record durable.
  Status Sync();

  const std::string& path() const { return path_; }

 private:
  MetricsWriter(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  std::string path_;
  int fd_ = -1;
};

}  // namespace isoflop
