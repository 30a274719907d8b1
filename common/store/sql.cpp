#include "common/store/sql.h"

#include <fmt/format.h>

namespace isoflop::sql {

namespace {

// The mapping documented at Error() in sql.h.
Status StatusFor(int rc, std::string message) {
  switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
    case SQLITE_ERROR:
    case SQLITE_RANGE:
    case SQLITE_TOOBIG:
    case SQLITE_MISMATCH:
      return Status::InvalidArgument(std::move(message));
    case SQLITE_AUTH:
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return Status::PermissionDenied(std::move(message));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::Corruption(std::move(message));
    default:
      return Status::IOError(std::move(message));
  }
}

}  // namespace

Status Error(sqlite3* db, int rc, std::string_view context) {
  // sqlite3_errmsg describes the most recent failure on `db`; trust it only when it is this one.
  const bool db_knows = db != nullptr && (sqlite3_extended_errcode(db) & 0xff) == (rc & 0xff);
  return StatusFor(
      rc, fmt::format("{}: {}", context, db_knows ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
}

Status WithContext(const Status& status, std::string_view prefix) {
  if (status.ok()) return status;
  std::string message = fmt::format("{}: {}", prefix, status.message());
  switch (status.code()) {
    case Status::Code::kInvalidArgument:
      return Status::InvalidArgument(std::move(message));
    case Status::Code::kNotFound:
      return Status::NotFound(std::move(message));
    case Status::Code::kCorruption:
      return Status::Corruption(std::move(message));
    case Status::Code::kFailedPrecondition:
      return Status::FailedPrecondition(std::move(message));
    case Status::Code::kPermissionDenied:
      return Status::PermissionDenied(std::move(message));
    case Status::Code::kInternal:
      return Status::Internal(std::move(message));
    case Status::Code::kIOError:
    case Status::Code::kOk:
      break;
  }
  return Status::IOError(std::move(message));
}

Status Exec(sqlite3* db, const std::string& script, std::string_view context) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db, script.c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return Status::OK();
  Status status = StatusFor(rc, fmt::format("{}: {}", context, err ? err : sqlite3_errstr(rc)));
  sqlite3_free(err);
  return status;
}

Statement::~Statement() {
  sqlite3_finalize(stmt_);
}

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_), stmt_(other.stmt_), bind_rc_(other.bind_rc_) {
  other.stmt_ = nullptr;
}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    db_ = other.db_;
    stmt_ = other.stmt_;
    bind_rc_ = other.bind_rc_;
    other.stmt_ = nullptr;
  }
  return *this;
}

Result<Statement> Statement::Prepare(sqlite3* db, std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  const char* rest = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt, &rest);
  if (rc != SQLITE_OK) return Error(db, rc, fmt::format("preparing \"{}\"", sql));
  if (stmt == nullptr) {
    return Status::InvalidArgument(fmt::format("no SQL statement in \"{}\"", sql));
  }
  Statement statement(db, stmt);
  std::string_view remainder = sql.substr(static_cast<size_t>(rest - sql.data()));
  // Let SQLite's own tokenizer decide what is left: whitespace, comments and stray semicolons
  // prepare to nothing; anything else, even a statement that fails to prepare, is a second
  // statement.
  while (!remainder.empty()) {
    sqlite3_stmt* next = nullptr;
    rc = sqlite3_prepare_v2(db, remainder.data(), static_cast<int>(remainder.size()), &next, &rest);
    sqlite3_finalize(next);
    if (rc != SQLITE_OK || next != nullptr) {
      return Status::InvalidArgument(fmt::format(
          "only one SQL statement is allowed; found more after \"{}\"", statement.Sql()));
    }
    remainder = remainder.substr(static_cast<size_t>(rest - remainder.data()));
  }
  return statement;
}

Statement& Statement::Bind(int index, int64_t value) {
  const int rc = sqlite3_bind_int64(stmt_, index, value);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

Statement& Statement::Bind(int index, double value) {
  const int rc = sqlite3_bind_double(stmt_, index, value);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

Statement& Statement::Bind(int index, std::string_view value) {
  const int rc =
      sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

Statement& Statement::BindNull(int index) {
  const int rc = sqlite3_bind_null(stmt_, index);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

Result<bool> Statement::Step(std::string_view context) {
  const int rc = bind_rc_ != SQLITE_OK ? bind_rc_ : sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return Error(db_, rc,
               context.empty() ? fmt::format("running \"{}\"", Sql()) : std::string(context));
}

Status Statement::Run(std::string_view context) {
  Result<bool> row = Step(context);
  if (!row.ok()) return row.status();
  while (*row) {
    row = Step(context);
    if (!row.ok()) return row.status();
  }
  return Status::OK();
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
}

int Statement::ColumnCount() const {
  return sqlite3_column_count(stmt_);
}

std::string Statement::ColumnName(int column) const {
  const char* name = sqlite3_column_name(stmt_, column);
  return name ? name : "";
}

int Statement::ColumnType(int column) const {
  return sqlite3_column_type(stmt_, column);
}

int64_t Statement::ColumnInt(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

double Statement::ColumnDouble(int column) const {
  return sqlite3_column_double(stmt_, column);
}

std::string Statement::ColumnText(int column) const {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  if (text == nullptr) return "";
  return std::string(text, static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

std::string_view Statement::ColumnBlob(int column) const {
  const void* blob = sqlite3_column_blob(stmt_, column);
  if (blob == nullptr) return {};
  return {static_cast<const char*>(blob), static_cast<size_t>(sqlite3_column_bytes(stmt_, column))};
}

bool Statement::ReadOnly() const {
  return sqlite3_stmt_readonly(stmt_) != 0;
}

std::string_view Statement::Sql() const {
  const char* text = sqlite3_sql(stmt_);
  return text ? text : "";
}

Result<Transaction> Transaction::Begin(sqlite3* db) {
  ISOFLOP_RETURN_IF_ERROR(Exec(db, "BEGIN IMMEDIATE", "beginning a write transaction"));
  return Transaction(db);
}

Transaction::~Transaction() {
  if (db_ != nullptr) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

Transaction::Transaction(Transaction&& other) noexcept : db_(other.db_) {
  other.db_ = nullptr;
}

Status Transaction::Commit() {
  Status status = Exec(db_, "COMMIT", "committing");
  // On failure SQLite may still hold the transaction open (SQLITE_BUSY on COMMIT); the destructor's
  // ROLLBACK then ends it, so the caller sees all or nothing either way.
  if (status.ok()) db_ = nullptr;
  return status;
}

Result<std::optional<int64_t>> QueryInt(sqlite3* db, const std::string& sql) {
  Result<Statement> statement = Statement::Prepare(db, sql);
  if (!statement.ok()) return statement.status();
  Result<bool> row = statement->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<int64_t>();
  return std::optional<int64_t>(statement->ColumnInt(0));
}

}  // namespace isoflop::sql
