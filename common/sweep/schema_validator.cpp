#include "common/sweep/schema_validator.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <tuple>
#include <unordered_map>

#include "common/embedded.h"

namespace isoflop::sweep {

using Json = nlohmann::ordered_json;

namespace {

const std::set<std::string>& KnownKeywords() {
  static const std::set<std::string> kKeywords = {
      // annotations
      "$schema", "$id", "$comment", "$defs", "title", "description", "default", "examples",
      "errorMessage",
      // applicators and assertions
      "$ref", "type", "enum", "const", "properties", "additionalProperties", "propertyNames",
      "required", "minProperties", "maxProperties", "items", "prefixItems", "minItems", "maxItems",
      "uniqueItems", "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "minLength",
      "maxLength", "pattern", "allOf", "anyOf", "oneOf", "not"};
  return kKeywords;
}

const std::set<std::string>& KnownTypes() {
  static const std::set<std::string> kTypes = {"object",  "array",   "string", "number",
                                               "integer", "boolean", "null"};
  return kTypes;
}

std::string TypePhrase(const std::string& type) {
  if (type == "object") return "a map";
  if (type == "array") return "a list";
  if (type == "string") return "a string";
  if (type == "number") return "a number";
  if (type == "integer") return "an integer";
  if (type == "boolean") return "true or false";
  return "nothing";
}

bool HasType(const YamlNode& node, const std::string& type) {
  if (type == "object") return node.is_map();
  if (type == "array") return node.is_list();
  if (type == "string") return node.is_scalar();
  if (type == "number") return AsNumber(node).has_value();
  if (type == "integer") return AsInteger(node).has_value();
  if (type == "boolean") return AsBool(node).has_value();
  return node.is_null();
}

std::vector<std::string> TypesOf(const Json& type) {
  if (type.is_string()) return {type.get<std::string>()};
  std::vector<std::string> types;
  for (const Json& t : type) types.push_back(t.get<std::string>());
  return types;
}

std::string JsonValueText(const Json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number()) return FormatNumber(value.get<double>());
  return value.dump();
}

bool ScalarEquals(const YamlNode& node, const Json& value) {
  if (!node.is_scalar()) return value.is_null() && node.is_null();
  if (value.is_string()) return node.text == value.get<std::string>();
  if (value.is_number()) {
    const std::optional<double> number = AsNumber(node);
    return number && *number == value.get<double>();
  }
  if (value.is_boolean()) {
    const std::optional<bool> b = AsBool(node);
    return b && *b == value.get<bool>();
  }
  return false;
}

}  // namespace

std::string FormatNumber(double value) {
  if (std::trunc(value) == value && std::fabs(value) < 1e15) {
    return fmt::format("{}", static_cast<int64_t>(value));
  }
  return fmt::format("{}", value);
}

// ---------------------------------------------------------------------------------------------------
// Compilation: the schema is checked once, patterns are compiled once.

struct SchemaValidator::Compiled {
  Json root;
  std::unordered_map<std::string, std::regex> patterns;
};

struct SchemaValidator::Issue {
  enum class Kind { kType = 0, kValue = 1, kOther = 2 };
  Diagnostic diagnostic;
  Kind kind = Kind::kOther;
  // For a type or enum failure at the node itself, worded without errorMessage: what was expected
  // ("a map", "one of dense, lowrank"), so failed alternatives can be listed together.
  std::string expected;
};

namespace {

Status SchemaError(const std::string& pointer, const std::string& what) {
  return Status::InvalidArgument(
      fmt::format("sweep schema {}: {}", pointer.empty() ? "/" : pointer, what));
}

// Walks every subschema: unknown keywords, unresolvable $refs, bad types and patterns are errors.
Status CheckSchema(const Json& schema, const std::string& pointer, const Json& root,
                   std::unordered_map<std::string, std::regex>* patterns) {
  if (schema.is_boolean()) return Status::OK();
  if (!schema.is_object()) return SchemaError(pointer, "a schema must be an object or a boolean");
  for (const auto& [keyword, value] : schema.items()) {
    const std::string here = pointer + "/" + keyword;
    if (!KnownKeywords().count(keyword)) {
      return SchemaError(here, "keyword not supported by the loader's validator");
    }
    if (keyword == "$ref") {
      const std::string ref = value.is_string() ? value.get<std::string>() : "";
      if (ref.empty() || ref[0] != '#')
        return SchemaError(here, "only \"#/...\" refs are supported");
      const Json::json_pointer target(ref.substr(1));
      if (!root.contains(target)) return SchemaError(here, fmt::format("{} does not exist", ref));
    } else if (keyword == "type") {
      if (!value.is_string() && !value.is_array())
        return SchemaError(here, "expected a name or a list");
      for (const Json& t : value) {
        if (!t.is_string() || !KnownTypes().count(t.get<std::string>())) {
          return SchemaError(here, fmt::format("unknown type {}", t.dump()));
        }
      }
    } else if (keyword == "pattern") {
      try {
        patterns->emplace(value.get<std::string>(), std::regex(value.get<std::string>()));
      } catch (const std::exception& e) {
        return SchemaError(here, e.what());
      }
    } else if (keyword == "errorMessage") {
      if (!value.is_string() && !value.is_object()) {
        return SchemaError(here, "expected a string or a map from keyword to string");
      }
    } else if (keyword == "properties" || keyword == "$defs") {
      for (const auto& [name, sub] : value.items()) {
        ISOFLOP_RETURN_IF_ERROR(CheckSchema(sub, here + "/" + name, root, patterns));
      }
    } else if (keyword == "prefixItems" || keyword == "allOf" || keyword == "anyOf" ||
               keyword == "oneOf") {
      if (!value.is_array() || value.empty())
        return SchemaError(here, "expected a list of schemas");
      for (size_t i = 0; i < value.size(); ++i) {
        ISOFLOP_RETURN_IF_ERROR(
            CheckSchema(value[i], fmt::format("{}/{}", here, i), root, patterns));
      }
    } else if (keyword == "additionalProperties" || keyword == "propertyNames" ||
               keyword == "items" || keyword == "not") {
      ISOFLOP_RETURN_IF_ERROR(CheckSchema(value, here, root, patterns));
    } else if (keyword == "required" || keyword == "enum") {
      if (!value.is_array()) return SchemaError(here, "expected a list");
    }
  }
  return Status::OK();
}

std::optional<std::string> CustomMessage(const Json& schema, const char* keyword,
                                         const YamlNode& node) {
  auto it = schema.find("errorMessage");
  if (it == schema.end()) return std::nullopt;
  std::string text;
  if (it->is_string()) {
    text = it->get<std::string>();
  } else if (it->contains(keyword)) {
    text = (*it)[keyword].get<std::string>();
  } else {
    return std::nullopt;
  }
  const size_t at = text.find("{got}");
  if (at != std::string::npos) text.replace(at, 5, Describe(node));
  return text;
}

// The numeric keywords of one schema object that `value` violates, worded by the side it misses.
std::string ViolatedBound(const Json& s, double value) {
  auto number = [&](const char* keyword) -> std::optional<double> {
    auto it = s.find(keyword);
    if (it == s.end() || !it->is_number()) return std::nullopt;
    return it->get<double>();
  };
  if (auto lo = number("exclusiveMinimum"); lo && !(value > *lo)) {
    return *lo == 0 ? "expected a positive number"
                    : fmt::format("expected a number > {}", FormatNumber(*lo));
  }
  if (auto lo = number("minimum"); lo && !(value >= *lo)) {
    return *lo == 0 ? "expected a non-negative number"
                    : fmt::format("expected a number >= {}", FormatNumber(*lo));
  }
  if (auto hi = number("exclusiveMaximum"); hi && !(value < *hi)) {
    return fmt::format("expected a number < {}", FormatNumber(*hi));
  }
  if (auto hi = number("maximum"); hi && !(value <= *hi)) {
    return fmt::format("expected a number <= {}", FormatNumber(*hi));
  }
  return "";
}

}  // namespace

SchemaValidator::SchemaValidator(std::unique_ptr<Compiled> compiled)
    : compiled_(std::move(compiled)) {}
SchemaValidator::SchemaValidator(SchemaValidator&&) noexcept = default;
SchemaValidator& SchemaValidator::operator=(SchemaValidator&&) noexcept = default;
SchemaValidator::~SchemaValidator() = default;

Result<SchemaValidator> SchemaValidator::Create(std::string_view schema_json) {
  auto compiled = std::make_unique<Compiled>();
  compiled->root = Json::parse(schema_json, nullptr, /*allow_exceptions=*/false);
  if (compiled->root.is_discarded()) {
    return Status::InvalidArgument("sweep schema: not valid JSON");
  }
  ISOFLOP_RETURN_IF_ERROR(CheckSchema(compiled->root, "", compiled->root, &compiled->patterns));
  return SchemaValidator(std::move(compiled));
}

Result<SchemaValidator> SchemaValidator::ForSweeps() {
  for (int i = 0; i < isoflop_schemas::kFileCount; ++i) {
    if (isoflop_schemas::kFiles[i].name == "sweep.schema.json") {
      return Create(isoflop_schemas::kFiles[i].text);
    }
  }
  return Status::Internal("sweep.schema.json is not embedded in this binary");
}

const Json& SchemaValidator::root() const {
  return compiled_->root;
}

const Json& SchemaValidator::Resolve(const Json& schema) const {
  const Json* s = &schema;
  // Schemas are checked at creation, so every ref resolves; the bound only stops a ref cycle.
  for (int hops = 0; hops < 32 && s->is_object() && s->contains("$ref"); ++hops) {
    s = &compiled_->root.at(Json::json_pointer((*s)["$ref"].get<std::string>().substr(1)));
  }
  return *s;
}

void SchemaValidator::Validate(const YamlNode& node, const Json& schema, const std::string& path,
                               Diagnostics* diagnostics) const {
  std::vector<Issue> issues;
  Check(node, schema, path, &issues);
  for (Issue& issue : issues) diagnostics->Add(std::move(issue.diagnostic));
}

void SchemaValidator::Check(const YamlNode& node, const Json& schema, const std::string& path,
                            std::vector<Issue>* issues) const {
  auto add = [&](Issue::Kind kind, std::string message, std::string expected = "",
                 const YamlNode* at = nullptr, std::string at_path = "") {
    Issue issue;
    issue.diagnostic =
        Diagnostic{(at ? at : &node)->location, at ? at_path : path, std::move(message)};
    issue.kind = kind;
    issue.expected = std::move(expected);
    issues->push_back(std::move(issue));
  };
  if (schema.is_boolean()) {
    if (!schema.get<bool>()) add(Issue::Kind::kType, "not allowed here");
    return;
  }
  if (auto ref = schema.find("$ref"); ref != schema.end()) {
    Check(node, compiled_->root.at(Json::json_pointer(ref->get<std::string>().substr(1))), path,
          issues);
  }

  if (auto type = schema.find("type"); type != schema.end()) {
    const std::vector<std::string> types = TypesOf(*type);
    if (std::none_of(types.begin(), types.end(),
                     [&](const std::string& t) { return HasType(node, t); })) {
      std::vector<std::string> phrases;
      for (const std::string& t : types) phrases.push_back(TypePhrase(t));
      const std::string expected = JoinAlternatives(phrases);
      if (auto custom = CustomMessage(schema, "type", node)) {
        add(Issue::Kind::kType, *custom);
      } else {
        add(Issue::Kind::kType, fmt::format("expected {}, got {}", expected, Describe(node)),
            expected);
      }
      return;  // every other check would only repeat the mismatch
    }
  }

  if (auto values = schema.find("enum"); values != schema.end()) {
    if (std::none_of(values->begin(), values->end(),
                     [&](const Json& v) { return ScalarEquals(node, v); })) {
      std::vector<std::string> names;
      for (const Json& v : *values) names.push_back(JsonValueText(v));
      const std::string expected =
          names.size() == 1 ? names[0] : "one of " + JoinAlternatives(names, ", ");
      if (auto custom = CustomMessage(schema, "enum", node)) {
        add(Issue::Kind::kValue, *custom);
      } else {
        add(Issue::Kind::kValue,
            fmt::format("expected {}, got {}{}", expected, Describe(node),
                        node.is_scalar() ? DidYouMean(node.text, names) : ""),
            expected);
      }
      return;
    }
  }
  if (auto value = schema.find("const"); value != schema.end() && !ScalarEquals(node, *value)) {
    const std::string expected = JsonValueText(*value);
    add(Issue::Kind::kValue,
        CustomMessage(schema, "const", node)
            .value_or(fmt::format("expected {}, got {}", expected, Describe(node))),
        expected);
    return;
  }

  if (node.is_scalar()) {
    if (const std::optional<double> number = AsNumber(node)) {
      if (std::string bound = ViolatedBound(schema, *number); !bound.empty()) {
        add(Issue::Kind::kValue, fmt::format("{}, got {}", bound, node.text));
      }
    }
    bool length_ok = true;
    if (auto max = schema.find("maxLength"); max != schema.end() && node.text.size() > *max) {
      length_ok = false;
      add(Issue::Kind::kValue, CustomMessage(schema, "maxLength", node)
                                   .value_or(fmt::format("expected at most {} characters, got {}",
                                                         max->get<size_t>(), node.text.size())));
    }
    if (auto min = schema.find("minLength"); min != schema.end() && node.text.size() < *min) {
      length_ok = false;
      add(Issue::Kind::kValue, CustomMessage(schema, "minLength", node)
                                   .value_or(fmt::format("expected at least {} characters, got {}",
                                                         min->get<size_t>(), Describe(node))));
    }
    // Long texts skip the regex: libstdc++'s matcher recurses per character.
    if (auto pattern = schema.find("pattern"); pattern != schema.end() && length_ok) {
      const std::regex& re = compiled_->patterns.at(pattern->get<std::string>());
      if (node.text.size() > 4096 || !std::regex_search(node.text, re)) {
        add(Issue::Kind::kValue,
            CustomMessage(schema, "pattern", node)
                .value_or(fmt::format("expected text matching {}, got {}",
                                      pattern->get<std::string>(), Describe(node))));
      }
    }
  }
  if (node.is_map()) CheckMap(node, schema, path, issues);
  if (node.is_list()) CheckList(node, schema, path, issues);

  if (auto all = schema.find("allOf"); all != schema.end()) {
    for (const Json& sub : *all) Check(node, sub, path, issues);
  }
  CheckAlternatives(node, schema, path, issues);
}

void SchemaValidator::CheckMap(const YamlNode& node, const Json& schema, const std::string& path,
                               std::vector<Issue>* issues) const {
  auto add = [&](const YamlNode& at, std::string at_path, Issue::Kind kind, std::string message) {
    Issue issue;
    issue.diagnostic = Diagnostic{at.location, std::move(at_path), std::move(message)};
    issue.kind = kind;
    issues->push_back(std::move(issue));
  };
  if (auto required = schema.find("required"); required != schema.end()) {
    for (const Json& name : *required) {
      const std::string key = name.get<std::string>();
      if (!node.Find(key))
        add(node, JoinPath(path, key), Issue::Kind::kOther, "required key is missing");
    }
  }
  const auto properties = schema.find("properties");
  const auto additional = schema.find("additionalProperties");
  const auto names = schema.find("propertyNames");
  std::vector<std::string> allowed;
  if (properties != schema.end()) {
    for (const auto& [key, unused] : properties->items()) allowed.push_back(key);
  }
  for (const YamlNode::Entry& entry : node.entries) {
    const std::string child = JoinPath(path, entry.key.text);
    if (names != schema.end()) Check(entry.key, *names, child, issues);
    if (properties != schema.end() && properties->contains(entry.key.text)) {
      Check(entry.value, (*properties)[entry.key.text], child, issues);
    } else if (additional != schema.end()) {
      if (additional->is_boolean() && !additional->get<bool>()) {
        std::string hint = DidYouMean(entry.key.text, allowed);
        if (hint.empty() && !allowed.empty()) {
          hint = fmt::format(" (expected one of {})", JoinAlternatives(allowed, ", "));
        }
        add(entry.key, child, Issue::Kind::kOther, "unknown key" + hint);
      } else {
        Check(entry.value, *additional, child, issues);
      }
    }
  }
  const size_t count = node.entries.size();
  if (auto min = schema.find("minProperties"); min != schema.end() && count < *min) {
    add(node, path, Issue::Kind::kValue,
        CustomMessage(schema, "minProperties", node)
            .value_or(fmt::format("expected at least {} entries, got {}", min->get<size_t>(),
                                  Describe(node))));
  }
  if (auto max = schema.find("maxProperties"); max != schema.end() && count > *max) {
    add(node, path, Issue::Kind::kValue,
        CustomMessage(schema, "maxProperties", node)
            .value_or(
                fmt::format("expected at most {} entries, got {}", max->get<size_t>(), count)));
  }
}

void SchemaValidator::CheckList(const YamlNode& node, const Json& schema, const std::string& path,
                                std::vector<Issue>* issues) const {
  const size_t count = node.items.size();
  auto add_here = [&](std::string message) {
    Issue issue;
    issue.diagnostic = Diagnostic{node.location, path, std::move(message)};
    issue.kind = Issue::Kind::kValue;
    issues->push_back(std::move(issue));
  };
  if (auto min = schema.find("minItems"); min != schema.end() && count < *min) {
    add_here(CustomMessage(schema, "minItems", node)
                 .value_or(fmt::format("expected at least {} entries, got {}", min->get<size_t>(),
                                       Describe(node))));
  }
  if (auto max = schema.find("maxItems"); max != schema.end() && count > *max) {
    add_here(CustomMessage(schema, "maxItems", node)
                 .value_or(fmt::format("expected at most {} entries, got {}", max->get<size_t>(),
                                       count)));
  }
  size_t first_free = 0;
  if (auto prefix = schema.find("prefixItems"); prefix != schema.end()) {
    first_free = prefix->size();
    for (size_t i = 0; i < std::min(count, first_free); ++i) {
      Check(node.items[i], (*prefix)[i], IndexPath(path, i), issues);
    }
  }
  if (auto items = schema.find("items"); items != schema.end()) {
    for (size_t i = first_free; i < count; ++i) {
      Check(node.items[i], *items, IndexPath(path, i), issues);
    }
  }
  if (auto unique = schema.find("uniqueItems"); unique != schema.end() && unique->get<bool>()) {
    // Numbers compare by value (1e15 == 1000000000000000), other scalars by text.
    std::map<std::string, size_t> first;
    for (size_t i = 0; i < count; ++i) {
      const YamlNode& item = node.items[i];
      if (!item.is_scalar()) continue;
      const std::optional<double> number = AsNumber(item);
      const std::string key = number ? "n" + fmt::format("{}", *number) : "s" + item.text;
      auto [it, inserted] = first.emplace(key, i);
      if (!inserted) {
        Issue issue;
        const std::string item_path = IndexPath(path, i);
        issue.diagnostic = Diagnostic{item.location, item_path,
                                      fmt::format("{} is listed twice (first at {})",
                                                  Describe(item), IndexPath(path, it->second))};
        issue.kind = Issue::Kind::kValue;
        issues->push_back(std::move(issue));
      }
    }
  }
}

void SchemaValidator::CheckAlternatives(const YamlNode& node, const Json& schema,
                                        const std::string& path, std::vector<Issue>* issues) const {
  auto add_here = [&](Issue::Kind kind, std::string message, std::string expected = "") {
    Issue issue;
    issue.diagnostic = Diagnostic{node.location, path, std::move(message)};
    issue.kind = kind;
    issue.expected = std::move(expected);
    issues->push_back(std::move(issue));
  };
  if (auto negated = schema.find("not"); negated != schema.end()) {
    std::vector<Issue> sub;
    Check(node, *negated, path, &sub);
    if (sub.empty()) {
      add_here(Issue::Kind::kValue,
               CustomMessage(schema, "not", node).value_or("this value is not allowed here"));
    }
  }
  for (const char* keyword : {"anyOf", "oneOf"}) {
    auto branches = schema.find(keyword);
    if (branches == schema.end()) continue;
    std::vector<std::vector<Issue>> results(branches->size());
    size_t passing = 0;
    for (size_t i = 0; i < branches->size(); ++i) {
      Check(node, (*branches)[i], path, &results[i]);
      if (results[i].empty()) ++passing;
      if (passing > 0 && std::string_view(keyword) == "anyOf") break;
    }
    const bool one_of = std::string_view(keyword) == "oneOf";
    if (passing == 1 || (passing > 1 && !one_of)) continue;
    if (auto custom = CustomMessage(schema, keyword, node)) {
      add_here(Issue::Kind::kValue, *custom);
      continue;
    }
    if (passing > 1) {
      add_here(Issue::Kind::kValue, "matches more than one of the allowed forms");
      continue;
    }
    // No branch fits. When each failed on the node's own type or value, list what each wanted
    // ("expected one of dense, lowrank or a map, got a list"); otherwise the branch that got
    // furthest (deepest problem, then a value over a type mismatch, then fewest problems) speaks.
    // How far below this node a problem lies: a longer field path is a deeper problem.
    auto depth = [&](const Issue& issue) { return issue.diagnostic.path.size() - path.size(); };
    bool all_shallow = true;
    std::vector<std::string> expected;
    Issue::Kind kind = Issue::Kind::kType;
    for (const std::vector<Issue>& r : results) {
      if (r.size() != 1 || depth(r[0]) != 0 || r[0].expected.empty()) {
        all_shallow = false;
        break;
      }
      expected.push_back(r[0].expected);
      kind = std::max(kind, r[0].kind);
    }
    if (all_shallow) {
      const std::string joined = JoinAlternatives(expected);
      add_here(kind, fmt::format("expected {}, got {}", joined, Describe(node)), joined);
      continue;
    }
    auto score = [&](const std::vector<Issue>& r) {
      size_t deepest = 0;
      int kind_rank = 0;
      for (const Issue& issue : r) {
        const int k = static_cast<int>(issue.kind);
        if (depth(issue) > deepest || (depth(issue) == deepest && k > kind_rank)) {
          deepest = depth(issue);
          kind_rank = k;
        }
      }
      return std::make_tuple(deepest, kind_rank, -static_cast<long>(r.size()));
    };
    size_t best = 0;
    for (size_t i = 1; i < results.size(); ++i) {
      if (!results[i].empty() && score(results[i]) > score(results[best])) best = i;
    }
    for (Issue& issue : results[best]) issues->push_back(std::move(issue));
  }
}

SchemaValidator::Lookup SchemaValidator::Find(const Json& schema,
                                              const std::vector<std::string>& keys) const {
  Lookup lookup;
  // `field` is the schema as written at the current key, siblings of its $ref included (they hold
  // the bounds: {"$ref": ".../number_or_expression", "exclusiveMinimum": 0}); `s` is what it
  // resolves to, which holds the properties to descend into.
  const Json* field = &schema;
  for (size_t i = 0; i < keys.size(); ++i) {
    const Json* s = &Resolve(*field);
    // ffn is "a name or a map": descend through the alternative that has properties.
    for (const char* keyword : {"oneOf", "anyOf"}) {
      if (!s->is_object() || s->contains("properties") || !s->contains(keyword)) continue;
      for (const Json& branch : (*s)[keyword]) {
        const Json& resolved = Resolve(branch);
        if (resolved.is_object() && resolved.contains("properties")) {
          s = &resolved;
          break;
        }
      }
    }
    lookup.matched = i;
    lookup.allowed.clear();
    if (!s->is_object()) return lookup;
    auto properties = s->find("properties");
    if (properties != s->end()) {
      for (const auto& [name, unused] : properties->items()) lookup.allowed.push_back(name);
      if (properties->contains(keys[i])) {
        field = &(*properties)[keys[i]];
        continue;
      }
    }
    auto additional = s->find("additionalProperties");
    if (additional != s->end() && additional->is_object()) {
      field = &*additional;
      continue;
    }
    // A free-form map (resources.slurm): any key, any value below it.
    static const Json kAnything = true;
    if (properties == s->end() && additional == s->end() && s->contains("type") &&
        (*s)["type"] == "object") {
      lookup.schema = &kAnything;
      lookup.matched = keys.size();
    }
    return lookup;
  }
  lookup.schema = field;
  lookup.matched = keys.size();
  return lookup;
}

std::string SchemaValidator::CheckBounds(const Json& schema, double value) const {
  const Json* s = &schema;
  for (int hops = 0; hops < 32 && s->is_object(); ++hops) {
    if (std::string bound = ViolatedBound(*s, value); !bound.empty()) return bound;
    if (!s->contains("$ref")) break;
    s = &compiled_->root.at(Json::json_pointer((*s)["$ref"].get<std::string>().substr(1)));
  }
  return "";
}

bool SchemaValidator::WantsInteger(const Json& schema) const {
  const Json* s = &schema;
  for (int hops = 0; hops < 32 && s->is_object(); ++hops) {
    if (s->value("type", Json()) == "integer") return true;
    for (const char* keyword : {"anyOf", "oneOf"}) {
      if (!s->contains(keyword)) continue;
      for (const Json& branch : (*s)[keyword]) {
        if (Resolve(branch).value("type", Json()) == "integer") return true;
      }
    }
    if (!s->contains("$ref")) break;
    s = &compiled_->root.at(Json::json_pointer((*s)["$ref"].get<std::string>().substr(1)));
  }
  return false;
}

}  // namespace isoflop::sweep
