// Thin RAII over the SQLite C API for the store's own use: statements, transactions, errors.
//
// Every failure becomes a Status carrying SQLite's message and the context the caller names (the
// database path, the statement), so an error in a log says what was being done to which file.
// Internal to isoflop_store: nothing outside common/store/ includes this header.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace isoflop::sql {

// "CONTEXT: SQLite's message". Constraint violations and SQL errors are InvalidArgument (rows or
// SQL the schema refuses), SQLITE_AUTH, _READONLY and _PERM are PermissionDenied, SQLITE_CORRUPT
// and _NOTADB are Corruption, the rest (I/O, locks, memory) IOError.
Status Error(sqlite3* db, int rc, std::string_view context);

// The same status with "prefix: " before its message (the database path, the run being stored).
Status WithContext(const Status& status, std::string_view prefix);

// Runs a script of statements without results (migrations, PRAGMAs, BEGIN/COMMIT).
Status Exec(sqlite3* db, const std::string& script, std::string_view context);

// A prepared statement, finalized on destruction. Bind indexes are 1-based and column indexes
// 0-based, as in the C API. A statement may be stepped, reset and rebound any number of times.
class Statement {
 public:
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Prepares exactly one statement: SQL text left after it that is more than whitespace, comments
  // and semicolons is an error, so "SELECT 1; DELETE FROM runs" cannot smuggle in a second one.
  static Result<Statement> Prepare(sqlite3* db, std::string_view sql);

  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, int value) { return Bind(index, static_cast<int64_t>(value)); }
  Statement& Bind(int index, double value);
  Statement& Bind(int index, std::string_view value);  // copied by SQLite (SQLITE_TRANSIENT)
  Statement& BindNull(int index);
  // A failed bind (index out of range, out of memory) is reported by the next Step or Run, so that
  // a chain of binds needs one check, not one per call.

  // true: a row is ready to read; false: the statement has finished. An error message starts with
  // `context` ("appending metrics of run R step S"), or with the statement's SQL when it is empty.
  Result<bool> Step(std::string_view context = {});
  // Steps a statement that returns no rows (INSERT, UPDATE) to completion.
  Status Run(std::string_view context = {});
  // Ready to step again from the start; bindings are kept.
  void Reset();

  int ColumnCount() const;
  std::string ColumnName(int column) const;
  int ColumnType(
      int column) const;  // SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB, SQLITE_NULL
  int64_t ColumnInt(int column) const;
  double ColumnDouble(int column) const;
  std::string ColumnText(int column) const;  // "" for NULL
  std::string_view ColumnBlob(int column) const;

  bool ReadOnly() const;  // sqlite3_stmt_readonly: the statement cannot change the database file
  std::string_view Sql() const;

 private:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  int bind_rc_ = SQLITE_OK;
};

// One write transaction. Begin takes the write lock at once (BEGIN IMMEDIATE) so that a second
// writer waits in busy_timeout at the start instead of failing with SQLITE_BUSY halfway through.
// Destroying an uncommitted transaction rolls it back: an early return on error leaves the database
// as it was.
class Transaction {
 public:
  static Result<Transaction> Begin(sqlite3* db);
  ~Transaction();
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  Status Commit();

 private:
  explicit Transaction(sqlite3* db) : db_(db) {}
  sqlite3* db_ = nullptr;  // null once committed or moved from
};

// The value of a one-row, one-column query such as "PRAGMA user_version"; nullopt when no row.
Result<std::optional<int64_t>> QueryInt(sqlite3* db, const std::string& sql);

}  // namespace isoflop::sql
