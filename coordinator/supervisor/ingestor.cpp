#include "coordinator/supervisor/ingestor.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

namespace isoflop {
namespace {

using nlohmann::json;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Field readers: false when the field is missing or of the wrong type. A JSON null number is NaN
// (the worker writes a diverged loss that way).
bool Integer(const json& record, const char* key, int64_t* out) {
  auto it = record.find(key);
  if (it == record.end()) return false;
  if (it->is_number_integer()) {
    *out = it->get<int64_t>();
    return true;
  }
  // Whole numbers written in floating point (a large token count) are accepted.
  if (it->is_number_float()) {
    const double value = it->get<double>();
    if (!std::isfinite(value) || value != std::floor(value) || std::fabs(value) > 9.0e18) {
      return false;
    }
    *out = static_cast<int64_t>(value);
    return true;
  }
  return false;
}

bool Real(const json& record, const char* key, double* out) {
  auto it = record.find(key);
  if (it == record.end()) return false;
  if (it->is_null()) {
    *out = kNaN;
    return true;
  }
  if (!it->is_number()) return false;
  *out = it->get<double>();
  return true;
}

// An optional real: absent is NaN (stored as NULL).
bool OptionalReal(const json& record, const char* key, double* out) {
  if (record.find(key) == record.end()) {
    *out = kNaN;
    return true;
  }
  return Real(record, key, out);
}

bool Text(const json& record, const char* key, std::string* out) {
  auto it = record.find(key);
  if (it == record.end() || !it->is_string()) return false;
  *out = it->get<std::string>();
  return true;
}

Status Invalid(const std::string& type, const char* field) {
  return Status::InvalidArgument(fmt::format("{} record without a valid \"{}\"", type, field));
}

}  // namespace

Status ParseMetricsRecord(std::string_view line, IngestBatch* batch) {
  const json record = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (record.is_discarded()) return Status::InvalidArgument("not a JSON object");
  return AddMetricsRecord(record, batch);
}

Status AddMetricsRecord(const json& record, IngestBatch* batch) {
  if (!record.is_object()) return Status::InvalidArgument("not a JSON object");
  std::string type;
  if (!Text(record, "type", &type)) return Status::InvalidArgument("record without a \"type\"");

  if (type == "train") {
    MetricRecord metric;
    metric.run_id = batch->run_id;
    if (!Integer(record, "step", &metric.step)) return Invalid(type, "step");
    if (!Integer(record, "tokens", &metric.tokens)) return Invalid(type, "tokens");
    if (!Real(record, "flops", &metric.flops) || std::isnan(metric.flops)) {
      return Invalid(type, "flops");
    }
    if (!OptionalReal(record, "train_loss", &metric.train_loss)) return Invalid(type, "train_loss");
    if (!OptionalReal(record, "lr", &metric.lr)) return Invalid(type, "lr");
    if (!OptionalReal(record, "grad_norm", &metric.grad_norm)) return Invalid(type, "grad_norm");
    if (!OptionalReal(record, "tokens_per_s", &metric.tokens_per_s)) {
      return Invalid(type, "tokens_per_s");
    }
    if (!OptionalReal(record, "mfu", &metric.mfu)) return Invalid(type, "mfu");
    batch->metrics.push_back(std::move(metric));
  } else if (type == "eval") {
    EvalRecord eval;
    eval.run_id = batch->run_id;
    if (!Integer(record, "step", &eval.step)) return Invalid(type, "step");
    if (!Integer(record, "tokens", &eval.tokens)) return Invalid(type, "tokens");
    if (!Real(record, "flops", &eval.flops) || std::isnan(eval.flops)) {
      return Invalid(type, "flops");
    }
    if (!Text(record, "name", &eval.name) || eval.name.empty()) return Invalid(type, "name");
    if (!Real(record, "value", &eval.value)) return Invalid(type, "value");
    if (record.contains("count") && !Integer(record, "count", &eval.count)) {
      return Invalid(type, "count");
    }
    batch->evals.push_back(std::move(eval));
  } else if (type == "checkpoint") {
    CheckpointRecord checkpoint;
    checkpoint.run_id = batch->run_id;
    if (!Integer(record, "step", &checkpoint.step)) return Invalid(type, "step");
    if (!Text(record, "path", &checkpoint.path)) return Invalid(type, "path");
    if (!Integer(record, "bytes", &checkpoint.bytes)) return Invalid(type, "bytes");
    batch->checkpoints.push_back(std::move(checkpoint));
  } else if (type == "start") {
    // What only the worker knows about itself (LibTorch version, device, GPU name, peak FLOP/s):
    // the provenance `isoflop reproduce` prints. The latest attempt's description wins.
    json worker = record;
    worker.erase("type");
    batch->provenance = {{"worker", std::move(worker)}};
  } else if (type == "complete") {
    int64_t step = 0;
    if (!Integer(record, "step", &step)) return Invalid(type, "step");
    batch->complete_step = step;
  }
  // "resume" and types from newer workers carry nothing the store keeps.
  return Status::OK();
}

void Ingestor::Track(const std::string& run_id, const std::string& path, int64_t offset,
                     bool complete) {
  Tail tail;
  tail.path = path;
  tail.offset = offset;
  tail.complete = complete;
  tail.received.run_id = run_id;
  tails_[run_id] = std::move(tail);
}

void Ingestor::Untrack(const std::string& run_id) {
  tails_.erase(run_id);
}

void Ingestor::NoteAlive(const std::string& run_id) {
  if (auto it = tails_.find(run_id); it != tails_.end()) it->second.heard_from = true;
}

Status Ingestor::AddRecord(const std::string& run_id, const json& record) {
  auto it = tails_.find(run_id);
  if (it == tails_.end()) {
    return Status::NotFound(fmt::format("run {}: its records are not being followed", run_id));
  }
  Tail& tail = it->second;
  // Records wait only until the next read, a fraction of a second, unless the store keeps failing;
  // then the socket must not hold the daemon's memory hostage.
  constexpr int64_t kMaxReceived = 1 << 16;
  if (tail.received_count >= kMaxReceived) {
    return Status::IOError(
        fmt::format("run {}: {} records wait to be stored already", run_id, kMaxReceived));
  }
  ISOFLOP_RETURN_IF_ERROR(AddMetricsRecord(record, &tail.received));
  ++tail.received_count;
  tail.heard_from = true;
  return Status::OK();
}

void Ingestor::MergeReceived(const Tail& tail, IngestBatch* batch) {
  const IngestBatch& received = tail.received;
  batch->progressed = batch->progressed || tail.heard_from;
  batch->metrics.insert(batch->metrics.end(), received.metrics.begin(), received.metrics.end());
  batch->evals.insert(batch->evals.end(), received.evals.begin(), received.evals.end());
  batch->checkpoints.insert(batch->checkpoints.end(), received.checkpoints.begin(),
                            received.checkpoints.end());
  // The socket speaks for the attempt running now: its "start" is newer than any the file's
  // backlog holds.
  if (received.provenance.is_object()) batch->provenance = received.provenance;
  if (!batch->complete_step) batch->complete_step = received.complete_step;
}

void Ingestor::ClearReceived(Tail& tail) {
  IngestBatch empty;
  empty.run_id = tail.received.run_id;
  tail.received = std::move(empty);
  tail.received_count = 0;
  tail.heard_from = false;
}

Result<IngestBatch> Ingestor::Read(const std::string& run_id, Tail& tail, bool writer_gone,
                                   int64_t max_bytes) {
  IngestBatch batch;
  batch.run_id = run_id;
  batch.end_offset = tail.offset;
  const int fd = ::open(tail.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return batch;  // the worker has not written anything yet
    return Status::IOError(fmt::format("{}: {}", tail.path, std::strerror(errno)));
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    return Status::IOError(fmt::format("{}: {}", tail.path, std::strerror(error)));
  }
  int64_t offset = tail.offset;
  if (info.st_size < offset) {
    // The file is shorter than what was stored from it: it was replaced. Read it again from the
    // start; records already stored are skipped by the store's keys.
    spdlog::warn("run {}: {} shrank from {} to {} bytes; reading it again from the start",
                 run_id.substr(0, 16), tail.path, offset, static_cast<int64_t>(info.st_size));
    offset = 0;
  }
  const int64_t available = static_cast<int64_t>(info.st_size) - offset;
  // Growth, not unread bytes: a worker that hangs halfway through writing a line must not look
  // alive forever.
  batch.progressed = static_cast<int64_t>(info.st_size) != tail.seen_size;
  tail.seen_size = static_cast<int64_t>(info.st_size);
  const int64_t want = std::min(available, max_bytes);
  std::string data(static_cast<size_t>(want), '\0');
  int64_t got = 0;
  while (got < want) {
    const ssize_t n = ::pread(fd, data.data() + got, static_cast<size_t>(want - got), offset + got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += n;
  }
  ::close(fd);
  data.resize(static_cast<size_t>(got));

  size_t line_start = 0;
  int64_t skipped = 0;
  for (size_t newline = data.find('\n'); newline != std::string::npos;
       newline = data.find('\n', line_start)) {
    const std::string_view line(data.data() + line_start, newline - line_start);
    if (!line.empty()) {
      Status parsed = ParseMetricsRecord(line, &batch);
      if (!parsed.ok()) {
        ++skipped;
        spdlog::warn("run {}: {} at byte {}: skipping a line that is not a record ({})",
                     run_id.substr(0, 16), tail.path, offset + static_cast<int64_t>(line_start),
                     parsed.message());
      }
    }
    line_start = newline + 1;
  }
  int64_t consumed = static_cast<int64_t>(line_start);
  const bool read_to_end = got == available;
  const int64_t rest = got - consumed;
  if (rest > 0 && ((writer_gone && read_to_end) || (consumed == 0 && got == max_bytes))) {
    // A torn last record of a worker that is gone, or a "line" longer than a whole read (no
    // record is): skipped, or the tail would wait on it forever.
    ++skipped;
    spdlog::warn("run {}: {} at byte {}: skipping {} bytes without a newline", run_id.substr(0, 16),
                 tail.path, offset + consumed, rest);
    consumed = got;
  }
  batch.end_offset = offset + consumed;
  skipped_lines_ += skipped;
  return batch;
}

Result<std::map<std::string, IngestProgress>> Ingestor::IngestAll() {
  std::vector<IngestBatch> batches;
  std::map<std::string, IngestProgress> progress;
  int64_t budget = limits_.bytes_per_call;
  // Round robin from the run after the one read last.
  auto it = tails_.upper_bound(resume_after_);
  for (size_t visited = 0; visited < tails_.size() && budget > 0; ++visited, ++it) {
    if (it == tails_.end()) it = tails_.begin();
    auto& [run_id, tail] = *it;
    // Always a whole per-run share (the call may overshoot its budget by one share): a shorter
    // read could cut a record that fits the share in two and mistake it for an endless line.
    Result<IngestBatch> batch = Read(run_id, tail, /*writer_gone=*/false, limits_.bytes_per_run);
    if (!batch.ok()) return batch.status();
    budget -= batch->end_offset - tail.offset;
    resume_after_ = run_id;
    MergeReceived(tail, &*batch);
    progress[run_id] = {batch->progressed, tail.complete || batch->complete_step.has_value()};
    if (batch->progressed || batch->end_offset != tail.offset) batches.push_back(std::move(*batch));
  }
  ISOFLOP_RETURN_IF_ERROR(store_->Ingest(batches));
  for (const IngestBatch& batch : batches) {
    Tail& tail = tails_[batch.run_id];
    tail.offset = batch.end_offset;
    tail.complete = tail.complete || batch.complete_step.has_value();
    ClearReceived(tail);
  }
  return progress;
}

Result<IngestProgress> Ingestor::IngestFinal(const std::string& run_id) {
  auto it = tails_.find(run_id);
  if (it == tails_.end()) {
    return Status::NotFound(fmt::format("run {}: its metrics are not being followed", run_id));
  }
  Tail& tail = it->second;
  IngestProgress progress{false, tail.complete};
  for (;;) {
    Result<IngestBatch> batch = Read(run_id, tail, /*writer_gone=*/true, limits_.bytes_per_run);
    if (!batch.ok()) return batch.status();
    MergeReceived(tail, &*batch);  // empty after the first round
    if (!batch->progressed && batch->end_offset == tail.offset) return progress;
    progress.progressed = progress.progressed || batch->progressed;
    const bool complete = batch->complete_step.has_value();
    const int64_t end = batch->end_offset;
    const bool moved = end != tail.offset;
    ISOFLOP_RETURN_IF_ERROR(store_->Ingest({std::move(*batch)}));
    tail.offset = end;
    tail.complete = tail.complete || complete;
    ClearReceived(tail);
    progress.complete = tail.complete;
    if (!moved) return progress;
  }
}

}  // namespace isoflop
