// Ingestor: moves what workers append to their run directories' metrics.jsonl, and what they send
// over the daemon's socket, into the results database (system.md section 3, steps 5 and 6).
//
// The worker appends one JSON record per line and never rewrites the file; the coordinator keeps,
// per run, how many bytes it has stored (supervision.ingest_offset), and writes that offset in the
// same transaction as the records read from those bytes. A coordinator killed at any moment
// therefore restarts at exactly the first byte it had not stored: records written while it was
// down are read then, none twice (and the store's primary keys would drop a duplicate anyway).
//
// Lines:
//   {"type":"train","step","tokens","flops","train_loss","lr","grad_norm","tokens_per_s","mfu",...}
//   {"type":"eval","step","tokens","flops","name","value","count"}
//   {"type":"checkpoint","step","path","bytes"}
//   {"type":"start",...}     the worker describing itself: stored as provenance.worker
//   {"type":"complete","step",...}   the last line of a finished run
//   {"type":"resume","step"} and unknown types: read past
// A line that is not a record (not JSON, a wrong field) is skipped and counted, never fatal: after
// a SIGKILL the last line may be torn, and the next attempt ends it with a newline before
// appending. A last line without its newline is left for the next read while the worker may still
// finish it, and skipped once the worker is gone.
//
// Records sent over the socket (daemon_reporter.h) are the same records, sent after the worker has
// appended them to its file. They wait for the next read of that run and are stored in its
// transaction, beside the file's; they never move the file offset. A record that arrives both ways
// is stored once: metrics and evals keep their first copy of each (run, step) and (run, name,
// step), and checkpoints, the worker's provenance and the "complete" step are the same whichever
// copy is stored. So the socket can run ahead of the file (or be the only source, for a worker
// whose file the coordinator cannot see), and "complete" counts from whichever way brings it first.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/store/run_store.h"

namespace isoflop {

// Adds the record on `line` to `batch`. InvalidArgument when the line is not a valid record (the
// batch is then unchanged); OK for a record of a type the store does not keep.
Status ParseMetricsRecord(std::string_view line, IngestBatch* batch);
// The same for a record already parsed (one that came over the socket).
Status AddMetricsRecord(const nlohmann::json& record, IngestBatch* batch);

struct IngestProgress {
  // The worker showed life since the last read: its file grew, or it reported over the socket.
  bool progressed = false;
  bool complete = false;  // a "complete" record has been stored, in this read or an earlier one
};

class Ingestor {
 public:
  // Bounds on one IngestAll, which runs on the coordinator's only thread: one run's share, and
  // the whole transaction's. What is left waits for the next call, which starts with the run after
  // the last one read, so after an outage every run catches up in turn and the event loop never
  // stalls for long.
  struct Limits {
    int64_t bytes_per_run = 1 << 20;
    int64_t bytes_per_call = 8 << 20;
  };
  explicit Ingestor(RunStore* store) : Ingestor(store, Limits{}) {}
  Ingestor(RunStore* store, Limits limits) : store_(store), limits_(limits) {}

  // Starts following run_id's file at `offset` (its supervision.ingest_offset); `complete` is
  // whether a "complete" record was stored before.
  void Track(const std::string& run_id, const std::string& path, int64_t offset, bool complete);
  // Stops following run_id; what it sent over the socket and was not stored yet is dropped (it is
  // in the file, or the run is over).
  void Untrack(const std::string& run_id);
  bool tracking(const std::string& run_id) const { return tails_.count(run_id) != 0; }

  // A heartbeat of a tracked run over the socket: the next read reports it as progressed.
  void NoteAlive(const std::string& run_id);
  // A record of a tracked run over the socket (one metrics.jsonl object), kept for the next read
  // of that run and stored in its transaction. Counts as a sign of life. InvalidArgument when it is
  // not a valid record, NotFound when the run is not tracked, IOError when too many wait already
  // (the store is failing): the worker sends it again later, and the file has it anyway.
  Status AddRecord(const std::string& run_id, const nlohmann::json& record);

  // Reads the tracked files (within Limits) and stores what they added in one transaction. On
  // error nothing is stored and every offset stays, so the next call reads the same bytes again.
  // Runs not read in this call are absent from the result.
  Result<std::map<std::string, IngestProgress>> IngestAll();
  // Reads run_id's file to its end, its writer gone (a torn last line is skipped), and stores it.
  Result<IngestProgress> IngestFinal(const std::string& run_id);

  int64_t skipped_lines() const { return skipped_lines_; }

 private:
  struct Tail {
    std::string path;
    int64_t offset = 0;
    bool complete = false;
    int64_t seen_size = -1;  // the file's size at the last read, for heartbeats
    // Since the last store: records and heartbeats that came over the socket.
    IngestBatch received;
    int64_t received_count = 0;
    bool heard_from = false;
  };
  // Adds what `tail` received over the socket to `batch`, read from its file.
  static void MergeReceived(const Tail& tail, IngestBatch* batch);
  static void ClearReceived(Tail& tail);
  // New records of one file, at most max_bytes; end_offset stops after the last whole line (or
  // after a torn one when writer_gone).
  Result<IngestBatch> Read(const std::string& run_id, Tail& tail, bool writer_gone,
                           int64_t max_bytes);

  RunStore* store_;
  Limits limits_;
  std::map<std::string, Tail> tails_;
  std::string resume_after_;  // the run IngestAll read last; the next call starts after it
  int64_t skipped_lines_ = 0;
};

}  // namespace isoflop
