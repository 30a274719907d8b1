// SchemaValidator: checks a located YAML tree against a JSON Schema, so that
// schemas/sweep.schema.json is the contract the loader enforces and not a description that drifts
// from it.
//
// A draft 2020-12 subset: type, enum, const, properties, additionalProperties, propertyNames,
// required, minProperties, maxProperties, items, prefixItems, minItems, maxItems, uniqueItems,
// minimum, exclusiveMinimum, maximum, exclusiveMaximum, minLength, maxLength, pattern, allOf,
// anyOf, oneOf, not and $ref to "#/...". Annotations ($schema, title, description, default,
// $comment) are read by people and editors only. `errorMessage` (the ajv-errors convention: a
// string, or a map from keyword to string; "{got}" stands for the offending value) words a failed
// check for users. Creating a validator rejects any other keyword, so a misspelt "minimun" in the
// schema fails loudly instead of silently checking nothing.
//
// YAML scalars are untyped text: a scalar is a number where it parses fully as one, a boolean where
// it is true or false, and always a string.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/sweep/diagnostics.h"
#include "common/sweep/located_yaml.h"

namespace isoflop::sweep {

class SchemaValidator {
 public:
  // InvalidArgument naming the JSON pointer of the first problem in the schema itself.
  static Result<SchemaValidator> Create(std::string_view schema_json);
  // The sweep schema compiled into the binary (common/embedded.h).
  static Result<SchemaValidator> ForSweeps();

  SchemaValidator(SchemaValidator&&) noexcept;
  SchemaValidator& operator=(SchemaValidator&&) noexcept;
  ~SchemaValidator();

  const nlohmann::ordered_json& root() const;

  // Adds every violation of `schema` by `node` to `diagnostics`; `path` is the node's field path.
  void Validate(const YamlNode& node, const nlohmann::ordered_json& schema, const std::string& path,
                Diagnostics* diagnostics) const;

  // The schema of the field reached by `keys` from `schema`, following $ref, properties,
  // additionalProperties and the object branch of a oneOf / anyOf (ffn: name or map). On failure
  // `schema` is null, `matched` counts the keys that were found and `allowed` lists the names
  // allowed in place of keys[matched].
  struct Lookup {
    const nlohmann::ordered_json* schema = nullptr;
    size_t matched = 0;
    std::vector<std::string> allowed;
  };
  Lookup Find(const nlohmann::ordered_json& schema, const std::vector<std::string>& keys) const;

  // `schema` with its $ref chain followed to the schema that holds the content.
  const nlohmann::ordered_json& Resolve(const nlohmann::ordered_json& schema) const;

  // The numeric bounds of `schema` (its own and those of its $ref chain) that `value` violates, as
  // "expected a positive number", or "" when it satisfies them. For values computed from
  // expressions.
  std::string CheckBounds(const nlohmann::ordered_json& schema, double value) const;

  // Whether `schema` (or its $ref chain) asks for an integer: type integer, or
  // integer_or_expression.
  bool WantsInteger(const nlohmann::ordered_json& schema) const;

 private:
  struct Compiled;
  struct Issue;
  explicit SchemaValidator(std::unique_ptr<Compiled> compiled);

  void Check(const YamlNode& node, const nlohmann::ordered_json& schema, const std::string& path,
             std::vector<Issue>* issues) const;
  void CheckMap(const YamlNode& node, const nlohmann::ordered_json& schema, const std::string& path,
                std::vector<Issue>* issues) const;
  void CheckList(const YamlNode& node, const nlohmann::ordered_json& schema,
                 const std::string& path, std::vector<Issue>* issues) const;
  void CheckAlternatives(const YamlNode& node, const nlohmann::ordered_json& schema,
                         const std::string& path, std::vector<Issue>* issues) const;

  std::unique_ptr<Compiled> compiled_;
};

// Numbers as messages print them: 4096, 0.1, 1e+15.
std::string FormatNumber(double value);

}  // namespace isoflop::sweep
