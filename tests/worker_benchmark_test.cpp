// Zero-shot benchmark items without a model (worker/eval/benchmark.h, benchmark_suite.h): every
// JSONL format of shared/data/README.md becomes the (context, continuation) candidates that
// lm-eval-harness and llm-foundry would score; HellaSwag's text is cleaned as lm-eval-harness
// cleans it; every malformed line is an error naming file and line; metrics follow from scores as
// the header defines them; and the shared benchmark files parse whole.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/text/gpt2_tokenizer.h"
#include "tests/worker_testing.h"
#include "worker/eval/benchmark.h"
#include "worker/eval/benchmark_suite.h"

namespace isoflop {
namespace {

namespace fs = std::filesystem;

BenchmarkSpec Spec(const std::string& path, int64_t limit = 0) {
  BenchmarkSpec spec;
  spec.name = fs::path(path).stem().string();
  spec.path = path;
  spec.limit = limit;
  return spec;
}

Benchmark ReadOk(const std::string& path, int64_t limit = 0) {
  Result<Benchmark> benchmark = ReadBenchmark(Spec(path, limit));
  EXPECT_TRUE(benchmark.ok()) << benchmark.status().ToString();
  return benchmark.ok() ? *benchmark : Benchmark{};
}

// The message of ReadBenchmark's error for a file holding `text`; empty when it succeeds.
std::string ReadError(const ScratchDir& dir, const std::string& name, const std::string& text) {
  Result<Benchmark> benchmark = ReadBenchmark(Spec(dir.Write(name, text)));
  EXPECT_FALSE(benchmark.ok()) << name << " parsed";
  return benchmark.ok() ? "" : benchmark.status().message();
}

std::string SharedBenchmark(const std::string& name) {
  return (fs::path(ISOFLOP_SHARED_DIR) / "data/benchmarks" / (name + ".jsonl")).string();
}

// -------------------------------------------------------------------------------------------------
// Formats.

TEST(BenchmarkFormats, QueryChoicesUseTheFilesDelimiterAndMoveItsSpaceToTheContinuation) {
  ScratchDir dir;
  const std::string line =
      R"({"query": "Question: Which is a fruit?", "choices": ["a café", "a pear"], "gold": 1})"
      "\n";
  // arc_easy: llm-foundry's "\nAnswer: ".
  const Benchmark arc = ReadOk(dir.Write("arc_easy.jsonl", line));
  EXPECT_EQ(arc.format, BenchmarkFormat::kChoices);
  EXPECT_EQ(arc.name, "arc_easy");
  ASSERT_EQ(arc.items.size(), 1u);
  const BenchmarkItem& item = arc.items[0];
  EXPECT_EQ(item.line, 1);
  EXPECT_EQ(item.gold, 1);
  ASSERT_EQ(item.candidates.size(), 2u);
  EXPECT_EQ(item.candidates[0].context, "Question: Which is a fruit?\nAnswer:");
  EXPECT_EQ(item.candidates[0].continuation, " a café");
  EXPECT_EQ(item.candidates[1].continuation, " a pear");
  // acc_norm divides by code points of the choice alone: "a café" is 6 characters, 7 bytes.
  EXPECT_EQ(item.candidates[0].norm_chars, 6);
  EXPECT_EQ(item.candidates[1].norm_chars, 6);

  // Any other file: a plain space.
  const Benchmark copa = ReadOk(dir.Write("copa.jsonl", line));
  EXPECT_EQ(copa.items[0].candidates[0].context, "Question: Which is a fruit?");
  EXPECT_EQ(copa.items[0].candidates[0].continuation, " a café");
}

TEST(BenchmarkFormats, TrailingWhitespaceOfAQueryBelongsToTheContinuation) {
  ScratchDir dir;
  // piqa's queries end in a newline; the delimiter follows it.
  const Benchmark piqa = ReadOk(dir.Write(
      "piqa.jsonl",
      R"({"choices": ["replace drawer", "finish it"], "gold": 1, "query": "Question: dresser\n"})"));
  EXPECT_EQ(piqa.items[0].candidates[0].context, "Question: dresser\n\nAnswer:");
  EXPECT_EQ(piqa.items[0].candidates[0].continuation, " replace drawer");
  // A query that ends in spaces of its own keeps none of them.
  const Benchmark other = ReadOk(
      dir.Write("other.jsonl", R"({"query": "Fill in: \t", "choices": ["x", "y"], "gold": 0})"));
  EXPECT_EQ(other.items[0].candidates[1].context, "Fill in:");
  EXPECT_EQ(other.items[0].candidates[1].continuation, " \t y");
}

TEST(BenchmarkFormats, ContextOptionsScoreTheSharedContinuationAfterEachOption) {
  ScratchDir dir;
  const Benchmark wino = ReadOk(dir.Write(
      "winogrande.jsonl",
      R"({"context_options": ["Sarah was better than Maria so Sarah", "Sarah was better than Maria so Maria"], "continuation": "got the easier cases.", "gold": 1})"));
  EXPECT_EQ(wino.format, BenchmarkFormat::kContextOptions);
  const BenchmarkItem& item = wino.items[0];
  EXPECT_EQ(item.gold, 1);
  ASSERT_EQ(item.candidates.size(), 2u);
  EXPECT_EQ(item.candidates[0].context, "Sarah was better than Maria so Sarah");
  EXPECT_EQ(item.candidates[1].context, "Sarah was better than Maria so Maria");
  for (const BenchmarkCandidate& c : item.candidates) {
    EXPECT_EQ(c.continuation, " got the easier cases.");
  }
}

TEST(BenchmarkFormats, ClozeIsOneCandidateWithTheWordAfterASpace) {
  ScratchDir dir;
  const Benchmark lambada = ReadOk(dir.Write(
      "lambada_openai.jsonl", R"({"context": "I don't care about", "continuation": "signs"})"
                              "\n"
                              R"({"context": "He said:\n\n", "continuation": "yes"})"
                              "\n"));
  EXPECT_EQ(lambada.format, BenchmarkFormat::kCloze);
  ASSERT_EQ(lambada.items.size(), 2u);
  ASSERT_EQ(lambada.items[0].candidates.size(), 1u);
  EXPECT_EQ(lambada.items[0].gold, 0);
  EXPECT_EQ(lambada.items[0].candidates[0].context, "I don't care about");
  EXPECT_EQ(lambada.items[0].candidates[0].continuation, " signs");
  EXPECT_EQ(lambada.items[1].candidates[0].context, "He said:");
  EXPECT_EQ(lambada.items[1].candidates[0].continuation, "\n\n yes");
}

// Items written by hand in HellaSwag's schema (the validation file is not in the shared data): a
// WikiHow item with its bracket artifacts and a string label, and an ActivityNet item.
const char kHellaSwag[] =
    R"({"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.", "ctx_b": "HE starts", "ctx": "A man is sitting on a roof. he starts", "endings": ["pulling up roofing on a roof.", "is using wrap to wrap a pair of skis.", "is ripping level tiles off.", "is holding a rubik's cube."], "label": 3})"
    "\n"
    R"({"ind": 7, "activity_label": "Home and Garden", "ctx_a": "[header] How to grow basil [title] Pick a sunny spot.", "ctx_b": "water it   daily", "ctx": "", "endings": ["[step] Water  the soil [substeps] well.", " Keep it dry. ", "Plant it  in sand.", "Feed it rocks."], "label": "0"})"
    "\n";

TEST(BenchmarkFormats, HellaSwagBuildsItsQueryAndCleansWikiHowArtifactsAsLmEvalHarness) {
  ScratchDir dir;
  const Benchmark hs = ReadOk(dir.Write("hellaswag.jsonl", kHellaSwag));
  EXPECT_EQ(hs.format, BenchmarkFormat::kHellaSwag);
  ASSERT_EQ(hs.items.size(), 2u);

  const BenchmarkItem& roof = hs.items[0];
  EXPECT_EQ(roof.gold, 3);
  ASSERT_EQ(roof.candidates.size(), 4u);
  // activity_label + ": " + ctx_a + " " + ctx_b.capitalize(): "HE starts" -> "He starts".
  EXPECT_EQ(roof.candidates[0].context,
            "Roof shingle removal: A man is sitting on a roof. He starts");
  EXPECT_EQ(roof.candidates[0].continuation, " pulling up roofing on a roof.");
  EXPECT_EQ(roof.candidates[3].continuation, " is holding a rubik's cube.");
  EXPECT_EQ(roof.candidates[3].norm_chars, 26);

  const BenchmarkItem& basil = hs.items[1];
  EXPECT_EQ(basil.gold, 0);  // the label "0", a string
  // " [title]" -> ". ", "[header]" dropped, one pass of "  " -> " " (the triple space keeps two).
  EXPECT_EQ(basil.candidates[0].context,
            "Home and Garden: How to grow basil. Pick a sunny spot. Water it  daily");
  // "[step]" leaves the ending's leading space, which lm-eval-harness keeps too.
  EXPECT_EQ(basil.candidates[0].continuation, "  Water the soil well.");
  EXPECT_EQ(basil.candidates[1].continuation, " Keep it dry.");
  EXPECT_EQ(basil.candidates[2].continuation, " Plant it in sand.");
  EXPECT_EQ(basil.candidates[0].norm_chars, 21);
}

TEST(BenchmarkFormats, HellaSwagTextHelpersFollowPython) {
  EXPECT_EQ(CleanHellaSwagText("  a [title] b  "), "a. b");
  EXPECT_EQ(CleanHellaSwagText("[step] x [sub] y"), " x y");
  EXPECT_EQ(CleanHellaSwagText("a [unclosed b"), "a [unclosed b");
  EXPECT_EQ(CleanHellaSwagText("a    b"), "a  b");
  EXPECT_EQ(CleanHellaSwagText(" \n "), "");
  EXPECT_EQ(Capitalize("hELLO World"), "Hello world");
  EXPECT_EQ(Capitalize("élan VITAL"), "élan vital");  // non-ASCII bytes unchanged
  EXPECT_EQ(Capitalize(""), "");
}

TEST(BenchmarkFormats, LimitBlankLinesCrlfAndBom) {
  ScratchDir dir;
  const std::string path = dir.Write("copa.jsonl",
                                     "\xEF\xBB\xBF"
                                     R"({"query": "q1", "choices": ["a", "b"], "gold": 0})"
                                     "\r\n\r\n   \n"
                                     R"({"query": "q2", "choices": ["a", "b"], "gold": 1})"
                                     "\r\n"
                                     R"({"query": "q3", "choices": ["a", "b"], "gold": 1})"
                                     "\n"
                                     "this line is never read: the limit stops before it\n");
  const Benchmark two = ReadOk(path, 2);
  ASSERT_EQ(two.items.size(), 2u);
  EXPECT_EQ(two.items[0].candidates[0].context, "q1");
  EXPECT_EQ(two.items[1].line, 4);  // lines are counted with the blank ones
  EXPECT_EQ(two.items[1].gold, 1);
  EXPECT_EQ(ReadOk(path, 3).items.size(), 3u);
  EXPECT_NE(ReadError(dir, "copa.jsonl",
                      R"({"query": "q1", "choices": ["a", "b"], "gold": 0})"
                      "\nnot json\n")
                .find("copa.jsonl:2: not valid JSON"),
            std::string::npos);
}

// -------------------------------------------------------------------------------------------------
// Errors: each names the file and line.

TEST(BenchmarkFormats, MalformedLinesAreErrorsNamingFileAndLine) {
  ScratchDir dir;
  const std::string good = R"({"query": "q", "choices": ["a", "b"], "gold": 0})";
  struct Case {
    std::string line;      // written as line 2, after a good line
    std::string expected;  // in the message after "bad.jsonl:2: "
  };
  const std::vector<Case> cases = {
      {R"({"query": "q", "choices": ["a", "b"], "gold": 0)", "not valid JSON: parse error"},
      {R"([1, 2])", "expected a JSON object (one item a line), got array"},
      {R"({"question": "q", "answers": ["a"]})", "not a benchmark item: expected the keys"},
      {R"({"choices": ["a", "b"], "gold": 0})", "missing \"query\""},
      {R"({"query": 5, "choices": ["a", "b"], "gold": 0})",
       "\"query\" must be a string, got number"},
      {R"({"query": "q", "choices": "ab", "gold": 0})",
       "\"choices\" must be an array of at least 2 strings, got \"ab\""},
      {R"({"query": "q", "choices": ["a"], "gold": 0})",
       "\"choices\" must be an array of at least 2 strings"},
      {R"({"query": "q", "choices": ["a", 2], "gold": 0})",
       "\"choices\"[1] must be a string, got number"},
      {R"({"query": "q", "choices": ["a", "b"]})", "missing \"gold\""},
      {R"({"query": "q", "choices": ["a", "b"], "gold": "1"})",
       "\"gold\" must be an integer, got \"1\""},
      {R"({"query": "q", "choices": ["a", "b"], "gold": 2})",
       "\"gold\" is 2, outside the 2 candidates [0, 2)"},
      {R"({"query": "q", "choices": ["a", "b"], "gold": -1})", "\"gold\" is -1, outside"},
      {R"({"context_options": ["a", "b"], "continuation": "c", "gold": 0})",
       "a context_options item, but line 1 began a file of query/choices items"},
  };
  for (const Case& c : cases) {
    const std::string message = ReadError(dir, "bad.jsonl", good + "\n" + c.line + "\n");
    EXPECT_NE(message.find("bad.jsonl:2: " + c.expected), std::string::npos)
        << "line: " << c.line << "\nmessage: " << message;
  }
}

TEST(BenchmarkFormats, MalformedItemsOfEachFormatAreErrors) {
  ScratchDir dir;
  struct Case {
    std::string line;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {R"({"context_options": ["a", "b"], "gold": 0})", "missing \"continuation\""},
      {R"({"context_options": ["a", "b"], "continuation": "c", "gold": 3})",
       "\"gold\" is 3, outside the 2 candidates"},
      {R"({"context": "c", "continuation": "  "})",
       "\"continuation\" is empty: there is nothing to predict"},
      {R"({"context": 1, "continuation": "w"})", "\"context\" must be a string"},
      {R"({"activity_label": "x", "ctx_a": "a", "endings": ["e", "f"], "label": 0})",
       "missing \"ctx_b\""},
      {R"({"activity_label": "x", "ctx_a": "a", "ctx_b": "b", "endings": ["e", "f"], "label": "x1"})",
       "\"label\" must be an integer or a string of digits, got \"x1\""},
      {R"({"activity_label": "x", "ctx_a": "a", "ctx_b": "b", "endings": ["e", "f"], "label": "7"})",
       "\"label\" is 7, outside the 2 candidates"},
  };
  for (const Case& c : cases) {
    const std::string message = ReadError(dir, "bad.jsonl", c.line + "\n");
    EXPECT_NE(message.find("bad.jsonl:1: " + c.expected), std::string::npos)
        << "line: " << c.line << "\nmessage: " << message;
  }
}

TEST(BenchmarkFormats, MissingAndEmptyFilesAreErrorsNamingTheFile) {
  ScratchDir dir;
  Result<Benchmark> missing = ReadBenchmark(Spec("/nonexistent/arc_easy.jsonl"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
  EXPECT_NE(missing.status().message().find("/nonexistent/arc_easy.jsonl"), std::string::npos);
  EXPECT_NE(ReadError(dir, "empty.jsonl", "\n\n").find("empty.jsonl: holds no benchmark items"),
            std::string::npos);
}

// -------------------------------------------------------------------------------------------------
// Metrics.

std::vector<ContinuationScore> Scores(std::initializer_list<double> logprobs) {
  std::vector<ContinuationScore> out;
  for (double lp : logprobs) out.push_back({lp, false});
  return out;
}

double Metric(const BenchmarkResult& result, const std::string& name) {
  for (const auto& [metric, value] : result.metrics) {
    if (metric == name) return value;
  }
  ADD_FAILURE() << "no metric " << name;
  return NAN;
}

TEST(BenchmarkMetrics, AccPicksTheLikeliestChoiceAndAccNormTheLikeliestPerCharacter) {
  ScratchDir dir;
  // Item 1: choice 1 ("a much longer answer", 20 characters) has the lower sum but the higher
  // per-character log-likelihood: acc answers 0 (wrong), acc_norm answers 1 (right).
  // Item 2: a tie answers the lowest index, 0 (right for both).
  const Benchmark benchmark = ReadOk(dir.Write(
      "copa.jsonl", R"({"query": "q", "choices": ["short", "a much longer answer"], "gold": 1})"
                    "\n"
                    R"({"query": "q", "choices": ["x", "y"], "gold": 0})"
                    "\n"));
  Result<BenchmarkResult> result =
      ComputeBenchmarkMetrics(benchmark, Scores({-10.0, -20.0, -3.0, -3.0}));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->items, 2);
  EXPECT_EQ(result->requests, 4);
  ASSERT_EQ(result->metrics.size(), 2u);
  EXPECT_DOUBLE_EQ(Metric(*result, "acc"), 0.5);  // -10 / 5 = -2 < -20 / 20 = -1
  EXPECT_DOUBLE_EQ(Metric(*result, "acc_norm"), 1.0);

  EXPECT_FALSE(ComputeBenchmarkMetrics(benchmark, Scores({-1.0, -2.0, -3.0})).ok());
}

TEST(BenchmarkMetrics, ContextOptionsReportAccOnlyAndClozeReportsGreedyAccAndPerItemPerplexity) {
  ScratchDir dir;
  const Benchmark wino = ReadOk(dir.Write(
      "winogrande.jsonl", R"({"context_options": ["a", "b"], "continuation": "c", "gold": 1})"
                          "\n"
                          R"({"context_options": ["a", "b", "d"], "continuation": "c", "gold": 2})"
                          "\n"));
  Result<BenchmarkResult> wino_result =
      ComputeBenchmarkMetrics(wino, Scores({-5.0, -4.0, -1.0, -2.0, -3.0}));
  ASSERT_TRUE(wino_result.ok());
  ASSERT_EQ(wino_result->metrics.size(), 1u);
  EXPECT_DOUBLE_EQ(Metric(*wino_result, "acc"), 0.5);

  const Benchmark lambada =
      ReadOk(dir.Write("lambada.jsonl", R"({"context": "a", "continuation": "b"})"
                                        "\n"
                                        R"({"context": "c", "continuation": "d"})"
                                        "\n"
                                        R"({"context": "e", "continuation": "f"})"
                                        "\n"));
  const std::vector<ContinuationScore> scores = {{-1.0, true}, {-2.0, false}, {-6.0, true}};
  Result<BenchmarkResult> cloze = ComputeBenchmarkMetrics(lambada, scores);
  ASSERT_TRUE(cloze.ok());
  ASSERT_EQ(cloze->metrics.size(), 2u);
  EXPECT_DOUBLE_EQ(Metric(*cloze, "acc"), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(Metric(*cloze, "ppl"), std::exp(3.0));  // exp(-(-1 - 2 - 6) / 3)
}

TEST(BenchmarkMetrics, EvaluateTokenizesContextAndContinuationSeparately) {
  ScratchDir dir;
  const Benchmark benchmark =
      ReadOk(dir.Write("lambada.jsonl", R"({"context": "", "continuation": "hi"})"
                                        "\n"
                                        R"({"context": "ab", "continuation": "c"})"
                                        "\n"));
  std::unique_ptr<Tokenizer> bytes = MakeByteTokenizer();
  std::vector<TokenizedRequest> seen;
  const ContinuationScorer scorer = [&](std::span<const TokenizedRequest> requests) {
    seen.assign(requests.begin(), requests.end());
    return std::vector<ContinuationScore>{{-1.0, true}, {-1.0, false}};
  };
  Result<BenchmarkResult> result = EvaluateBenchmark(benchmark, *bytes, scorer);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(seen.size(), 2u);
  // An empty context reads end-of-text (256 for bytes), as every training document begins.
  EXPECT_EQ(seen[0].context, std::vector<TokenId>({256}));
  EXPECT_EQ(seen[0].continuation, std::vector<TokenId>({' ', 'h', 'i'}));
  EXPECT_EQ(seen[1].context, std::vector<TokenId>({'a', 'b'}));
  EXPECT_EQ(seen[1].continuation, std::vector<TokenId>({' ', 'c'}));
  EXPECT_DOUBLE_EQ(Metric(*result, "acc"), 0.5);
}

TEST(BenchmarkMetrics, Gpt2EncodesTheContinuationWithItsLeadingSpace) {
  const fs::path gpt2_dir = fs::path(ISOFLOP_SHARED_DIR) / "data/tokenizer/gpt2";
  if (!fs::exists(gpt2_dir / "vocab.json")) GTEST_SKIP() << "no shared GPT-2 tokenizer";
  Result<std::unique_ptr<Tokenizer>> gpt2 = LoadGpt2Tokenizer(gpt2_dir);
  ASSERT_TRUE(gpt2.ok()) << gpt2.status().ToString();
  const TokenizedRequest request = Tokenize({"Hello", " world", 5}, **gpt2);
  EXPECT_EQ(request.context, std::vector<TokenId>({15496}));
  EXPECT_EQ(request.continuation, std::vector<TokenId>({995}));  // " world", one token
}

// -------------------------------------------------------------------------------------------------
// The suite of a run, and the shared files.

TEST(BenchmarkSuite, LoadChecksNamesTokenizerAndVocabularyBeforeTraining) {
  ScratchDir dir;
  const std::string copa =
      dir.Write("copa.jsonl", R"({"query": "q", "choices": ["a", "b"], "gold": 0})");
  const std::vector<BenchmarkSpec> one = {Spec(copa)};

  Result<BenchmarkSuite> ok = BenchmarkSuite::Load(one, "bytes", "", 257);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  ASSERT_EQ(ok->benchmarks().size(), 1u);
  EXPECT_EQ(ok->benchmarks()[0].name, "copa");

  auto error = [](const Result<BenchmarkSuite>& r) {
    EXPECT_FALSE(r.ok());
    return r.ok() ? std::string() : r.status().message();
  };
  EXPECT_NE(error(BenchmarkSuite::Load(std::vector<BenchmarkSpec>{Spec(copa), Spec(copa)}, "bytes",
                                       "", 257))
                .find("eval.benchmarks[1]: the name \"copa\" is given twice"),
            std::string::npos);
  EXPECT_NE(error(BenchmarkSuite::Load(one, "gpt2", "", 50304)).find("ISOFLOP_GPT2_DIR"),
            std::string::npos);
  EXPECT_NE(
      error(BenchmarkSuite::Load(one, "gpt2", dir.Write("x", ""), 50304)).find("--gpt2-dir: "),
      std::string::npos);
  EXPECT_NE(error(BenchmarkSuite::Load(one, "sentencepiece", "", 50304))
                .find("data.tokenizer \"sentencepiece\""),
            std::string::npos);
  EXPECT_NE(error(BenchmarkSuite::Load(one, "bytes", "", 64))
                .find("the bytes tokenizer's 257 ids do not fit model.vocab_size 64"),
            std::string::npos);
  const std::vector<BenchmarkSpec> bad = {Spec(copa), Spec(dir.Write("bad.jsonl", "{\n"))};
  Result<BenchmarkSuite> malformed = BenchmarkSuite::Load(bad, "bytes", "", 257);
  ASSERT_FALSE(malformed.ok());
  EXPECT_EQ(malformed.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(malformed.status().message().find("eval.benchmarks[1] (bad): "), std::string::npos);
  EXPECT_NE(malformed.status().message().find("bad.jsonl:1: not valid JSON"), std::string::npos);
}

TEST(BenchmarkSuite, EverySharedFileParsesWhole) {
  if (!fs::exists(SharedBenchmark("copa"))) GTEST_SKIP() << "no shared benchmark files";
  struct Expected {
    const char* name;
    size_t items;
    BenchmarkFormat format;
    size_t candidates;
  };
  for (const Expected& e : std::vector<Expected>{
           {"arc_easy", 2376, BenchmarkFormat::kChoices, 4},
           {"piqa", 1838, BenchmarkFormat::kChoices, 2},
           {"openbook_qa", 500, BenchmarkFormat::kChoices, 4},
           {"copa", 100, BenchmarkFormat::kChoices, 2},
           {"boolq", 3270, BenchmarkFormat::kChoices, 2},
           {"winogrande", 1267, BenchmarkFormat::kContextOptions, 2},
           {"lambada_openai", 5153, BenchmarkFormat::kCloze, 1},
       }) {
    const Benchmark benchmark = ReadOk(SharedBenchmark(e.name));
    EXPECT_EQ(benchmark.items.size(), e.items) << e.name;
    EXPECT_EQ(benchmark.format, e.format) << e.name;
    for (const BenchmarkItem& item : benchmark.items) {
      ASSERT_EQ(item.candidates.size(), e.candidates) << e.name << ":" << item.line;
      for (const BenchmarkCandidate& c : item.candidates) {
        // Every continuation starts with the whitespace that separates it from its context.
        ASSERT_FALSE(c.continuation.empty()) << e.name << ":" << item.line;
        ASSERT_TRUE(std::isspace(static_cast<unsigned char>(c.continuation[0])))
            << e.name << ":" << item.line;
      }
    }
  }
  // boolq's answers, after "\nAnswer:".
  const Benchmark boolq = ReadOk(SharedBenchmark("boolq"), 1);
  EXPECT_TRUE(boolq.items[0].candidates[0].context.ends_with("\nAnswer:"));
  EXPECT_EQ(boolq.items[0].candidates[0].continuation, " no");
  EXPECT_EQ(boolq.items[0].candidates[1].continuation, " yes");
}

}  // namespace
}  // namespace isoflop
