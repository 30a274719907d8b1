// Located YAML: a YAML document as a tree whose every node knows its file, line and column.
//
// yaml-cpp's own node graph forgets where keys were written and silently keeps duplicate keys, and
// both matter for messages like "x.yaml:12:5: variants.lowrank.ffn.rnak: unknown key". So the
// parser is driven through its event interface and builds this tree instead. Scalars stay untyped
// text, as YAML leaves them: the schema decides whether "1e15" is a number where it appears.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/sweep/diagnostics.h"

namespace isoflop::sweep {

class YamlNode {
 public:
  enum class Kind { kNull, kScalar, kList, kMap };
  struct Entry;

  YamlNode() = default;
  static YamlNode Scalar(std::string text, Location location, bool quoted = false);

  Kind kind = Kind::kNull;
  Location location;
  std::string text;             // kScalar: the value, escapes resolved
  bool quoted = false;          // kScalar written in quotes or as a block scalar
  std::vector<YamlNode> items;  // kList
  std::vector<Entry> entries;   // kMap, in file order

  bool is_null() const { return kind == Kind::kNull; }
  bool is_scalar() const { return kind == Kind::kScalar; }
  bool is_list() const { return kind == Kind::kList; }
  bool is_map() const { return kind == Kind::kMap; }
  // The value under `key` in a map (the last one, were there duplicates), or nullptr.
  const YamlNode* Find(std::string_view key) const;
};

struct YamlNode::Entry {
  YamlNode key;  // a scalar; its location is where unknown-key errors point
  YamlNode value;
};

// Parses one YAML document. Syntax errors, duplicate keys, non-scalar keys, tags and aliases that
// would blow the document up are reported to `diagnostics` (nullopt then). An empty document is a
// null node at 1:1.
std::optional<YamlNode> ParseYaml(std::string_view text, std::shared_ptr<const SourceFile> file,
                                  Diagnostics* diagnostics);

// Scalar typing, YAML 1.2 core schema style but deliberately narrow: numbers are decimal
// ([-+]digits[.digits][e[-+]digits]), booleans are true/false (not yes/no/on/off, so `no` stays a
// string), null is a missing value, `~` or `null`. Quoting does not matter: "3e-4" is the number
// 3e-4 where a number is expected.
std::optional<double> AsNumber(const YamlNode& node);
std::optional<int64_t> AsInteger(const YamlNode& node);  // a number with no fractional part
std::optional<bool> AsBool(const YamlNode& node);

// For messages: "a map", "a list", "nothing", 42, or "text" in quotes (shortened when long).
std::string Describe(const YamlNode& node);

// Field paths as messages print them: "sizes.s.n_head", "budgets.flops[1]".
std::string JoinPath(std::string_view parent, std::string_view key);
std::string IndexPath(std::string_view parent, size_t index);
// "train.optimizer.lr" -> {"train", "optimizer", "lr"}.
std::vector<std::string> SplitPath(std::string_view path);

// Deep merge for includes and overrides: maps merge key by key (overlay wins, recursively); lists,
// scalars and nulls in the overlay replace whatever was there.
YamlNode MergeYaml(YamlNode base, const YamlNode& overlay);

}  // namespace isoflop::sweep
