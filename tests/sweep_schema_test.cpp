// The JSON-Schema validator (common/sweep/schema_validator.*) and the agreement between
// schemas/sweep.schema.json and the planner: the same fields, the same defaults, the same enum
// names.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "common/run_config.h"
#include "common/sweep/run_fields.h"
#include "common/sweep/run_resolver.h"
#include "common/sweep/schema_validator.h"
#include "common/sweep/sweep_loader.h"

namespace isoflop::sweep {
namespace {

using Json = nlohmann::ordered_json;

YamlNode Yaml(const std::string& text) {
  Diagnostics diagnostics(20);
  auto file = std::make_shared<const SourceFile>(SourceFile{"t.yaml", 0});
  std::optional<YamlNode> node = ParseYaml(text, file, &diagnostics);
  EXPECT_TRUE(node.has_value()) << diagnostics.ToStatus().message();
  return node.value_or(YamlNode());
}

// The errors of `yaml` against `schema`, one per line, or "" when valid.
std::string Errors(const std::string& schema, const std::string& yaml) {
  Result<SchemaValidator> validator = SchemaValidator::Create(schema);
  EXPECT_TRUE(validator.ok()) << validator.status().message();
  if (!validator.ok()) return "bad schema";
  Diagnostics diagnostics(20);
  validator->Validate(Yaml(yaml), validator->root(), "", &diagnostics);
  return diagnostics.empty() ? "" : diagnostics.ToStatus().message();
}

TEST(SchemaValidator, TypesFollowYamlScalarsWhereTheyAreUsed) {
  const std::string schema = R"({"type": "object", "properties": {
      "n": {"type": "number"}, "i": {"type": "integer"}, "b": {"type": "boolean"},
      "s": {"type": "string"}, "l": {"type": "array"}, "m": {"type": "object"}}})";
  EXPECT_EQ(Errors(schema, "n: 1e15\ni: 1e3\nb: false\ns: 42\nl: []\nm: {}\n"), "");
  EXPECT_EQ(Errors(schema, "n: ten\n"), "t.yaml:1:4: n: expected a number, got \"ten\"");
  EXPECT_EQ(Errors(schema, "i: 2.5\n"), "t.yaml:1:4: i: expected an integer, got 2.5");
  EXPECT_EQ(Errors(schema, "b: yes\n"), "t.yaml:1:4: b: expected true or false, got \"yes\"");
  EXPECT_EQ(Errors(schema, "s: [a]\n"), "t.yaml:1:4: s: expected a string, got a list of 1 value");
  EXPECT_EQ(Errors(schema, "m:\n"), "t.yaml:1:1: m: expected a map, got nothing");
}

TEST(SchemaValidator, UnknownKeysSuggestTheClosestOrListTheAllowed) {
  const std::string schema = R"({"type": "object", "additionalProperties": false,
      "properties": {"rank": {}, "blocks": {}}})";
  EXPECT_EQ(Errors(schema, "rnak: 1\n"), "t.yaml:1:1: rnak: unknown key (did you mean \"rank\"?)");
  EXPECT_EQ(Errors(schema, "rank: 1\nwidth: 2\n"),
            "t.yaml:2:1: width: unknown key (expected one of rank, blocks)");
}

TEST(SchemaValidator, RequiredEnumAndConst) {
  const std::string schema = R"({"type": "object", "required": ["mode"], "properties": {
      "mode": {"enum": ["off", "fixedstep", "fixedflop"]}, "v": {"const": 2}}})";
  EXPECT_EQ(Errors(schema, "v: 2\n"), "t.yaml:1:1: mode: required key is missing");
  EXPECT_EQ(
      Errors(schema, "mode: fixedstp\n"),
      "t.yaml:1:7: mode: expected one of off, fixedstep, fixedflop, got \"fixedstp\" (did you "
      "mean \"fixedstep\"?)");
  EXPECT_EQ(Errors(schema, "mode: off\nv: 2.0\n"), "");
  EXPECT_EQ(Errors(schema, "mode: off\nv: 3\n"), "t.yaml:2:4: v: expected 2, got 3");
}

TEST(SchemaValidator, BoundsAreWordedByTheSideThatFailed) {
  const std::string schema = R"({"type": "object", "properties": {
      "c": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e30},
      "w": {"type": "number", "minimum": 0}, "k": {"type": "integer", "minimum": 1, "maximum": 8},
      "x": {"type": "number", "exclusiveMaximum": 1}}})";
  EXPECT_EQ(Errors(schema, "c: -1e15\n"), "t.yaml:1:4: c: expected a positive number, got -1e15");
  EXPECT_EQ(Errors(schema, "c: 1e31\n"), "t.yaml:1:4: c: expected a number <= 1e+30, got 1e31");
  EXPECT_EQ(Errors(schema, "w: -0.5\n"), "t.yaml:1:4: w: expected a non-negative number, got -0.5");
  EXPECT_EQ(Errors(schema, "k: 0\n"), "t.yaml:1:4: k: expected a number >= 1, got 0");
  EXPECT_EQ(Errors(schema, "x: 1\n"), "t.yaml:1:4: x: expected a number < 1, got 1");
}

TEST(SchemaValidator, ListsAndMapsCountTheirEntries) {
  const std::string schema = R"({"type": "object", "properties": {
      "pair": {"type": "array", "minItems": 2, "maxItems": 2,
               "prefixItems": [{"type": "number"}, {"type": "string"}]},
      "seeds": {"type": "array", "uniqueItems": true, "items": {"type": "integer"}},
      "names": {"type": "object", "minProperties": 1, "propertyNames": {"pattern": "^[a-z]+$"}}}})";
  EXPECT_EQ(Errors(schema, "pair: [1]\n"),
            "t.yaml:1:7: pair: expected at least 2 entries, got a list of 1 value");
  EXPECT_EQ(Errors(schema, "pair: [a, b]\n"), "t.yaml:1:8: pair[0]: expected a number, got \"a\"");
  EXPECT_EQ(Errors(schema, "seeds: [0, 1, 1e0]\n"),
            "t.yaml:1:15: seeds[2]: 1e0 is listed twice (first at seeds[1])");
  EXPECT_EQ(Errors(schema, "names: {}\n"),
            "t.yaml:1:8: names: expected at least 1 entries, got an empty map");
  EXPECT_EQ(Errors(schema, "names: {Big: 1}\n"),
            "t.yaml:1:9: names.Big: expected text matching ^[a-z]+$, got \"Big\"");
}

TEST(SchemaValidator, ErrorMessagesReplaceTheGenericWording) {
  const std::string schema = R"({"type": "object", "properties": {
      "seeds": {"type": "array", "minItems": 1,
                "errorMessage": {"type": "expected seeds such as [0, 1], got {got}"}},
      "name": {"type": "string", "pattern": "^[a-z]+$", "errorMessage": "expected a plain name"}}})";
  EXPECT_EQ(Errors(schema, "seeds: 3\n"),
            "t.yaml:1:8: seeds: expected seeds such as [0, 1], got 3");
  EXPECT_EQ(Errors(schema, "seeds: []\n"),
            "t.yaml:1:8: seeds: expected at least 1 entries, got an empty list");
  EXPECT_EQ(Errors(schema, "name: A-B\n"), "t.yaml:1:7: name: expected a plain name");
}

TEST(SchemaValidator, AlternativesReportTheBranchThatFitsBest) {
  const std::string schema = R"({"type": "object", "properties": {
      "ffn": {"oneOf": [{"enum": ["dense", "lowrank"]},
                        {"type": "object", "additionalProperties": false,
                         "properties": {"type": {"enum": ["dense", "lowrank"]}, "rank": {}}}]},
      "both": {"oneOf": [{"type": "number"}, {"type": "integer"}]},
      "none": {"not": {"type": "string"}}}})";
  EXPECT_EQ(Errors(schema, "ffn: lowrank\n"), "");
  EXPECT_EQ(Errors(schema, "ffn: {type: lowrank, rank: 4}\n"), "");
  // Neither branch fits the node's kind: list what each wanted.
  EXPECT_EQ(Errors(schema, "ffn: [dense]\n"),
            "t.yaml:1:6: ffn: expected one of dense, lowrank or a map, got a list of 1 value");
  // The map branch got further: its problem is reported, not the enum's.
  EXPECT_EQ(Errors(schema, "ffn: {type: lowrank, rnak: 4}\n"),
            "t.yaml:1:22: ffn.rnak: unknown key (did you mean \"rank\"?)");
  EXPECT_EQ(Errors(schema, "ffn: lowrnk\n"),
            "t.yaml:1:6: ffn: expected one of dense, lowrank or a map, got \"lowrnk\"");
  EXPECT_EQ(Errors(schema, "both: 3\n"),
            "t.yaml:1:7: both: matches more than one of the allowed forms");
  EXPECT_EQ(Errors(schema, "none: x\n"), "t.yaml:1:7: none: this value is not allowed here");
}

TEST(SchemaValidator, RefSiblingsAddBounds) {
  const std::string schema = R"({"type": "object", "properties": {
      "lr": {"$ref": "#/$defs/number_or_expression", "exclusiveMinimum": 0}},
      "$defs": {"number_or_expression": {"anyOf": [{"type": "number"}, {"type": "string"}]}}})";
  EXPECT_EQ(Errors(schema, "lr: \"3e-3 * N\"\n"), "");
  EXPECT_EQ(Errors(schema, "lr: -1\n"), "t.yaml:1:5: lr: expected a positive number, got -1");
  Result<SchemaValidator> validator = SchemaValidator::Create(schema);
  ASSERT_TRUE(validator.ok());
  const SchemaValidator::Lookup lr = validator->Find(validator->root(), {"lr"});
  ASSERT_NE(lr.schema, nullptr);
  EXPECT_EQ(validator->CheckBounds(*lr.schema, -2), "expected a positive number");
  EXPECT_EQ(validator->CheckBounds(*lr.schema, 2), "");
  EXPECT_FALSE(validator->WantsInteger(*lr.schema));
}

TEST(SchemaValidator, RejectsSchemasItCannotEnforce) {
  EXPECT_FALSE(SchemaValidator::Create(R"({"type": "object", "minimun": 1})").ok());
  EXPECT_FALSE(SchemaValidator::Create(R"({"$ref": "#/$defs/missing"})").ok());
  EXPECT_FALSE(SchemaValidator::Create(R"({"type": "float"})").ok());
  EXPECT_FALSE(SchemaValidator::Create(R"({"pattern": "(["})").ok());
  EXPECT_FALSE(SchemaValidator::Create("{not json").ok());
}

// ------------------------------------------------------------------------------------------------
// The sweep schema and the planner agree.

class SweepSchemaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<SchemaValidator> validator = SchemaValidator::ForSweeps();
    ASSERT_TRUE(validator.ok()) << validator.status().message();
    validator_ = std::make_unique<SchemaValidator>(std::move(*validator));
  }

  // The leaf fields below `schema`: where a value stops being a map of named fields.
  void Leaves(const Json& schema, const std::string& prefix, std::set<std::string>* out) const {
    const Json* s = &validator_->Resolve(schema);
    for (const char* keyword : {"oneOf", "anyOf"}) {
      if (!s->contains(keyword)) continue;
      for (const Json& branch : (*s)[keyword]) {
        if (validator_->Resolve(branch).contains("properties")) s = &validator_->Resolve(branch);
      }
    }
    if (!s->contains("properties")) {
      out->insert(prefix);
      return;
    }
    for (const auto& [key, sub] : (*s)["properties"].items()) Leaves(sub, prefix + "." + key, out);
  }

  std::set<std::string> SchemaLeaves() const {
    std::set<std::string> leaves;
    for (const char* section : {"model", "train", "eval", "resources", "data"}) {
      Leaves(validator_->root()["properties"][section], section, &leaves);
    }
    return leaves;
  }

  const Json& Property(const std::string& path) const {
    const SchemaValidator::Lookup lookup = validator_->Find(validator_->root(), SplitPath(path));
    EXPECT_NE(lookup.schema, nullptr) << path;
    static const Json kNothing;
    return lookup.schema ? *lookup.schema : kNothing;
  }

  std::unique_ptr<SchemaValidator> validator_;
};

TEST_F(SweepSchemaTest, SchemaFieldsAndPlannerFieldsAreTheSame) {
  std::set<std::string> planner;
  for (const RunField& field : RunFields()) planner.insert(std::string(field.path));
  EXPECT_EQ(SchemaLeaves(), planner);
}

TEST_F(SweepSchemaTest, SizesAndVariantsTakeEveryModelFieldAndTheSections) {
  const Json& overrides = validator_->root()["$defs"]["run_overrides"]["properties"];
  std::vector<std::string> expected;
  for (const auto& [key, unused] : validator_->root()["$defs"]["model"]["properties"].items()) {
    expected.push_back(key);
    EXPECT_EQ(overrides[key]["$ref"], "#/$defs/model/properties/" + key);
  }
  for (const char* section : {"train", "eval", "resources", "data"}) expected.push_back(section);
  std::vector<std::string> actual;
  for (const auto& [key, unused] : overrides.items()) actual.push_back(key);
  EXPECT_EQ(actual, expected);
}

TEST_F(SweepSchemaTest, SchemaDefaultsAreThePlannersDefaults) {
  // A field without a default must be given (the model's shape, the data).
  const std::set<std::string> required = {"model.n_layer", "model.d_model", "model.n_head",
                                          "model.seq_len", "data.train",    "data.val"};
  RunConfig defaults;
  for (const RunField& field : RunFields()) {
    const Json& schema = Property(std::string(field.path));
    if (required.count(std::string(field.path))) {
      EXPECT_FALSE(schema.contains("default")) << field.path;
      continue;
    }
    ASSERT_TRUE(schema.contains("default")) << field.path << " documents no default";
    const Json& d = schema["default"];
    switch (field.kind) {
      case FieldKind::kInteger:
        EXPECT_EQ(d.get<double>(), static_cast<double>(field.integer(defaults))) << field.path;
        break;
      case FieldKind::kNumber:
        EXPECT_EQ(d.get<double>(), field.number(defaults)) << field.path;
        break;
      case FieldKind::kBool:
        EXPECT_EQ(d.get<bool>(), field.boolean(defaults)) << field.path;
        break;
      case FieldKind::kEnum:
        EXPECT_EQ(d.get<std::string>(), field.enum_name(defaults)) << field.path;
        break;
      case FieldKind::kString:
      case FieldKind::kPath:
        EXPECT_EQ(d.get<std::string>(), field.text(defaults)) << field.path;
        break;
      case FieldKind::kBetas:
        EXPECT_EQ(d, Json::array({defaults.train.optimizer.beta1, defaults.train.optimizer.beta2}));
        break;
      case FieldKind::kBenchmarks:
        EXPECT_TRUE(d.empty() && defaults.eval.benchmarks.empty());
        break;
      case FieldKind::kFreeForm:
        EXPECT_EQ(d.dump(), defaults.resources.slurm.dump());
        break;
    }
  }
}

// Every name of an enum, from its ToString, up to the first value it does not know.
template <typename E>
std::set<std::string> CppNames() {
  std::set<std::string> names;
  for (int i = 0; i < 32 && std::string(ToString(static_cast<E>(i))) != "?"; ++i) {
    names.insert(ToString(static_cast<E>(i)));
  }
  return names;
}

TEST_F(SweepSchemaTest, EnumNamesAreTheHeadersNames) {
  const std::map<std::string, std::set<std::string>> cpp = {
      {"model.arch", CppNames<Arch>()},
      {"model.positions", CppNames<Positions>()},
      {"model.activation", CppNames<Activation>()},
      {"model.ffn.type", CppNames<FfnType>()},
      {"model.self_guided.mode", CppNames<SelfGuidedMode>()},
      {"model.self_guided.schedule", CppNames<AlphaSchedule>()},
      {"model.skipless.removed", CppNames<SkiplessRemoval>()},
      {"train.schedule.decay", CppNames<LrDecay>()},
      {"train.precision", CppNames<Precision>()},
      {"resources.launcher", CppNames<LauncherKind>()},
      {"data.order", CppNames<DataOrder>()},
  };
  for (const RunField& field : RunFields()) {
    if (field.kind != FieldKind::kEnum) continue;
    const std::string path(field.path);
    ASSERT_TRUE(cpp.count(path)) << path << " is an enum this test does not know";
    std::set<std::string> schema_names;
    for (const Json& v : validator_->Resolve(Property(path))["enum"]) {
      schema_names.insert(v.get<std::string>());
      RunConfig config;
      EXPECT_TRUE(field.parse_enum(v.get<std::string>(), &config)) << path << " " << v;
      EXPECT_EQ(field.enum_name(config), v.get<std::string>());
    }
    EXPECT_EQ(schema_names, cpp.at(path)) << path;
  }
}

// Leaves of a JSON value, "model.ffn.rank" style; arrays and empty objects are leaves.
void JsonLeaves(const nlohmann::json& j, const std::string& prefix,
                std::map<std::string, nlohmann::json>* out) {
  if (j.is_object() && !j.empty()) {
    for (const auto& [key, value] : j.items()) {
      JsonLeaves(value, prefix.empty() ? key : prefix + "." + key, out);
    }
    return;
  }
  (*out)[prefix] = j;
}

TEST_F(SweepSchemaTest, EveryFieldFilesSetEveryFieldAndMoveEveryValue) {
  const std::string dir = std::string(ISOFLOP_SOURCE_DIR) + "/tests/sweeps/good/";
  std::set<std::string> written;  // canonical fields the files set
  std::set<std::string> moved;    // RunConfig leaves that differ from a default RunConfig
  std::map<std::string, nlohmann::json> defaults;
  JsonLeaves(ToJson(RunConfig{}), "", &defaults);
  for (const char* file : {"every_field_skipless.yaml", "every_field_pgpt.yaml"}) {
    Result<ExpandedSweep> sweep = LoadSweep(dir + file);
    ASSERT_TRUE(sweep.ok()) << sweep.status().message();
    ASSERT_EQ(sweep->runs.size(), 1u);

    Diagnostics diagnostics(20);
    auto source = std::make_shared<const SourceFile>(SourceFile{file, 0});
    std::optional<YamlNode> root = ParseYaml(sweep->source, source, &diagnostics);
    ASSERT_TRUE(root);
    FieldMap fields;
    for (const char* section : {"model", "train", "eval", "resources", "data"}) {
      if (const YamlNode* node = root->Find(section))
        fields.Add(*node, section, section, Layer::kShared);
    }
    for (const char* axis : {"sizes", "variants"}) {
      for (const YamlNode::Entry& e : root->Find(axis)->entries)
        fields.AddEntry(e.value, axis, Layer::kSize);
    }
    for (const auto& [path, unused] : fields.leaves()) {
      written.insert(path.rfind("resources.slurm.", 0) == 0 ? "resources.slurm" : path);
    }

    std::map<std::string, nlohmann::json> leaves;
    JsonLeaves(ToJson(sweep->runs[0]), "", &leaves);
    for (const auto& [path, value] : leaves) {
      if (defaults.count(path) && defaults.at(path) == value) continue;
      // A filled map (resources.slurm) moved its own default, the empty map, too.
      for (size_t dot = path.find('.'); dot != std::string::npos; dot = path.find('.', dot + 1)) {
        moved.insert(path.substr(0, dot));
      }
      moved.insert(path);
    }
  }
  EXPECT_EQ(written, SchemaLeaves());
  for (const auto& [path, unused] : defaults) {
    const std::string section = path.substr(0, path.find('.'));
    if (section != "model" && section != "train" && section != "eval" && section != "resources" &&
        section != "data") {
      continue;
    }
    if (path == "train.optimizer.name") continue;  // adamw is the only optimizer
    EXPECT_TRUE(moved.count(path)) << path << " kept its default although the files set it";
  }
}

}  // namespace
}  // namespace isoflop::sweep
