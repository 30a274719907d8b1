#include "common/store/run_store.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/embedded.h"
#include "common/store/sql.h"

namespace isoflop {
namespace {

using nlohmann::json;
using sql::Statement;
using sql::Transaction;

// The SQL expression for "now" in the schema's time format (schemas/migrations/0001_init.sql).
constexpr std::string_view kNow = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";
// PRAGMA application_id of an isoflop database: 'ISOF', set by the first migration.
constexpr int64_t kApplicationId = 0x49534F46;
// A second writer (a CLI command while the daemon ingests) waits this long for the lock before
// failing.
constexpr int kBusyTimeoutMs = 5000;

struct StateName {
  RunState state;
  const char* name;
};
constexpr StateName kStateNames[] = {
    {RunState::kPlanned, "PLANNED"},     {RunState::kQueued, "QUEUED"},
    {RunState::kLaunching, "LAUNCHING"}, {RunState::kRunning, "RUNNING"},
    {RunState::kCompleted, "COMPLETED"}, {RunState::kFailed, "FAILED"},
    {RunState::kLost, "LOST"},           {RunState::kRetryWait, "RETRY_WAIT"},
    {RunState::kCancelled, "CANCELLED"},
};

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * bytes.size());
  for (unsigned char byte : bytes) {
    hex += kDigits[byte >> 4];
    hex += kDigits[byte & 0xf];
  }
  return hex;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  // EVP_Digest only fails on allocation failure inside OpenSSL; the run id cannot do without it.
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    std::abort();
  }
  return Hex({reinterpret_cast<const char*>(digest), length});
}

// The stored run.json and the text hashed into the run id: compact, keys sorted (nlohmann's default
// object is a sorted map), numbers in shortest round-trip form. Invalid UTF-8 in a string is
// replaced rather than thrown on, so that a stray byte in a path cannot take the coordinator down.
std::string CanonicalJson(const RunConfig& run) {
  return ToJson(run).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string RunIdOf(const std::string& canonical_json, const std::string& data_fingerprint) {
  return Sha256Hex(canonical_json + "\n" + data_fingerprint);
}

struct SerializedRun {
  std::string config;  // canonical JSON
  std::string id;
};

// CanonicalJson and RunIdOf of every run, split over the hardware threads.
std::vector<SerializedRun> SerializeRuns(const std::vector<RunConfig>& runs) {
  std::vector<SerializedRun> out(runs.size());
  auto serialize = [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      out[i].config = CanonicalJson(runs[i]);
      out[i].id = RunIdOf(out[i].config, runs[i].data.fingerprint);
    }
  };
  const size_t threads = runs.size() < 256 ? 1 : std::max(1u, std::thread::hardware_concurrency());
  const size_t chunk = (runs.size() + threads - 1) / threads;
  std::vector<std::thread> workers;
  for (size_t t = 1; t < threads; ++t) {
    workers.emplace_back(serialize, std::min(runs.size(), t * chunk),
                         std::min(runs.size(), (t + 1) * chunk));
  }
  serialize(0, std::min(runs.size(), chunk));
  for (std::thread& w : workers) w.join();
  return out;
}

// "0001_init.sql" -> 1; 0 when the name does not start with a version number.
int MigrationVersion(std::string_view file_name) {
  int version = 0;
  auto [end, ec] = std::from_chars(file_name.data(), file_name.data() + file_name.size(), version);
  if (ec != std::errc() || end == file_name.data() || *end != '_') return 0;
  return version;
}

int KnownSchemaVersion() {
  return isoflop_migrations::kFileCount;
}

Result<int64_t> UserVersion(sqlite3* db, const std::string& path) {
  Result<std::optional<int64_t>> version = sql::QueryInt(db, "PRAGMA user_version");
  if (!version.ok()) return sql::WithContext(version.status(), path);
  return version->value_or(0);
}

// Refuses a file this binary must not touch: one written by a newer isoflop (its schema may mean
// things this code does not know) or a SQLite file that belongs to something else.
Status CheckSchemaIsOurs(sqlite3* db, const std::string& path, int64_t version) {
  if (version > KnownSchemaVersion()) {
    return Status::FailedPrecondition(fmt::format(
        "{}: schema version {} is newer than this isoflop knows ({}); use a newer isoflop", path,
        version, KnownSchemaVersion()));
  }
  if (version == 0) {
    Result<std::optional<int64_t>> objects =
        sql::QueryInt(db, "SELECT count(*) FROM sqlite_schema");
    if (!objects.ok()) return objects.status();
    if (objects->value_or(0) != 0) {
      return Status::FailedPrecondition(fmt::format(
          "{}: not an isoflop results database (it has tables but no schema version)", path));
    }
    return Status::OK();
  }
  Result<std::optional<int64_t>> application_id = sql::QueryInt(db, "PRAGMA application_id");
  if (!application_id.ok()) return application_id.status();
  if (application_id->value_or(0) != kApplicationId) {
    return Status::FailedPrecondition(
        fmt::format("{}: not an isoflop results database (application_id {})", path,
                    application_id->value_or(0)));
  }
  return Status::OK();
}

// Applies every migration newer than the database, each in its own transaction together with its
// user_version, so a crash between two migrations leaves a database at a well-defined version.
Status Migrate(sqlite3* db, const std::string& path) {
  for (int i = 0; i < isoflop_migrations::kFileCount; ++i) {
    const EmbeddedFile& file = isoflop_migrations::kFiles[i];
    if (MigrationVersion(file.name) != i + 1) {
      return Status::Internal(
          fmt::format("embedded migration {} is out of sequence: expected version {:04d}_*.sql",
                      file.name, i + 1));
    }
  }
  for (;;) {
    Result<int64_t> version = UserVersion(db, path);
    if (!version.ok()) return version.status();
    ISOFLOP_RETURN_IF_ERROR(CheckSchemaIsOurs(db, path, *version));
    if (*version == KnownSchemaVersion()) return Status::OK();

    Result<Transaction> transaction = Transaction::Begin(db);
    if (!transaction.ok()) return transaction.status();
    // Another process may have migrated while this one waited for the write lock.
    Result<int64_t> locked_version = UserVersion(db, path);
    if (!locked_version.ok()) return locked_version.status();
    if (*locked_version != *version) continue;

    const EmbeddedFile& file = isoflop_migrations::kFiles[*version];
    ISOFLOP_RETURN_IF_ERROR(sql::Exec(db, std::string(file.text),
                                      fmt::format("{}: applying migration {}", path, file.name)));
    ISOFLOP_RETURN_IF_ERROR(sql::Exec(db, fmt::format("PRAGMA user_version = {}", *version + 1),
                                      fmt::format("{}: setting the schema version", path)));
    ISOFLOP_RETURN_IF_ERROR(transaction->Commit());
  }
}

struct Closer {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbHandle = std::unique_ptr<sqlite3, Closer>;

Result<DbHandle> OpenHandle(const std::string& path, const std::string& filename, int flags) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(filename.c_str(), &raw, flags | SQLITE_OPEN_EXRESCODE, nullptr);
  // sqlite3_open_v2 allocates a handle even when it fails; it must be closed all the same.
  DbHandle db(raw);
  if (rc != SQLITE_OK) {
    return sql::Error(db.get(), rc, fmt::format("cannot open results database {}", path));
  }
  sqlite3_busy_timeout(db.get(), kBusyTimeoutMs);
  // Defensive mode forbids what only a corrupting client would do (writable_schema, raw page
  // edits).
  sqlite3_db_config(db.get(), SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  return db;
}

// WAL: readers (`isoflop status`, `query`) never block the writer or each other. synchronous=NORMAL
// is durable across process crashes and may lose the last commits on power loss, which the workers'
// metrics.jsonl files cover. Foreign keys are off by default in SQLite, and set per connection.
// A 64 MiB page cache keeps a 10,000-run sweep's insert (about 25 MB of configs) from spilling
// dirty pages to the WAL in the middle of its transaction.
Status ConfigureForWriting(sqlite3* db, const std::string& path) {
  Result<Statement> journal = Statement::Prepare(db, "PRAGMA journal_mode = WAL");
  if (!journal.ok()) return journal.status();
  Result<bool> row = journal->Step(fmt::format("{}: enabling WAL", path));
  if (!row.ok()) return row.status();
  if (!*row || journal->ColumnText(0) != "wal") {
    return Status::IOError(fmt::format(
        "{}: cannot enable WAL journaling (the file system may not support shared memory)", path));
  }
  return sql::Exec(
      db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536",
      fmt::format("{}: configuring", path));
}

Result<bool> SweepExists(sqlite3* db, int64_t sweep_id) {
  Result<Statement> select = Statement::Prepare(db, "SELECT 1 FROM sweeps WHERE id = ?");
  if (!select.ok()) return select.status();
  select->Bind(1, sweep_id);
  return select->Step();
}

// Reading SQL only: SELECT, the tables and views it reads, functions, recursive CTEs, and PRAGMAs
// that describe the schema. Everything else (INSERT, UPDATE, DELETE, CREATE, DROP, ATTACH, DETACH,
// transactions, PRAGMAs that set or change state) is refused when the statement is prepared.
int AuthorizeReadOnly(void*, int action, const char* arg1, const char* arg2, const char*,
                      const char*) {
  switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_FUNCTION:
    case SQLITE_RECURSIVE:
      return SQLITE_OK;
    case SQLITE_PRAGMA: {
      // These take a table or index name and only report on it.
      static constexpr const char* kDescribing[] = {"table_info",  "table_xinfo",
                                                    "index_list",  "index_info",
                                                    "index_xinfo", "foreign_key_list"};
      // These read a value when given no argument and set it when given one.
      static constexpr const char* kReadWithoutArgument[] = {"user_version", "application_id"};
      const char* pragma = arg1 ? arg1 : "";
      for (const char* name : kDescribing) {
        if (sqlite3_stricmp(pragma, name) == 0) return SQLITE_OK;
      }
      for (const char* name : kReadWithoutArgument) {
        if (arg2 == nullptr && sqlite3_stricmp(pragma, name) == 0) return SQLITE_OK;
      }
      return SQLITE_DENY;
    }
    default:
      return SQLITE_DENY;
  }
}

// Installs the read-only authorizer for one query on a read-write store and removes it afterwards.
// On a read-only store the authorizer is permanent and stays.
class ReadOnlyScope {
 public:
  explicit ReadOnlyScope(sqlite3* db) : db_(db), permanent_(sqlite3_db_readonly(db, "main") == 1) {
    sqlite3_set_authorizer(db_, AuthorizeReadOnly, nullptr);
  }
  ~ReadOnlyScope() {
    if (!permanent_) sqlite3_set_authorizer(db_, nullptr, nullptr);
  }
  ReadOnlyScope(const ReadOnlyScope&) = delete;
  ReadOnlyScope& operator=(const ReadOnlyScope&) = delete;

 private:
  sqlite3* db_;
  bool permanent_;
};

// file: URI for a path: every byte outside the unreserved set is %-escaped, so '?', '#' and '%' in
// a path cannot be read as URI syntax.
std::string FileUri(const std::string& path, std::string_view query) {
  std::string uri = "file:";
  for (unsigned char c : path) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '/' || c == '.' || c == '_' || c == '-' || c == '~';
    uri += plain ? std::string(1, static_cast<char>(c)) : fmt::format("%{:02X}", c);
  }
  uri += '?';
  uri += query;
  return uri;
}

json ColumnValue(const Statement& statement, int column) {
  switch (statement.ColumnType(column)) {
    case SQLITE_INTEGER:
      return statement.ColumnInt(column);
    case SQLITE_FLOAT:
      return statement.ColumnDouble(column);
    case SQLITE_TEXT:
      return statement.ColumnText(column);
    case SQLITE_BLOB: {
      // As an SQL blob literal, so the value reads back as what it is.
      return "x'" + Hex(statement.ColumnBlob(column)) + "'";
    }
    default:
      return nullptr;
  }
}

// SQLite stores a NaN as NULL; binding NULL outright keeps what the database holds visible here.
void BindReal(Statement& statement, int index, double value) {
  if (value != value) {
    statement.BindNull(index);
  } else {
    statement.Bind(index, value);
  }
}

Result<RunState> CurrentState(sqlite3* db, const std::string& run_id) {
  Result<Statement> select = Statement::Prepare(db, "SELECT state FROM runs WHERE id = ?");
  if (!select.ok()) return select.status();
  select->Bind(1, run_id);
  Result<bool> row = select->Step();
  if (!row.ok()) return row.status();
  if (!*row) return Status::NotFound(fmt::format("run {}: not in the results database", run_id));
  RunState state = RunState::kPlanned;
  if (!Parse(select->ColumnText(0), &state)) {
    return Status::Corruption(
        fmt::format("run {}: unknown state '{}'", run_id, select->ColumnText(0)));
  }
  return state;
}

// The body of SetRunState, for use inside a caller's transaction.
Status ChangeState(sqlite3* db, const std::string& run_id, RunState state,
                   const std::string& reason) {
  Result<RunState> from = CurrentState(db, run_id);
  if (!from.ok()) return from.status();
  if (*from == state) return Status::OK();
  if (*from == RunState::kCompleted) {
    return Status::FailedPrecondition(
        fmt::format("run {}: COMPLETED is final; refusing to change it to {} ({})", run_id,
                    ToString(state), reason));
  }

  // Every launch passes through LAUNCHING exactly once, so that is where an attempt is counted.
  Result<Statement> update =
      Statement::Prepare(db, fmt::format("UPDATE runs SET state = ?1, updated_at = {}, "
                                         "attempts = attempts + (?1 = 'LAUNCHING') WHERE id = ?2",
                                         kNow));
  if (!update.ok()) return update.status();
  update->Bind(1, ToString(state)).Bind(2, run_id);
  const std::string context =
      fmt::format("run {}: {} -> {}", run_id, ToString(*from), ToString(state));
  ISOFLOP_RETURN_IF_ERROR(update->Run(context));

  Result<Statement> log_event = Statement::Prepare(
      db, "INSERT INTO events (run_id, from_state, to_state, reason) VALUES (?, ?, ?, ?)");
  if (!log_event.ok()) return log_event.status();
  log_event->Bind(1, run_id).Bind(2, ToString(*from)).Bind(3, ToString(state)).Bind(4, reason);
  return log_event->Run(context);
}

Status InsertMetrics(sqlite3* db, const std::vector<MetricRecord>& records) {
  if (records.empty()) return Status::OK();
  // A record already stored (same run and step) is the same record ingested twice, from the socket
  // and again from metrics.jsonl after a coordinator restart: the first copy stands.
  Result<Statement> insert = Statement::Prepare(db, R"sql(
      INSERT INTO metrics (run_id, step, tokens, flops, train_loss, lr, grad_norm, tokens_per_s, mfu)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (run_id, step) DO NOTHING)sql");
  if (!insert.ok()) return insert.status();
  for (const MetricRecord& record : records) {
    insert->Reset();
    insert->Bind(1, record.run_id).Bind(2, record.step).Bind(3, record.tokens);
    BindReal(*insert, 4, record.flops);
    BindReal(*insert, 5, record.train_loss);
    BindReal(*insert, 6, record.lr);
    BindReal(*insert, 7, record.grad_norm);
    BindReal(*insert, 8, record.tokens_per_s);
    BindReal(*insert, 9, record.mfu);
    ISOFLOP_RETURN_IF_ERROR(insert->Run(
        fmt::format("appending metrics of run {} step {}", record.run_id, record.step)));
  }
  return Status::OK();
}

Status InsertEvals(sqlite3* db, const std::vector<EvalRecord>& records) {
  if (records.empty()) return Status::OK();
  Result<Statement> insert = Statement::Prepare(db, R"sql(
      INSERT INTO evals (run_id, step, tokens, flops, name, value, count)
      VALUES (?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (run_id, name, step) DO NOTHING)sql");
  if (!insert.ok()) return insert.status();
  for (const EvalRecord& record : records) {
    insert->Reset();
    insert->Bind(1, record.run_id).Bind(2, record.step).Bind(3, record.tokens);
    BindReal(*insert, 4, record.flops);
    insert->Bind(5, record.name);
    BindReal(*insert, 6, record.value);
    insert->Bind(7, record.count);
    ISOFLOP_RETURN_IF_ERROR(insert->Run(fmt::format("appending eval {} of run {} step {}",
                                                    record.name, record.run_id, record.step)));
  }
  return Status::OK();
}

Status InsertCheckpoints(sqlite3* db, const std::vector<CheckpointRecord>& records) {
  if (records.empty()) return Status::OK();
  Result<Statement> insert = Statement::Prepare(db, R"sql(
      INSERT INTO checkpoints (run_id, step, path, bytes) VALUES (?, ?, ?, ?)
      ON CONFLICT (run_id, step) DO UPDATE SET path = excluded.path, bytes = excluded.bytes)sql");
  if (!insert.ok()) return insert.status();
  for (const CheckpointRecord& record : records) {
    insert->Reset();
    insert->Bind(1, record.run_id).Bind(2, record.step).Bind(3, record.path).Bind(4, record.bytes);
    ISOFLOP_RETURN_IF_ERROR(insert->Run(
        fmt::format("recording checkpoint of run {} step {}", record.run_id, record.step)));
  }
  return Status::OK();
}

// The supervision row of a run exists from its first launch or retry on; this makes sure of it.
Status EnsureSupervision(sqlite3* db, const std::string& run_id) {
  Result<Statement> insert = Statement::Prepare(
      db, "INSERT INTO supervision (run_id) VALUES (?) ON CONFLICT (run_id) DO NOTHING");
  if (!insert.ok()) return insert.status();
  insert->Bind(1, run_id);
  return insert->Run(fmt::format("run {}: creating its supervision row", run_id));
}

// Columns of AttemptRows, in the order ReadAttempt expects.
constexpr std::string_view kAttemptColumns =
    "run_id, attempt, launcher, pid, host, slots, handle, exit_status, cause, ended_at IS NULL, "
    "(julianday(coalesce(ended_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))) - julianday(started_at))"
    " * 86400.0";

Result<AttemptRow> ReadAttempt(const Statement& select) {
  AttemptRow row;
  row.run_id = select.ColumnText(0);
  row.attempt = select.ColumnInt(1);
  row.launcher = select.ColumnText(2);
  if (select.ColumnType(3) != SQLITE_NULL) row.pid = select.ColumnInt(3);
  row.host = select.ColumnText(4);
  row.slots = select.ColumnText(5);
  if (select.ColumnType(6) != SQLITE_NULL) {
    row.handle = json::parse(select.ColumnText(6), nullptr, /*allow_exceptions=*/false);
    if (row.handle.is_discarded()) {
      return Status::Corruption(fmt::format("run {} attempt {}: stored handle is not valid JSON",
                                            row.run_id, row.attempt));
    }
  }
  if (select.ColumnType(7) != SQLITE_NULL) row.exit_status = select.ColumnInt(7);
  row.cause = select.ColumnText(8);
  row.open = select.ColumnInt(9) != 0;
  row.duration_s = select.ColumnDouble(10);
  return row;
}

Result<std::vector<AttemptRow>> ReadAttempts(Statement& select) {
  std::vector<AttemptRow> rows;
  for (;;) {
    Result<bool> row = select.Step();
    if (!row.ok()) return row.status();
    if (!*row) return rows;
    Result<AttemptRow> attempt = ReadAttempt(select);
    if (!attempt.ok()) return attempt.status();
    rows.push_back(std::move(*attempt));
  }
}

Result<std::vector<std::string>> ReadStrings(Statement& select) {
  std::vector<std::string> values;
  for (;;) {
    Result<bool> row = select.Step();
    if (!row.ok()) return row.status();
    if (!*row) return values;
    values.push_back(select.ColumnText(0));
  }
}

// Columns of RunRow, in the order ReadRunRow expects; `r` is the runs table.
constexpr std::string_view kRunRowColumns =
    "r.id, r.sweep_id, r.name, r.variant, r.size, r.budget, r.seed, r.state, r.attempts, r.params, "
    "r.flops_per_token, r.tokens_target, r.config";

Result<RunRow> ReadRunRow(const Statement& select) {
  RunRow run;
  run.id = select.ColumnText(0);
  run.sweep_id = select.ColumnInt(1);
  run.name = select.ColumnText(2);
  run.variant = select.ColumnText(3);
  run.size = select.ColumnText(4);
  run.budget = select.ColumnDouble(5);
  run.seed = select.ColumnInt(6);
  if (!Parse(select.ColumnText(7), &run.state)) {
    return Status::Corruption(
        fmt::format("run {}: unknown state '{}'", run.id, select.ColumnText(7)));
  }
  run.attempts = select.ColumnInt(8);
  run.params = select.ColumnInt(9);
  run.flops_per_token = select.ColumnDouble(10);
  run.tokens_target = select.ColumnInt(11);
  run.config = json::parse(select.ColumnText(12), nullptr, /*allow_exceptions=*/false);
  if (run.config.is_discarded()) {
    return Status::Corruption(fmt::format("run {}: stored config is not valid JSON", run.id));
  }
  return run;
}

}  // namespace

const char* ToString(RunState state) {
  for (const StateName& entry : kStateNames) {
    if (entry.state == state) return entry.name;
  }
  return "?";
}

bool Parse(const std::string& s, RunState* out) {
  for (const StateName& entry : kStateNames) {
    if (sqlite3_stricmp(s.c_str(), entry.name) == 0) {
      *out = entry.state;
      return true;
    }
  }
  return false;
}

std::string RunId(const RunConfig& run) {
  return RunIdOf(CanonicalJson(run), run.data.fingerprint);
}

Result<std::unique_ptr<RunStore>> RunStore::Open(const std::string& path) {
  Result<DbHandle> db = OpenHandle(path, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (!db.ok()) return db.status();
  // Look before changing anything: switching a stranger's file to WAL would already modify it.
  Result<int64_t> version = UserVersion(db->get(), path);
  if (!version.ok()) return version.status();
  ISOFLOP_RETURN_IF_ERROR(CheckSchemaIsOurs(db->get(), path, *version));

  ISOFLOP_RETURN_IF_ERROR(ConfigureForWriting(db->get(), path));
  ISOFLOP_RETURN_IF_ERROR(Migrate(db->get(), path));
  return std::unique_ptr<RunStore>(new RunStore(db->release()));
}

Result<std::unique_ptr<RunStore>> RunStore::OpenReadOnly(const std::string& path) {
  // mode=ro in the URI and SQLITE_OPEN_READONLY say the same thing twice, on purpose: either alone
  // keeps the file unwritten by this connection.
  Result<DbHandle> db =
      OpenHandle(path, FileUri(path, "mode=ro"), SQLITE_OPEN_READONLY | SQLITE_OPEN_URI);
  if (!db.ok()) return db.status();
  sqlite3_limit(db->get(), SQLITE_LIMIT_ATTACHED, 0);
  ISOFLOP_RETURN_IF_ERROR(sql::Exec(db->get(), "PRAGMA query_only = 1; PRAGMA trusted_schema = 0",
                                    fmt::format("{}: configuring read-only access", path)));
  Result<int64_t> version = UserVersion(db->get(), path);
  if (!version.ok()) return version.status();
  if (*version == 0) {
    return Status::FailedPrecondition(
        fmt::format("{}: not an isoflop results database (no schema version)", path));
  }
  ISOFLOP_RETURN_IF_ERROR(CheckSchemaIsOurs(db->get(), path, *version));
  sqlite3_set_authorizer(db->get(), AuthorizeReadOnly, nullptr);
  return std::unique_ptr<RunStore>(new RunStore(db->release()));
}

RunStore::~RunStore() {
  sqlite3_close_v2(db_);
}

int RunStore::SchemaVersion() const {
  Result<std::optional<int64_t>> version = sql::QueryInt(db_, "PRAGMA user_version");
  return version.ok() ? static_cast<int>(version->value_or(0)) : -1;
}

Result<SweepInsertResult> RunStore::InsertSweep(const std::string& name,
                                                const std::string& source_yaml,
                                                const std::vector<RunConfig>& runs) {
  if (name.empty()) return Status::InvalidArgument("a sweep needs a name");
  for (const RunConfig& run : runs) {
    // The sweep name is part of every run's config and so of its id: a run filed under another
    // sweep's name would never be found again by resubmitting that sweep.
    if (run.sweep != name) {
      return Status::InvalidArgument(
          fmt::format("run {} belongs to sweep '{}', not '{}'", run.name, run.sweep, name));
    }
  }
  const std::string source_hash = Sha256Hex(source_yaml);
  SweepInsertResult result;

  Result<Transaction> transaction = Transaction::Begin(db_);
  if (!transaction.ok()) return transaction.status();

  Result<Statement> find_sweep =
      Statement::Prepare(db_, "SELECT id FROM sweeps WHERE name = ? AND source_hash = ?");
  if (!find_sweep.ok()) return find_sweep.status();
  find_sweep->Bind(1, name).Bind(2, source_hash);
  Result<bool> found = find_sweep->Step();
  if (!found.ok()) return found.status();
  if (*found) {
    result.sweep_id = find_sweep->ColumnInt(0);
    result.sweep_existed = true;
  } else {
    Result<Statement> insert_sweep = Statement::Prepare(
        db_, "INSERT INTO sweeps (name, source_yaml, source_hash) VALUES (?, ?, ?)");
    if (!insert_sweep.ok()) return insert_sweep.status();
    insert_sweep->Bind(1, name).Bind(2, source_yaml).Bind(3, source_hash);
    ISOFLOP_RETURN_IF_ERROR(insert_sweep->Run(fmt::format("storing sweep {}", name)));
    result.sweep_id = sqlite3_last_insert_rowid(db_);
  }

  // ON CONFLICT DO NOTHING, not INSERT OR IGNORE: only "this run already exists" is expected; a
  // CHECK or NOT NULL violation must fail the transaction, not silently drop the run.
  Result<Statement> insert_run = Statement::Prepare(db_, R"sql(
      INSERT INTO runs (id, sweep_id, name, variant, size, budget, seed, config, params, params_nonemb,
                        flops_per_token, tokens_target, steps, tokens_processed, planned_flops, six_nd,
                        gpus, priority, state)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (id) DO NOTHING)sql");
  if (!insert_run.ok()) return insert_run.status();
  Result<Statement> link_run = Statement::Prepare(db_, R"sql(
      INSERT INTO sweep_runs (sweep_id, run_id, position) VALUES (?, ?, ?)
      ON CONFLICT DO NOTHING)sql");
  if (!link_run.ok()) return link_run.status();
  Result<Statement> log_event = Statement::Prepare(
      db_, "INSERT INTO events (run_id, from_state, to_state, reason) VALUES (?, NULL, ?, ?)");
  if (!log_event.ok()) return log_event.status();
  const std::string submitted = fmt::format("submitted with sweep {} (#{})", name, result.sweep_id);

  // Serializing and hashing the configs is most of the CPU time of a large insert and needs no
  // lock: it runs on every core before the (single-threaded) SQLite inserts.
  const std::vector<SerializedRun> serialized = SerializeRuns(runs);
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunConfig& run = runs[i];
    const std::string& config = serialized[i].config;
    const std::string& id = serialized[i].id;
    const std::string context = fmt::format("storing run {} ({})", run.name, id.substr(0, 16));
    insert_run->Reset();
    insert_run->Bind(1, id)
        .Bind(2, result.sweep_id)
        .Bind(3, run.name)
        .Bind(4, run.variant)
        .Bind(5, run.size)
        .Bind(6, run.budget.flops)
        .Bind(7, run.seed)
        .Bind(8, config)
        .Bind(9, run.accounting.params)
        .Bind(10, run.accounting.params_nonemb)
        .Bind(11, run.budget.flops_per_token)
        .Bind(12, run.budget.tokens)
        .Bind(13, run.budget.steps)
        .Bind(14, run.budget.tokens_processed)
        .Bind(15, run.budget.planned_flops)
        .Bind(16, run.budget.six_nd)
        .Bind(17, run.resources.gpus)
        .Bind(18, run.resources.priority)
        .Bind(19, ToString(RunState::kQueued));
    ISOFLOP_RETURN_IF_ERROR(insert_run->Run(context));
    if (sqlite3_changes(db_) == 1) {
      ++result.runs_added;
      log_event->Reset();
      log_event->Bind(1, id).Bind(2, ToString(RunState::kQueued)).Bind(3, submitted);
      ISOFLOP_RETURN_IF_ERROR(log_event->Run(context));
    } else {
      ++result.runs_existing;
    }
    link_run->Reset();
    link_run->Bind(1, result.sweep_id).Bind(2, id).Bind(3, static_cast<int64_t>(i));
    ISOFLOP_RETURN_IF_ERROR(link_run->Run(context));
  }
  ISOFLOP_RETURN_IF_ERROR(transaction->Commit());
  return result;
}

Result<std::vector<RunRow>> RunStore::Runs(int64_t sweep_id) const {
  Result<bool> exists = SweepExists(db_, sweep_id);
  if (!exists.ok()) return exists.status();
  if (!*exists) return Status::NotFound(fmt::format("no sweep #{}", sweep_id));

  Result<Statement> select = Statement::Prepare(
      db_, fmt::format("SELECT {} FROM sweep_runs AS l JOIN runs AS r ON r.id = l.run_id "
                       "WHERE l.sweep_id = ? ORDER BY l.position",
                       kRunRowColumns));
  if (!select.ok()) return select.status();
  select->Bind(1, sweep_id);
  std::vector<RunRow> rows;
  for (;;) {
    Result<bool> row = select->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    Result<RunRow> run = ReadRunRow(*select);
    if (!run.ok()) return run.status();
    rows.push_back(std::move(*run));
  }
  return rows;
}

Result<int64_t> RunStore::FindSweep(const std::string& name_or_id) const {
  int64_t id = 0;
  const char* end = name_or_id.data() + name_or_id.size();
  auto [parsed_end, ec] = std::from_chars(name_or_id.data(), end, id);
  if (ec == std::errc() && parsed_end == end) {
    Result<bool> exists = SweepExists(db_, id);
    if (!exists.ok()) return exists.status();
    if (*exists) return id;
  }
  // A name: its latest submitted version.
  Result<Statement> select =
      Statement::Prepare(db_, "SELECT id FROM sweeps WHERE name = ? ORDER BY id DESC LIMIT 1");
  if (!select.ok()) return select.status();
  select->Bind(1, name_or_id);
  Result<bool> row = select->Step();
  if (!row.ok()) return row.status();
  if (!*row) return Status::NotFound(fmt::format("no sweep named or numbered '{}'", name_or_id));
  return select->ColumnInt(0);
}

Status RunStore::SetRunState(const std::string& run_id, RunState state, const std::string& reason) {
  Result<Transaction> transaction = Transaction::Begin(db_);
  if (!transaction.ok()) return transaction.status();
  ISOFLOP_RETURN_IF_ERROR(ChangeState(db_, run_id, state, reason));
  return transaction->Commit();
}

Status RunStore::AppendMetrics(const std::vector<MetricRecord>& records) {
  if (records.empty()) return Status::OK();
  Result<Transaction> transaction = Transaction::Begin(db_);
  if (!transaction.ok()) return transaction.status();
  ISOFLOP_RETURN_IF_ERROR(InsertMetrics(db_, records));
  return transaction->Commit();
}

Status RunStore::AppendEvals(const std::vector<EvalRecord>& records) {
  if (records.empty()) return Status::OK();
  Result<Transaction> transaction = Transaction::Begin(db_);
  if (!transaction.ok()) return transaction.status();
  ISOFLOP_RETURN_IF_ERROR(InsertEvals(db_, records));
  return transaction->Commit();
}

Result<std::string> RunStore::FindRun(const std::string& prefix) const {
  std::string lower;
  for (char c : prefix) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.size() < 4 || lower.size() > 64 ||
      lower.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return Status::InvalidArgument(
        fmt::format("'{}' is not a run id: expected 4 to 64 hex digits", prefix));
  }
  // Ids are lowercase hex, so every id with this prefix sorts in [prefix, prefix + "g"): one range
  // scan on the primary key.
  Result<Statement> select = Statement::Prepare(
      db_, "SELECT id FROM runs WHERE id >= ?1 AND id < ?1 || 'g' ORDER BY id LIMIT 2");
  if (!select.ok()) return select.status();
  select->Bind(1, lower);
  Result<std::vector<std::string>> ids = ReadStrings(*select);
  if (!ids.ok()) return ids.status();
  if (ids->empty()) return Status::NotFound(fmt::format("no run id starts with {}", lower));
  if (ids->size() > 1) {
    return Status::InvalidArgument(
        fmt::format("run id prefix {} is ambiguous ({}, {}, ...): give more digits", lower,
                    (*ids)[0].substr(0, 16), (*ids)[1].substr(0, 16)));
  }
  return (*ids)[0];
}

Result<RunRow> RunStore::Run(const std::string& run_id) const {
  Result<Statement> select = Statement::Prepare(
      db_, fmt::format("SELECT {} FROM runs AS r WHERE r.id = ?", kRunRowColumns));
  if (!select.ok()) return select.status();
  select->Bind(1, run_id);
  Result<bool> row = select->Step();
  if (!row.ok()) return row.status();
  if (!*row) return Status::NotFound(fmt::format("run {}: not in the results database", run_id));
  return ReadRunRow(*select);
}

Result<std::vector<QueuedRun>> RunStore::QueuedRuns() const {
  // The order of runs_by_state, so the scan needs no sort.
  Result<Statement> select = Statement::Prepare(db_, R"sql(
      SELECT id, sweep_id, priority, gpus FROM runs WHERE state = 'QUEUED'
      ORDER BY priority DESC, created_at, rowid)sql");
  if (!select.ok()) return select.status();
  std::vector<QueuedRun> runs;
  for (;;) {
    Result<bool> row = select->Step();
    if (!row.ok()) return row.status();
    if (!*row) return runs;
    runs.push_back(
        {select->ColumnText(0), select->ColumnInt(1), select->ColumnInt(2), select->ColumnInt(3)});
  }
}

Result<std::vector<std::pair<std::string, double>>> RunStore::RetryWaitRuns() const {
  Result<Statement> select = Statement::Prepare(db_, R"sql(
      SELECT r.id, max(0.0, coalesce((julianday(s.retry_at) - julianday('now')) * 86400.0, 0.0))
      FROM runs AS r LEFT JOIN supervision AS s ON s.run_id = r.id
      WHERE r.state = 'RETRY_WAIT')sql");
  if (!select.ok()) return select.status();
  std::vector<std::pair<std::string, double>> runs;
  for (;;) {
    Result<bool> row = select->Step();
    if (!row.ok()) return row.status();
    if (!*row) return runs;
    runs.emplace_back(select->ColumnText(0), select->ColumnDouble(1));
  }
}

Result<std::vector<AttemptRow>> RunStore::OpenAttempts() const {
  Result<Statement> select = Statement::Prepare(
      db_, fmt::format("SELECT {} FROM attempts WHERE ended_at IS NULL ORDER BY run_id, attempt",
                       kAttemptColumns));
  if (!select.ok()) return select.status();
  return ReadAttempts(*select);
}

Result<std::vector<AttemptRow>> RunStore::Attempts(const std::string& run_id) const {
  Result<Statement> select = Statement::Prepare(
      db_,
      fmt::format("SELECT {} FROM attempts WHERE run_id = ? ORDER BY attempt", kAttemptColumns));
  if (!select.ok()) return select.status();
  select->Bind(1, run_id);
  return ReadAttempts(*select);
}

Result<Supervision> RunStore::SupervisionOf(const std::string& run_id) const {
  Result<Statement> select = Statement::Prepare(db_, R"sql(
      SELECT ingest_offset, complete_step, budget_from_attempt,
             max(0.0, (julianday(retry_at) - julianday('now')) * 86400.0)
      FROM supervision WHERE run_id = ?)sql");
  if (!select.ok()) return select.status();
  select->Bind(1, run_id);
  Result<bool> row = select->Step();
  if (!row.ok()) return row.status();
  Supervision supervision;
  if (!*row) return supervision;
  supervision.ingest_offset = select->ColumnInt(0);
  if (select->ColumnType(1) != SQLITE_NULL) supervision.complete_step = select->ColumnInt(1);
  supervision.budget_from_attempt = select->ColumnInt(2);
  if (select->ColumnType(3) != SQLITE_NULL) supervision.retry_in_s = select->ColumnDouble(3);
  return supervision;
}

Result<int64_t> RunStore::BeginAttempt(const AttemptStart& start) {
  Result<Transaction> transaction = Transaction::Begin(db_);
  if (!transaction.ok()) return transaction.status();
  Result<RunState> state = CurrentState(db_, start.run_id);
  if (!state.ok()) return state.status();
  if (*state != RunState::kQueued) {
    return Status::FailedPrecondition(
        fmt::format("run {}: cannot launch a run that is {}", start.run_id, ToString(*state)));
  }
  // The second guard against running twice: a process of an earlier attempt may still exist.
  Result<Statement> open =
      Statement::Prepare(db_, "SELECT attempt FROM attempts WHERE run_id = ? AND ended_at IS NULL");
  if (!open.ok()) return open.status();
  open->Bind(1, start.run_id);
  Result<bool> has_open = open->Step();
  if (!has_open.ok()) return has_open.status();
  if (*has_open) {
    return Status::FailedPrecondition(
        fmt::format("run {}: attempt {} has not ended; refusing to start another", start.run_id,
                    open->ColumnInt(0)));
  }

  ISOFLOP_RETURN_IF_ERROR(
      ChangeState(db_, start.run_id, RunState::kLaunching,
                  fmt::format("{} launch on {} ({})", start.launcher, start.host, start.slots)));
  Result<Statement> update = Statement::Prepare(db_, "UPDATE runs SET host = ? WHERE id = ?");
  if (!update.ok()) return update.status();
  update->Bind(1, start.host).Bind(2, start.run_id);
  ISOFLOP_RETURN_IF_ERROR(update->Run());
  Result<Statement> count = Statement::Prepare(db_, "SELECT attempts FROM runs WHERE id = ?");
  if (!count.ok()) return count.status();
  count->Bind(1, start.run_id);
  Result<bool> row = count->Step();
  if (!row.ok()) return row.status();
  const int64_t attempt = count->ColumnInt(0);

  Result<Statement> insert = Statement::Prepare(db_, R"sql(
      INSERT INTO attempts (run_id, attempt, launcher, host, slots, log_path)
      VALUES (?, ?, ?, ?, ?, ?))sql");
  if (!insert.ok()) return insert.status();
  insert->Bind(1, start.run_id)
      .Bind(2, attempt)
      .Bind(3, start.launcher)
      .Bind(4, start.host)
      .Bind(5, start.slots)
      .Bind(6, start.log_path);
  ISOFLOP_RETURN_IF_ERROR(
      insert->Run(fmt::format("run {}: recording attempt {}", start.run_id, attempt)));
  ISOFLOP_RETURN_IF_ERROR(EnsureSupervision(db_, start.run_id));
  ISOFLOP_RETURN_IF_ERROR(transaction->Commit());
  return attempt;
}

Status RunStore::AttemptRunning(const std::string& run_id, int64_t attempt, int64_t pid,
                                const json& handle, const json& provenance) {
  Result<Transaction> transaction = Transaction::Begin(db_);
  if (!transaction.ok()) return transaction.status();
  const std::string context = fmt::format("run {}: attempt {} started", run_id, attempt);
  Result<Statement> update_attempt = Statement::Prepare(
      db_, "UPDATE attempts SET pid = ?, handle = ? WHERE run_id = ? AND attempt = ?");
  if (!update_attempt.ok()) return update_attempt.status();
  update_attempt->Bind(1, pid).Bind(2, handle.dump()).Bind(3, run_id).Bind(4, attempt);
  ISOFLOP_RETURN_IF_ERROR(update_attempt->Run(context));
  if (sqlite3_changes(db_) != 1) {
    return Status::NotFound(fmt::format("run {}: no attempt {}", run_id, attempt));
  }
  ISOFLOP_RETURN_IF_ERROR(ChangeState(db_, run_id, RunState::kRunning,
                                      fmt::format("attempt {} started, pid {}", attempt, pid)));
  if (provenance.is_object()) {
    Result<Statement> update_run = Statement::Prepare(
        db_, "UPDATE runs SET provenance = json_patch(coalesce(provenance, '{}'), ?) WHERE id = ?");
    if (!update_run.ok()) return update_run.status();
    update_run->Bind(1, provenance.dump(-1, ' ', false, json::error_handler_t::replace))
        .Bind(2, run_id);
    ISOFLOP_RETURN_IF_ERROR(update_run->Run(context));
  }
  Result<Statement> heartbeat = Statement::Prepare(
      db_, fmt::format("UPDATE supervision SET heartbeat_at = {} WHERE run_id = ?", kNow));
  if (!heartbeat.ok()) return heartbeat.status();
  heartbeat->Bind(1, run_id);
  ISOFLOP_RETURN_IF_ERROR(heartbeat->Run(context));
  return transaction->Commit();
}

Status RunStore::EndAttempt(const AttemptEnd& end) {
  Result<Transaction> transaction = Transaction::Begin(db_);
  if (!transaction.ok()) return transaction.status();
  const std::string context = fmt::format("run {}: ending attempt {}", end.run_id, end.attempt);
  Result<Statement> close = Statement::Prepare(
      db_, fmt::format("UPDATE attempts SET ended_at = {}, exit_status = ?, cause = ? "
                       "WHERE run_id = ? AND attempt = ? AND ended_at IS NULL",
                       kNow));
  if (!close.ok()) return close.status();
  if (end.exit_status) {
    close->Bind(1, *end.exit_status);
  } else {
    close->BindNull(1);
  }
  close->Bind(2, end.cause).Bind(3, end.run_id).Bind(4, end.attempt);
  ISOFLOP_RETURN_IF_ERROR(close->Run(context));
  // Already closed: this exit was handled before (a duplicate notice); handling it again could
  // schedule a second retry.
  if (sqlite3_changes(db_) == 0) return Status::OK();

  ISOFLOP_RETURN_IF_ERROR(ChangeState(db_, end.run_id, end.state, end.reason));
  if (end.retry_delay_s) {
    ISOFLOP_RETURN_IF_ERROR(ChangeState(db_, end.run_id, RunState::kRetryWait, end.retry_reason));
    ISOFLOP_RETURN_IF_ERROR(EnsureSupervision(db_, end.run_id));
    Result<Statement> schedule = Statement::Prepare(db_, R"sql(
        UPDATE supervision
        SET retry_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('%+.3f seconds', ?))
        WHERE run_id = ?)sql");
    if (!schedule.ok()) return schedule.status();
    schedule->Bind(1, *end.retry_delay_s).Bind(2, end.run_id);
    ISOFLOP_RETURN_IF_ERROR(schedule->Run(context));
  }
  return transaction->Commit();
}

Status RunStore::Ingest(const std::vector<IngestBatch>& batches) {
  if (batches.empty()) return Status::OK();
  Result<Transaction> transaction = Transaction::Begin(db_);
  if (!transaction.ok()) return transaction.status();
  Result<Statement> advance = Statement::Prepare(db_, fmt::format(R"sql(
      UPDATE supervision
      SET ingest_offset = ?1,
          heartbeat_at = CASE WHEN ?2 THEN {} ELSE heartbeat_at END,
          complete_step = coalesce(?3, complete_step)
      WHERE run_id = ?4)sql",
                                                                  kNow));
  if (!advance.ok()) return advance.status();
  Result<Statement> provenance = Statement::Prepare(
      db_, "UPDATE runs SET provenance = json_patch(coalesce(provenance, '{}'), ?) WHERE id = ?");
  if (!provenance.ok()) return provenance.status();

  for (const IngestBatch& batch : batches) {
    const std::string context = fmt::format("run {}: ingesting metrics.jsonl", batch.run_id);
    ISOFLOP_RETURN_IF_ERROR(InsertMetrics(db_, batch.metrics));
    ISOFLOP_RETURN_IF_ERROR(InsertEvals(db_, batch.evals));
    ISOFLOP_RETURN_IF_ERROR(InsertCheckpoints(db_, batch.checkpoints));
    if (batch.provenance.is_object()) {
      provenance->Reset();
      provenance->Bind(1, batch.provenance.dump(-1, ' ', false, json::error_handler_t::replace))
          .Bind(2, batch.run_id);
      ISOFLOP_RETURN_IF_ERROR(provenance->Run(context));
    }
    ISOFLOP_RETURN_IF_ERROR(EnsureSupervision(db_, batch.run_id));
    advance->Reset();
    advance->Bind(1, batch.end_offset).Bind(2, static_cast<int64_t>(batch.progressed));
    if (batch.complete_step) {
      advance->Bind(3, *batch.complete_step);
    } else {
      advance->BindNull(3);
    }
    advance->Bind(4, batch.run_id);
    ISOFLOP_RETURN_IF_ERROR(advance->Run(context));
  }
  return transaction->Commit();
}

Status RunStore::RetryDue(const std::string& run_id) {
  Result<Transaction> transaction = Transaction::Begin(db_);
  if (!transaction.ok()) return transaction.status();
  Result<RunState> state = CurrentState(db_, run_id);
  if (!state.ok()) return state.status();
  if (*state != RunState::kRetryWait) return Status::OK();
  ISOFLOP_RETURN_IF_ERROR(ChangeState(db_, run_id, RunState::kQueued, "retry wait over"));
  Result<Statement> clear =
      Statement::Prepare(db_, "UPDATE supervision SET retry_at = NULL WHERE run_id = ?");
  if (!clear.ok()) return clear.status();
  clear->Bind(1, run_id);
  ISOFLOP_RETURN_IF_ERROR(clear->Run());
  return transaction->Commit();
}

Result<std::vector<std::string>> RunStore::CancelRuns(const std::vector<std::string>& run_ids,
                                                      const std::string& reason) {
  Result<Transaction> transaction = Transaction::Begin(db_);
  if (!transaction.ok()) return transaction.status();
  std::vector<std::string> cancelled;
  for (const std::string& run_id : run_ids) {
    Result<RunState> state = CurrentState(db_, run_id);
    if (!state.ok()) return state.status();
    switch (*state) {
      case RunState::kPlanned:
      case RunState::kQueued:
      case RunState::kLaunching:
      case RunState::kRunning:
      case RunState::kRetryWait:
        ISOFLOP_RETURN_IF_ERROR(ChangeState(db_, run_id, RunState::kCancelled, reason));
        cancelled.push_back(run_id);
        break;
      case RunState::kCompleted:
      case RunState::kFailed:
      case RunState::kLost:
      case RunState::kCancelled:
        break;
    }
  }
  ISOFLOP_RETURN_IF_ERROR(transaction->Commit());
  return cancelled;
}

Result<std::vector<std::string>> RunStore::RequeueSweep(int64_t sweep_id,
                                                        const std::string& reason) {
  Result<Transaction> transaction = Transaction::Begin(db_);
  if (!transaction.ok()) return transaction.status();
  Result<bool> exists = SweepExists(db_, sweep_id);
  if (!exists.ok()) return exists.status();
  if (!*exists) return Status::NotFound(fmt::format("no sweep #{}", sweep_id));
  // A cancelled run whose worker is still stopping keeps its open attempt; queueing it now could
  // start a second worker in the same run directory, so it waits for the next resume.
  Result<Statement> select = Statement::Prepare(db_, R"sql(
      SELECT r.id FROM sweep_runs AS l JOIN runs AS r ON r.id = l.run_id
      WHERE l.sweep_id = ? AND r.state IN ('PLANNED', 'FAILED', 'LOST', 'CANCELLED')
        AND NOT EXISTS (SELECT 1 FROM attempts AS a WHERE a.run_id = r.id AND a.ended_at IS NULL)
      ORDER BY l.position)sql");
  if (!select.ok()) return select.status();
  select->Bind(1, sweep_id);
  Result<std::vector<std::string>> ids = ReadStrings(*select);
  if (!ids.ok()) return ids.status();
  Result<Statement> reset_budget = Statement::Prepare(db_, R"sql(
      UPDATE supervision SET retry_at = NULL,
                             budget_from_attempt = (SELECT attempts FROM runs WHERE id = ?1)
      WHERE run_id = ?1)sql");
  if (!reset_budget.ok()) return reset_budget.status();
  for (const std::string& run_id : *ids) {
    ISOFLOP_RETURN_IF_ERROR(ChangeState(db_, run_id, RunState::kQueued, reason));
    ISOFLOP_RETURN_IF_ERROR(EnsureSupervision(db_, run_id));
    reset_budget->Reset();
    reset_budget->Bind(1, run_id);
    ISOFLOP_RETURN_IF_ERROR(
        reset_budget->Run(fmt::format("run {}: resetting its retry budgets", run_id)));
  }
  ISOFLOP_RETURN_IF_ERROR(transaction->Commit());
  return std::move(*ids);
}

Result<std::vector<std::string>> RunStore::SweepRunIds(int64_t sweep_id) const {
  Result<bool> exists = SweepExists(db_, sweep_id);
  if (!exists.ok()) return exists.status();
  if (!*exists) return Status::NotFound(fmt::format("no sweep #{}", sweep_id));
  Result<Statement> select =
      Statement::Prepare(db_, "SELECT run_id FROM sweep_runs WHERE sweep_id = ? ORDER BY position");
  if (!select.ok()) return select.status();
  select->Bind(1, sweep_id);
  return ReadStrings(*select);
}

Result<std::vector<RunOutcome>> RunStore::RunOutcomes(int64_t sweep_id,
                                                      const std::string& metric) const {
  Result<bool> exists = SweepExists(db_, sweep_id);
  if (!exists.ok()) return exists.status();
  if (!*exists) return Status::NotFound(fmt::format("no sweep #{}", sweep_id));
  Result<Statement> select = Statement::Prepare(db_, R"sql(
      SELECT r.id, r.name, r.variant, r.size, r.budget, r.seed, r.state, r.params,
             r.params_nonemb, r.tokens_target, r.planned_flops,
             (SELECT value FROM evals WHERE run_id = r.id AND name = ?2 ORDER BY step DESC LIMIT 1)
      FROM sweep_runs AS l JOIN runs AS r ON r.id = l.run_id
      WHERE l.sweep_id = ?1 ORDER BY l.position)sql");
  if (!select.ok()) return select.status();
  select->Bind(1, sweep_id).Bind(2, metric);
  std::vector<RunOutcome> outcomes;
  for (;;) {
    Result<bool> row = select->Step();
    if (!row.ok()) return row.status();
    if (!*row) return outcomes;
    RunOutcome& run = outcomes.emplace_back();
    run.run_id = select->ColumnText(0);
    run.name = select->ColumnText(1);
    run.variant = select->ColumnText(2);
    run.size = select->ColumnText(3);
    run.budget = select->ColumnDouble(4);
    run.seed = select->ColumnInt(5);
    if (!Parse(select->ColumnText(6), &run.state)) {
      return Status::Corruption(
          fmt::format("run {}: unknown state '{}'", run.run_id, select->ColumnText(6)));
    }
    run.params = select->ColumnInt(7);
    run.params_nonemb = select->ColumnInt(8);
    run.tokens = select->ColumnInt(9);
    run.planned_flops = select->ColumnDouble(10);
    if (select->ColumnType(11) != SQLITE_NULL) run.final_value = select->ColumnDouble(11);
  }
}

Result<QueryResult> RunStore::Query(const std::string& sql) const {
  ReadOnlyScope read_only(db_);
  Result<Statement> statement = Statement::Prepare(db_, sql);
  if (!statement.ok()) {
    if (statement.status().code() == Status::Code::kPermissionDenied) {
      return Status::PermissionDenied(
          fmt::format("queries are read-only: {}", statement.status().message()));
    }
    return statement.status();
  }
  // A second opinion: some statements (VACUUM) never reach the authorizer.
  if (!statement->ReadOnly()) {
    return Status::PermissionDenied(fmt::format("queries are read-only: \"{}\" would write", sql));
  }
  QueryResult result;
  const int columns = statement->ColumnCount();
  for (int c = 0; c < columns; ++c) result.columns.push_back(statement->ColumnName(c));
  for (;;) {
    Result<bool> row = statement->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    std::vector<json>& values = result.rows.emplace_back();
    values.reserve(static_cast<size_t>(columns));
    for (int c = 0; c < columns; ++c) values.push_back(ColumnValue(*statement, c));
  }
  return result;
}

}  // namespace isoflop
