// Result formats (common/store/results_format.h): what `isoflop results` and `isoflop query` print.
#include "common/store/results_format.h"

#include <gtest/gtest.h>

namespace isoflop {
namespace {

using nlohmann::json;

QueryResult Sample() {
  QueryResult result;
  result.columns = {"variant", "seed", "val_loss", "note"};
  result.rows = {{"dense", 0, 3.28412345678, nullptr},
                 {"lowrank-32", 12, 1e15, "a, \"quoted\"\nnote"}};
  return result;
}

TEST(ResultFormatTest, NamesRoundTrip) {
  for (ResultFormat format : {ResultFormat::kTable, ResultFormat::kCsv, ResultFormat::kJson}) {
    ResultFormat parsed = ResultFormat::kTable;
    ASSERT_TRUE(Parse(ToString(format), &parsed));
    EXPECT_EQ(parsed, format);
  }
  ResultFormat parsed = ResultFormat::kTable;
  EXPECT_FALSE(Parse("xml", &parsed));
}

TEST(ResultFormatTest, TableAlignsColumnsAndRightAlignsNumbers) {
  EXPECT_EQ(FormatTable(Sample()),
            "variant     seed  val_loss  note\n"
            "----------  ----  --------  -----------------\n"
            "dense          0   3.28412\n"
            "lowrank-32    12     1e+15  a, \"quoted\"\\nnote\n");
}

TEST(ResultFormatTest, TableMeasuresWidthInCharactersNotBytes) {
  QueryResult result;
  result.columns = {"name", "n"};
  result.rows = {{"Ωmega", 1}, {"alpha", 22}};
  EXPECT_EQ(FormatTable(result),
            "name    n\n"
            "-----  --\n"
            "Ωmega   1\n"
            "alpha  22\n");
}

TEST(ResultFormatTest, EmptyResultsStillHaveAHeader) {
  QueryResult result;
  result.columns = {"run_id", "state"};
  EXPECT_EQ(FormatTable(result), "run_id  state\n------  -----\n");
  EXPECT_EQ(FormatCsv(result), "run_id,state\n");
  EXPECT_EQ(FormatJson(result), "[]\n");
}

TEST(ResultFormatTest, CsvQuotesByRfc4180AndKeepsFullPrecision) {
  EXPECT_EQ(FormatCsv(Sample()),
            "variant,seed,val_loss,note\n"
            "dense,0,3.28412345678,\n"
            "lowrank-32,12,1000000000000000,\"a, \"\"quoted\"\"\nnote\"\n");
}

TEST(ResultFormatTest, JsonIsAnArrayOfObjectsInColumnOrder) {
  const std::string text = FormatJson(Sample());
  EXPECT_EQ(text.substr(0, text.find('\n', 2)),
            "[\n  {\"variant\":\"dense\",\"seed\":0,\"val_loss\":3.28412345678,\"note\":null},");
  const json parsed = json::parse(text);
  ASSERT_TRUE(parsed.is_array());
  ASSERT_EQ(parsed.size(), 2u);
  EXPECT_EQ(parsed[1]["variant"], "lowrank-32");
  EXPECT_EQ(parsed[1]["val_loss"], 1e15);
  EXPECT_EQ(parsed[1]["note"], "a, \"quoted\"\nnote");
}

TEST(ResultFormatTest, JsonKeepsRepeatedColumnNamesApart) {
  QueryResult result;
  result.columns = {"id", "id", "id"};
  result.rows = {{1, 2, 3}};
  const json parsed = json::parse(FormatJson(result));
  EXPECT_EQ(parsed[0], (json{{"id", 1}, {"id:2", 2}, {"id:3", 3}}));
}

TEST(ResultFormatTest, FormatResultDispatchesOnTheFormat) {
  const QueryResult sample = Sample();
  EXPECT_EQ(FormatResult(sample, ResultFormat::kTable), FormatTable(sample));
  EXPECT_EQ(FormatResult(sample, ResultFormat::kCsv), FormatCsv(sample));
  EXPECT_EQ(FormatResult(sample, ResultFormat::kJson), FormatJson(sample));
}

}  // namespace
}  // namespace isoflop
