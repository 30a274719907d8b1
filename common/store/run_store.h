// RunStore: the results database (SQLite), owned by the coordinator, the only writer (system.md
// section 5).
//
// WAL mode, foreign keys on, busy_timeout, schema version in PRAGMA user_version with forward
// migrations from schemas/migrations/*.sql (embedded at build time). A run's id is the content hash
// of its canonical resolved config and its data fingerprint, so storing the same sweep twice adds
// nothing. Every write method is one transaction: it happens whole or not at all.
//
// The schema (tables, and the views final_metrics, sweep_results, run_status, sweep_status that
// answer `isoflop results` and `isoflop status` in one query each) is documented in
// schemas/migrations/0001_init.sql. A RunStore is one SQLite connection: use it from one thread at
// a time (Query installs an authorizer on the connection for its duration); other processes may
// open their own.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/run_config.h"
#include "common/status.h"

struct sqlite3;

namespace isoflop {

enum class RunState {
  kPlanned,
  kQueued,
  kLaunching,
  kRunning,
  kCompleted,
  kFailed,
  kLost,
  kRetryWait,
  kCancelled
};
const char* ToString(RunState);                   // "PLANNED", ..., "RETRY_WAIT", as stored
bool Parse(const std::string& s, RunState* out);  // case-insensitive

// sha256 hex of canonical JSON of the resolved config (run id excluded) + data fingerprint; 16 hex
// chars shown to users, all 64 stored. Canonical: ToJson(run) dumped compact with sorted keys, then
// "\n" and run.data.fingerprint. The config holds the sweep name, so two sweeps share a run only
// when they are versions of the same sweep.
std::string RunId(const RunConfig& run);

struct SweepInsertResult {
  int64_t sweep_id = 0;
  bool sweep_existed = false;  // same name and same source hash
  int64_t runs_added = 0;
  int64_t runs_existing = 0;
};

struct RunRow {
  std::string id;
  int64_t sweep_id = 0;  // the sweep version that first planned the run
  std::string name, variant, size;
  double budget = 0;
  int64_t seed = 0;
  RunState state = RunState::kPlanned;
  int64_t attempts = 0;
  int64_t params = 0;
  double flops_per_token = 0;
  int64_t tokens_target = 0;
  nlohmann::json config;
};

struct MetricRecord {  // one training log record (metrics table)
  std::string run_id;
  int64_t step = 0;
  int64_t tokens = 0;
  double flops = 0;
  double train_loss = 0;
  double lr = 0;
  double grad_norm = 0;
  double tokens_per_s = 0;
  double mfu = 0;
};

struct EvalRecord {  // one evaluation value (evals table): val_loss, val_ppl, arc_easy/acc, ...
  std::string run_id;
  int64_t step = 0;
  int64_t tokens = 0;
  double flops = 0;
  std::string name;
  double value = 0;
  int64_t count = 0;  // items behind the value (benchmarks), 0 if not applicable
};

struct CheckpointRecord {  // a checkpoint the worker reported writing (checkpoints table)
  std::string run_id;
  int64_t step = 0;
  std::string path;
  int64_t bytes = 0;
};

// ---- Coordinator bookkeeping (schemas/migrations/0002_supervision.sql); written by isoflopd only.

struct QueuedRun {  // a run the scheduler may start now
  std::string run_id;
  int64_t sweep_id = 0;  // the sweep version that first planned it: the unit of fair share
  int64_t priority = 0;  // resources.priority: higher first
  int64_t gpus = 1;      // slots it needs
};

struct AttemptStart {
  std::string run_id;
  std::string launcher;  // "local", "mpi", "slurm"
  std::string host;
  std::string slots;  // the devices it will hold: "0,1", "cpu3"
  std::string log_path;
};

struct AttemptRow {
  std::string run_id;
  int64_t attempt = 0;  // 1, 2, ...
  std::string launcher;
  std::optional<int64_t> pid;
  std::string host;
  std::string slots;
  nlohmann::json handle;  // null until the launch succeeded
  std::optional<int64_t> exit_status;
  std::string cause;      // "" while the attempt is open
  double duration_s = 0;  // ended_at (or now, while open) minus started_at
  bool open = false;      // ended_at IS NULL: its processes may still exist
};

// How an attempt ended and what happens to its run next, written as one transaction: the attempt
// row is closed, the run enters `state` (one event), and with a retry it then enters RETRY_WAIT
// (a second event) until `retry_delay_s` from now.
struct AttemptEnd {
  std::string run_id;
  int64_t attempt = 0;
  // The exit code, or minus the number of the signal that ended the process; unknown (nullopt) for
  // a process that ended while nobody waited on it.
  std::optional<int64_t> exit_status;
  std::string cause;                    // "code fault: exit status 70", as stored in attempts.cause
  RunState state = RunState::kFailed;   // COMPLETED, FAILED, LOST or CANCELLED
  std::string reason;                   // the event's reason for entering `state`
  std::optional<double> retry_delay_s;  // set: retry after this many seconds
  std::string retry_reason;
};

// What one read of a run's metrics.jsonl produced, with what the worker sent over the daemon's
// socket since the last one (coordinator/supervisor/ingestor.h).
struct IngestBatch {
  std::string run_id;
  int64_t end_offset = 0;   // bytes of metrics.jsonl consumed, this batch's records included
  bool progressed = false;  // the worker showed life (its file grew, or it reported): a heartbeat
  std::vector<MetricRecord> metrics;
  std::vector<EvalRecord> evals;
  std::vector<CheckpointRecord> checkpoints;
  nlohmann::json provenance;  // fields the worker reported about itself ("start"), or null
  std::optional<int64_t> complete_step;  // the worker's "complete" record was in this batch
};

struct Supervision {  // the supervision row of one run; defaults when there is none yet
  int64_t ingest_offset = 0;
  std::optional<int64_t> complete_step;
  int64_t budget_from_attempt = 0;
  std::optional<double> retry_in_s;  // RETRY_WAIT: seconds until the retry is due (>= 0)
};

// One run as the scaling fits see it (`isoflop curves`): its plan, its state, and where it ended on
// one evaluation metric.
struct RunOutcome {
  std::string run_id;
  std::string name, variant, size;
  double budget = 0;  // C the run was planned for
  int64_t seed = 0;
  RunState state = RunState::kPlanned;
  int64_t params = 0;         // N
  int64_t params_nonemb = 0;  // N_nonemb
  int64_t tokens = 0;         // D: unique training tokens
  double planned_flops = 0;   // F * D: the training FLOPs the run spends
  // The metric's value at the highest step it was reported at; nullopt when it never was, or when
  // that value was NaN (a diverged run, stored as NULL).
  std::optional<double> final_value;
};

// A read-only query result: column names and rows of values already rendered as JSON scalars.
struct QueryResult {
  std::vector<std::string> columns;
  std::vector<std::vector<nlohmann::json>> rows;
};

class RunStore {
 public:
  // Opens (creating if needed) and migrates to the newest schema version.
  static Result<std::unique_ptr<RunStore>> Open(const std::string& path);
  // Opens an existing database read-only for `isoflop query`: SQLITE_OPEN_READONLY, PRAGMA
  // query_only, and an authorizer that refuses every statement other than reading (no ATTACH, no
  // PRAGMA that changes state, no writes), whatever the SQL asks for.
  static Result<std::unique_ptr<RunStore>> OpenReadOnly(const std::string& path);
  ~RunStore();
  RunStore(const RunStore&) = delete;
  RunStore& operator=(const RunStore&) = delete;

  int SchemaVersion() const;  // PRAGMA user_version; -1 if it cannot be read

  // Sweep, runs and plan in one transaction. Runs already present (same id) are left untouched.
  // A sweep version is identified by (name, sha256 of source_yaml): the same file again finds its
  // row (sweep_existed). Every run is linked to this version in expansion order, whether new or
  // shared with an earlier version of the sweep; new runs are stored QUEUED (a submit is the
  // request to run them), each with an event. Every run's `sweep` must equal `name`.
  Result<SweepInsertResult> InsertSweep(const std::string& name, const std::string& source_yaml,
                                        const std::vector<RunConfig>& runs);
  // The runs of one sweep version in expansion order; NotFound if there is no such sweep.
  Result<std::vector<RunRow>> Runs(int64_t sweep_id) const;
  // Latest sweep with this name, or by numeric id given as text.
  Result<int64_t> FindSweep(const std::string& name_or_id) const;

  // Changes the state and appends an event (from, to, reason). Setting the current state again is a
  // no-op; entering LAUNCHING counts an attempt; COMPLETED is final (FailedPrecondition), so a late
  // message from a finished run cannot reopen it. NotFound for an unknown run (full 64-digit id).
  Status SetRunState(const std::string& run_id, RunState state, const std::string& reason);
  // Idempotent: a record whose (run, step) -- (run, name, step) for evals -- is already stored is
  // skipped and the stored copy stands. A record of an unknown run fails the whole batch. NaN
  // values are stored as NULL.
  Status AppendMetrics(const std::vector<MetricRecord>& records);
  Status AppendEvals(const std::vector<EvalRecord>& records);

  // ---- Coordinator bookkeeping. Each method is one transaction, like every write above.

  // The full id of the one run whose id starts with `prefix` (hex digits, any case, at least 4).
  // NotFound when none does; InvalidArgument when the prefix is malformed or names several runs.
  Result<std::string> FindRun(const std::string& prefix) const;
  // One run by full id; NotFound if absent.
  Result<RunRow> Run(const std::string& run_id) const;
  // Every QUEUED run, most urgent first: priority descending, then the order runs were stored in
  // (expansion order within a sweep).
  Result<std::vector<QueuedRun>> QueuedRuns() const;
  // Runs in RETRY_WAIT with the seconds left until each is due, to re-arm timers after a restart.
  Result<std::vector<std::pair<std::string, double>>> RetryWaitRuns() const;
  // Attempts whose ended_at is NULL, any run state: the processes that may still exist.
  Result<std::vector<AttemptRow>> OpenAttempts() const;
  // Every attempt of a run, oldest first.
  Result<std::vector<AttemptRow>> Attempts(const std::string& run_id) const;
  Result<Supervision> SupervisionOf(const std::string& run_id) const;

  // The run enters LAUNCHING (counting an attempt), its host is set, and an open attempt row is
  // added; returns the attempt number. FailedPrecondition unless the run is QUEUED: a run is never
  // launched twice at once.
  Result<int64_t> BeginAttempt(const AttemptStart& start);
  // The launch succeeded: the attempt gets its pid and launcher handle, the run enters RUNNING, its
  // heartbeat clock starts, and `provenance` (an object) is merged into runs.provenance.
  Status AttemptRunning(const std::string& run_id, int64_t attempt, int64_t pid,
                        const nlohmann::json& handle, const nlohmann::json& provenance);
  // Closes an attempt and moves its run on (AttemptEnd). Closing an attempt already closed is a
  // no-op, so a duplicate exit notice cannot retry a run twice.
  Status EndAttempt(const AttemptEnd& end);
  // Every batch in one transaction: records (duplicates skipped, as AppendMetrics), checkpoints,
  // provenance, the "complete" step, the heartbeat when the worker showed life, and each run's new
  // ingest offset. A crash before the commit leaves offset and records as they were, so the same
  // bytes are read again; after it, never again.
  Status Ingest(const std::vector<IngestBatch>& batches);
  // A RETRY_WAIT run whose wait is over goes back to QUEUED. No-op in any other state.
  Status RetryDue(const std::string& run_id);
  // Moves runs that have not finished to CANCELLED: QUEUED, RETRY_WAIT, PLANNED, LAUNCHING and
  // RUNNING alike (a running attempt stays open until its process exits). Returns the ids that
  // changed.
  Result<std::vector<std::string>> CancelRuns(const std::vector<std::string>& run_ids,
                                              const std::string& reason);
  // `isoflop resume`: every run of the sweep version in FAILED, LOST, CANCELLED or PLANNED goes
  // back to QUEUED with fresh retry budgets. Returns the ids re-queued.
  Result<std::vector<std::string>> RequeueSweep(int64_t sweep_id, const std::string& reason);
  // The ids of a sweep version's runs in expansion order (without their configs).
  Result<std::vector<std::string>> SweepRunIds(int64_t sweep_id) const;
  // Every run of a sweep version in expansion order, whatever its state, with the final value of
  // the eval named `metric` ("val_loss"); one seek per run on the evals key. NotFound if there is
  // no such sweep.
  Result<std::vector<RunOutcome>> RunOutcomes(int64_t sweep_id, const std::string& metric) const;

  // Read-only SQL for `isoflop query` and `isoflop results` (fails on a write even on a read-write
  // store). Exactly one statement. SELECT, and PRAGMAs that describe the schema (table_info,
  // index_list, ..., user_version without a value); anything else is PermissionDenied before it
  // runs. Values: integers, reals, text and null as such; blobs as the SQL literal text x'0a1b'.
  Result<QueryResult> Query(const std::string& sql) const;

  sqlite3* handle() { return db_; }

 private:
  explicit RunStore(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

}  // namespace isoflop
