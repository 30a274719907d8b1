// The located YAML tree (common/sweep/located_yaml.*) and includes (common/sweep/include_loader.*):
// every node knows where it was written, scalars stay untyped text, and included files merge under
// the including one.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "common/sweep/include_loader.h"
#include "common/sweep/located_yaml.h"

namespace isoflop::sweep {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<const SourceFile> File(const std::string& path) {
  return std::make_shared<const SourceFile>(SourceFile{path, 0});
}

YamlNode Parse(const std::string& text) {
  Diagnostics diagnostics(20);
  std::optional<YamlNode> node = ParseYaml(text, File("t.yaml"), &diagnostics);
  EXPECT_TRUE(node.has_value()) << diagnostics.ToStatus().message();
  return node.value_or(YamlNode());
}

std::string ParseError(const std::string& text) {
  Diagnostics diagnostics(20);
  EXPECT_FALSE(ParseYaml(text, File("t.yaml"), &diagnostics).has_value());
  return diagnostics.ToStatus().message();
}

TEST(LocatedYaml, KeysAndValuesKnowTheirLineAndColumn) {
  const YamlNode root = Parse("name: x\nsizes:\n  s: {n_layer: 4, d_model: 256}\n");
  ASSERT_TRUE(root.is_map());
  const YamlNode::Entry& sizes = root.entries[1];
  EXPECT_EQ(sizes.key.location.line, 2);
  EXPECT_EQ(sizes.key.location.column, 1);
  const YamlNode& s = *sizes.value.Find("s");
  EXPECT_EQ(s.location.line, 3);
  EXPECT_EQ(s.location.column, 6);  // the '{'
  EXPECT_EQ(s.entries[1].key.text, "d_model");
  EXPECT_EQ(s.entries[1].key.location.column, 19);
  EXPECT_EQ(s.entries[1].value.location.column, 28);
  EXPECT_EQ(s.entries[1].value.location.ToString(), "t.yaml:3:28");
}

TEST(LocatedYaml, AnEmptyValueIsReportedAtItsKey) {
  // yaml-cpp marks the missing value at the next token, two lines down here.
  const YamlNode root = Parse("model:\n  d_ff:\n\nname: x\n");
  const YamlNode& d_ff = *root.Find("model")->Find("d_ff");
  EXPECT_TRUE(d_ff.is_null());
  EXPECT_EQ(d_ff.location.line, 2);
  EXPECT_EQ(d_ff.location.column, 3);
}

TEST(LocatedYaml, ScalarsAreTypedOnlyWhereAsked) {
  const YamlNode root = Parse(
      "a: 1e15\nb: \"3e-4\"\nc: d_model / 4\nd: true\ne: no\nf: -7\ng: 1.5\nh: 0x10\ni: +2\n");
  EXPECT_EQ(AsNumber(*root.Find("a")), 1e15);
  EXPECT_EQ(AsInteger(*root.Find("a")), 1'000'000'000'000'000);
  EXPECT_EQ(AsNumber(*root.Find("b")), 3e-4);  // quoting does not make a number a string
  EXPECT_TRUE(root.Find("b")->quoted);
  EXPECT_FALSE(AsNumber(*root.Find("c")));
  EXPECT_EQ(root.Find("c")->text, "d_model / 4");
  EXPECT_EQ(AsBool(*root.Find("d")), true);
  EXPECT_FALSE(AsBool(*root.Find("e")));  // YAML 1.1's "no" stays a string
  EXPECT_EQ(AsInteger(*root.Find("f")), -7);
  EXPECT_FALSE(AsInteger(*root.Find("g")));
  EXPECT_FALSE(AsNumber(*root.Find("h")));  // decimal only
  EXPECT_EQ(AsInteger(*root.Find("i")), 2);
}

TEST(LocatedYaml, IntegersBeyondDoublePrecisionStayExact) {
  const YamlNode root = Parse("seed: 9007199254740993\n");
  EXPECT_EQ(AsInteger(*root.Find("seed")), int64_t{9007199254740993});
}

TEST(LocatedYaml, DescribeNamesWhatWasFound) {
  const YamlNode root = Parse("a: [1]\nb: {}\nc:\nd: hello\ne: 42\nf: [1, 2]\n");
  EXPECT_EQ(Describe(*root.Find("a")), "a list of 1 value");
  EXPECT_EQ(Describe(*root.Find("f")), "a list of 2 values");
  EXPECT_EQ(Describe(*root.Find("b")), "an empty map");
  EXPECT_EQ(Describe(*root.Find("c")), "nothing");
  EXPECT_EQ(Describe(*root.Find("d")), "\"hello\"");
  EXPECT_EQ(Describe(*root.Find("e")), "42");
}

TEST(LocatedYaml, AliasesCopyTheirAnchor) {
  const YamlNode root = Parse("base: &b {n_layer: 4}\nother: *b\n");
  EXPECT_EQ(root.Find("other")->Find("n_layer")->text, "4");
}

TEST(LocatedYaml, SyntaxErrorsPointAtTheCause) {
  EXPECT_EQ(ParseError("a: [1, 2\nb: 3\n"),
            "t.yaml:1:4: invalid YAML: '[' is never closed (expected ']' before line 2)");
  EXPECT_EQ(ParseError("a:\n\tb: 1\n"),
            "t.yaml:2:1: invalid YAML: tab character in the indentation (YAML indents with spaces "
            "only)");
  EXPECT_EQ(ParseError("a: 1\na: 2\n"), "t.yaml:2:1: a: duplicate key (first defined at line 1)");
  EXPECT_EQ(ParseError("a:\n  - {x: 1, x: 2}\n"),
            "t.yaml:2:12: a[0].x: duplicate key (first defined at line 2)");
  EXPECT_EQ(ParseError("? [1]\n: 2\n"),
            "t.yaml:1:3: map keys must be names, got a list of 1 value");
  EXPECT_EQ(ParseError("a: 1\n---\nb: 2\n"),
            "t.yaml:2:1: a sweep file holds one YAML document; remove the '---' separator");
}

TEST(LocatedYaml, TextMustBeUtf8) {
  EXPECT_EQ(Parse("name: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\n").Find("name")->text,
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(ParseError("a: 1\nb: x\xffy\n"),
            "t.yaml:2:5: not valid UTF-8 text (byte 0xFF); save the file as UTF-8");
  EXPECT_EQ(ParseError("a: \xc0\xaf\n"),  // an overlong '/'
            "t.yaml:1:4: not valid UTF-8 text (byte 0xC0); save the file as UTF-8");
  EXPECT_EQ(ParseError("a: \"\\uD800\"\n"),  // a surrogate escape encodes no character
            "t.yaml:1:11: invalid YAML: the escape for U+D800 names no Unicode character");
}

TEST(LocatedYaml, AliasBombsAndDeepNestingAreRefused) {
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'h'; ++c) {
    const char p = static_cast<char>(c - 1);  // each level lists the previous one ten times
    bomb += fmt::format("{}: &{} [*{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}]\n", c, c, p, p,
                        p, p, p, p, p, p, p, p);
  }
  EXPECT_NE(ParseError(bomb).find("more than 1000000 nodes"), std::string::npos);
  EXPECT_NE(
      ParseError(std::string(100, '[') + std::string(100, ']')).find("nesting deeper than 64"),
      std::string::npos);
}

TEST(LocatedYaml, MergeIsDeepForMapsAndReplacesEverythingElse) {
  const YamlNode base = Parse("a: {x: 1, y: [1, 2], z: {p: 1}}\nb: 1\n");
  const YamlNode overlay = Parse("a: {y: [3], z: {q: 2}}\nc: 3\n");
  const YamlNode merged = MergeYaml(base, overlay);
  const YamlNode& a = *merged.Find("a");
  EXPECT_EQ(a.Find("x")->text, "1");
  ASSERT_EQ(a.Find("y")->items.size(), 1u);
  EXPECT_EQ(a.Find("y")->items[0].text, "3");
  EXPECT_EQ(a.Find("z")->Find("p")->text, "1");
  EXPECT_EQ(a.Find("z")->Find("q")->text, "2");
  EXPECT_EQ(merged.Find("b")->text, "1");
  EXPECT_EQ(merged.Find("c")->text, "3");
}

// Includes read real files; each test gets its own directory.
class IncludeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("sweep_include_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "common");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    const fs::path path = dir_ / name;
    std::ofstream(path) << text;
    return path.string();
  }

  std::optional<SweepDocument> Load(const std::string& path, Diagnostics* diagnostics,
                                    bool allow_includes = true) {
    Result<std::string> text = ReadSweepFile(path);
    EXPECT_TRUE(text.ok()) << text.status().message();
    return LoadSweepDocument(*text, path, allow_includes, diagnostics);
  }

  fs::path dir_;
};

TEST_F(IncludeTest, LaterIncludesOverrideEarlierOnesAndTheFileOverridesAll) {
  Write("common/a.yaml", "x: a\ny: a\nz: a\nm: {p: a, q: a}\n");
  Write("common/b.yaml", "y: b\nz: b\nm: {q: b}\n");
  const std::string main = Write("main.yaml", "include: [common/a.yaml, common/b.yaml]\nz: main\n");
  Diagnostics diagnostics(20);
  std::optional<SweepDocument> doc = Load(main, &diagnostics);
  ASSERT_TRUE(doc) << diagnostics.ToStatus().message();
  EXPECT_EQ(doc->root.Find("x")->text, "a");
  EXPECT_EQ(doc->root.Find("y")->text, "b");
  EXPECT_EQ(doc->root.Find("z")->text, "main");
  EXPECT_EQ(doc->root.Find("m")->Find("p")->text, "a");
  EXPECT_EQ(doc->root.Find("m")->Find("q")->text, "b");
  EXPECT_EQ(doc->root.Find("include"), nullptr);
  // Values keep the file they came from, for messages.
  EXPECT_EQ(doc->root.Find("x")->location.file->path, (dir_ / "common/a.yaml").string());
  EXPECT_EQ(doc->root.Find("z")->location.file->path, main);
  ASSERT_EQ(doc->files.size(), 3u);
  EXPECT_NE(doc->source.find("# include: " + (dir_ / "common/b.yaml").string() + "\ny: b"),
            std::string::npos);
}

TEST_F(IncludeTest, PathsAreRelativeToTheIncludingFile) {
  Write("common/base.yaml", "include: inner.yaml\nx: base\n");
  Write("common/inner.yaml", "x: inner\ny: inner\n");
  const std::string main = Write("main.yaml", "include: common/base.yaml\n");
  Diagnostics diagnostics(20);
  std::optional<SweepDocument> doc = Load(main, &diagnostics);
  ASSERT_TRUE(doc) << diagnostics.ToStatus().message();
  EXPECT_EQ(doc->root.Find("x")->text, "base");
  EXPECT_EQ(doc->root.Find("y")->text, "inner");
}

TEST_F(IncludeTest, CyclesAreErrorsNamingTheChain) {
  const std::string a = Write("a.yaml", "include: common/b.yaml\n");
  const std::string b = Write("common/b.yaml", "x: 1\ninclude: ../a.yaml\n");
  Diagnostics diagnostics(20);
  EXPECT_FALSE(Load(a, &diagnostics));
  EXPECT_EQ(diagnostics.ToStatus().message(),
            fmt::format("{}:2:10: include: cycle {} -> {} -> {}", b, a, b, a));
}

TEST_F(IncludeTest, MissingFilesAndDisabledIncludesAreErrors) {
  const std::string main = Write("main.yaml", "x: 1\ninclude: [nope.yaml]\n");
  Diagnostics missing(20);
  EXPECT_FALSE(Load(main, &missing));
  EXPECT_EQ(missing.ToStatus().message(),
            fmt::format("{}:2:11: include[0]: cannot read {}: no such file", main,
                        (dir_ / "nope.yaml").string()));
  Diagnostics disabled(20);
  EXPECT_FALSE(Load(main, &disabled, /*allow_includes=*/false));
  EXPECT_EQ(disabled.ToStatus().message(),
            fmt::format("{}:2:10: include: includes are disabled here", main));
}

TEST_F(IncludeTest, ErrorsInsideAnIncludedFilePointIntoIt) {
  const std::string base = Write("common/base.yaml", "a: 1\na: 2\n");
  const std::string main = Write("main.yaml", "include: common/base.yaml\n");
  Diagnostics diagnostics(20);
  EXPECT_FALSE(Load(main, &diagnostics));
  EXPECT_EQ(diagnostics.ToStatus().message(),
            fmt::format("{}:2:1: a: duplicate key (first defined at line 1)", base));
}

TEST(Diagnostics, SortsDedupesAndCaps) {
  auto file = File("x.yaml");
  Diagnostics diagnostics(2);
  diagnostics.Add(Location{file, 5, 1}, "b", "second");
  diagnostics.Add(Location{file, 2, 3}, "a", "first");
  diagnostics.Add(Location{file, 2, 3}, "a", "first");
  diagnostics.Add(Location{file, 9, 1}, "", "third");
  EXPECT_EQ(diagnostics.size(), 3);
  EXPECT_EQ(diagnostics.ToStatus().message(),
            "x.yaml:2:3: a: first\nx.yaml:5:1: b: second\n(1 more errors not shown)");
  EXPECT_EQ(diagnostics.ToStatus().code(), Status::Code::kInvalidArgument);
}

TEST(Diagnostics, SuggestsOnlyPlausibleTypos) {
  const std::vector<std::string> keys = {"rank", "blocks", "type", "first_layer_dense"};
  EXPECT_EQ(ClosestMatch("rnak", keys), "rank");  // a transposition is one edit
  EXPECT_EQ(ClosestMatch("Blocks", keys), "blocks");
  EXPECT_EQ(ClosestMatch("first_layer_dens", keys), "first_layer_dense");
  EXPECT_EQ(ClosestMatch("width", keys), "");
  EXPECT_EQ(ClosestMatch("lr", {"eps", "lr"}), "lr");
  EXPECT_EQ(ClosestMatch("xy", {"eps"}), "");
}

}  // namespace
}  // namespace isoflop::sweep
