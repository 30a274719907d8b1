#include "common/store/results_format.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <string_view>
#include <unordered_map>

namespace isoflop {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// Columns are measured in code points, so that a name like "Ωmega" does not push its row out of
// line.
size_t DisplayWidth(std::string_view text) {
  return static_cast<size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

// One cell per line of the table: a newline or tab inside a value would break the grid.
std::string EscapeControl(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (byte < 0x20 || byte == 0x7f) {
      out += fmt::format("\\x{:02x}", byte);
    } else {
      out += c;
    }
  }
  return out;
}

// A value as text: reals in full (shortest round-trip) precision or to `real_digits` significant
// digits.
std::string ScalarText(const json& value, int real_digits) {
  switch (value.type()) {
    case json::value_t::null:
      return "";
    case json::value_t::string:
      return value.get<std::string>();
    case json::value_t::number_integer:
      return std::to_string(value.get<int64_t>());
    case json::value_t::number_unsigned:
      return std::to_string(value.get<uint64_t>());
    case json::value_t::number_float:
      return real_digits > 0 ? fmt::format("{:.{}g}", value.get<double>(), real_digits)
                             : fmt::format("{}", value.get<double>());
    case json::value_t::boolean:
      return value.get<bool>() ? "true" : "false";
    default:
      return value.dump(-1, ' ', false, json::error_handler_t::replace);
  }
}

std::string CsvField(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  quoted += '"';
  return quoted;
}

constexpr int kTableRealDigits = 6;

}  // namespace

const char* ToString(ResultFormat format) {
  switch (format) {
    case ResultFormat::kTable:
      return "table";
    case ResultFormat::kCsv:
      return "csv";
    case ResultFormat::kJson:
      return "json";
  }
  return "?";
}

bool Parse(const std::string& s, ResultFormat* out) {
  for (ResultFormat format : {ResultFormat::kTable, ResultFormat::kCsv, ResultFormat::kJson}) {
    if (s == ToString(format)) {
      *out = format;
      return true;
    }
  }
  return false;
}

std::string FormatTable(const QueryResult& result) {
  const size_t columns = result.columns.size();
  std::vector<std::vector<std::string>> cells(result.rows.size());
  std::vector<size_t> width(columns);
  std::vector<bool> numeric(columns, true);  // all non-null values are numbers: right-align
  for (size_t c = 0; c < columns; ++c) width[c] = DisplayWidth(EscapeControl(result.columns[c]));
  for (size_t r = 0; r < result.rows.size(); ++r) {
    for (size_t c = 0; c < columns; ++c) {
      const json& value = c < result.rows[r].size() ? result.rows[r][c] : json();
      if (!value.is_null() && !value.is_number()) numeric[c] = false;
      cells[r].push_back(EscapeControl(ScalarText(value, kTableRealDigits)));
      width[c] = std::max(width[c], DisplayWidth(cells[r].back()));
    }
  }

  std::string out;
  auto append_line = [&](auto&& cell_text) {
    std::string line;
    for (size_t c = 0; c < columns; ++c) {
      const std::string text = cell_text(c);
      const std::string pad(width[c] - DisplayWidth(text), ' ');
      if (c > 0) line += "  ";
      line += numeric[c] ? pad + text : text + pad;
    }
    // Trailing blanks of a left-aligned last column are noise in a terminal and in diffs.
    line.erase(line.find_last_not_of(' ') + 1);
    out += line;
    out += '\n';
  };
  append_line([&](size_t c) { return EscapeControl(result.columns[c]); });
  append_line([&](size_t c) { return std::string(width[c], '-'); });
  for (const auto& row : cells) append_line([&](size_t c) { return row[c]; });
  return out;
}

std::string FormatCsv(const QueryResult& result) {
  std::string out;
  auto append_record = [&](size_t count, auto&& field_text) {
    for (size_t c = 0; c < count; ++c) {
      if (c > 0) out += ',';
      out += CsvField(field_text(c));
    }
    out += '\n';
  };
  append_record(result.columns.size(), [&](size_t c) { return result.columns[c]; });
  for (const auto& row : result.rows) {
    append_record(result.columns.size(), [&](size_t c) {
      return c < row.size() ? ScalarText(row[c], /*real_digits=*/0) : std::string();
    });
  }
  return out;
}

std::string FormatJson(const QueryResult& result) {
  // SQL allows two columns with one name (SELECT * over a join); an object does not. The second
  // "id" becomes "id:2" rather than silently replacing the first.
  std::vector<std::string> keys;
  std::unordered_map<std::string, int> seen;
  for (const std::string& column : result.columns) {
    const int occurrence = ++seen[column];
    keys.push_back(occurrence == 1 ? column : fmt::format("{}:{}", column, occurrence));
  }
  // One object per line: readable as is, and easy for line-oriented tools.
  std::string out = "[";
  for (size_t r = 0; r < result.rows.size(); ++r) {
    ordered_json object = ordered_json::object();
    for (size_t c = 0; c < keys.size(); ++c) {
      object[keys[c]] =
          c < result.rows[r].size() ? ordered_json(result.rows[r][c]) : ordered_json();
    }
    out += r == 0 ? "\n  " : ",\n  ";
    out += object.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
  }
  out += result.rows.empty() ? "]\n" : "\n]\n";
  return out;
}

std::string FormatResult(const QueryResult& result, ResultFormat format) {
  switch (format) {
    case ResultFormat::kTable:
      return FormatTable(result);
    case ResultFormat::kCsv:
      return FormatCsv(result);
    case ResultFormat::kJson:
      return FormatJson(result);
  }
  return "";
}

}  // namespace isoflop
