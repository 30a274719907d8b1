// Renders a QueryResult for people and for other programs: `isoflop results --format
// table|csv|json` and `isoflop query`.
//
//   table: aligned columns under a header and a rule; numbers right-aligned, reals to 6 significant
//          digits, NULL as an empty cell, control characters in text shown escaped so rows stay
//          rows.
//   csv:   RFC 4180 quoting (a field with a comma, quote, CR or LF is quoted, quotes doubled), a
//   header
//          row, LF line ends; reals in shortest round-trip form, NULL as an empty field.
//   json:  an array with one object per row (one per line), keys in column order (a repeated column
//          name gets a suffix: "id", "id:2"), values as stored.
// Every format ends with a newline; an empty result is still a header (table, csv) or "[]" (json).
#pragma once

#include <string>

#include "common/store/run_store.h"

namespace isoflop {

enum class ResultFormat { kTable, kCsv, kJson };
const char* ToString(ResultFormat);                   // "table", "csv", "json"
bool Parse(const std::string& s, ResultFormat* out);  // the names ToString gives

std::string FormatTable(const QueryResult& result);
std::string FormatCsv(const QueryResult& result);
std::string FormatJson(const QueryResult& result);
std::string FormatResult(const QueryResult& result, ResultFormat format);

}  // namespace isoflop
