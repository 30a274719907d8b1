#include "worker/eval/benchmark.h"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>

namespace isoflop {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr std::string_view kWhitespace = " \t\n\r\f\v";

// The location every message about an item starts with.
class LineContext {
 public:
  LineContext(std::string_view path, int64_t line) : path_(path), line_(line) {}

  int64_t line() const { return line_; }

  Status Error(std::string_view message) const {
    return Status::InvalidArgument(fmt::format("{}:{}: {}", path_, line_, message));
  }

  Result<std::string> String(const json& item, const char* key) const {
    const auto it = item.find(key);
    if (it == item.end()) return Error(fmt::format("missing \"{}\"", key));
    if (!it->is_string()) {
      return Error(fmt::format("\"{}\" must be a string, got {}", key, it->type_name()));
    }
    return it->get<std::string>();
  }

  // An array of at least two strings: one choice would always be right.
  Result<std::vector<std::string>> Strings(const json& item, const char* key) const {
    const auto it = item.find(key);
    if (it == item.end()) return Error(fmt::format("missing \"{}\"", key));
    if (!it->is_array() || it->size() < 2) {
      return Error(
          fmt::format("\"{}\" must be an array of at least 2 strings, got {}", key, it->dump()));
    }
    std::vector<std::string> out;
    for (size_t i = 0; i < it->size(); ++i) {
      if (!(*it)[i].is_string()) {
        return Error(
            fmt::format("\"{}\"[{}] must be a string, got {}", key, i, (*it)[i].type_name()));
      }
      out.push_back((*it)[i].get<std::string>());
    }
    return out;
  }

  // An index into `count` candidates. HellaSwag's files (as Hugging Face exports them) write the
  // label as a string of digits, so `digits_allowed` accepts that too.
  Result<int64_t> Index(const json& item, const char* key, size_t count,
                        bool digits_allowed) const {
    const auto it = item.find(key);
    if (it == item.end()) return Error(fmt::format("missing \"{}\"", key));
    std::optional<int64_t> index;
    if (it->is_number_integer()) {
      index = it->get<int64_t>();
    } else if (digits_allowed && it->is_string()) {
      const std::string& text = it->get_ref<const std::string&>();
      if (!text.empty() && text.size() <= 9 &&
          text.find_first_not_of("0123456789") == std::string::npos) {
        index = std::stoll(text);
      }
    }
    if (!index) {
      return Error(fmt::format("\"{}\" must be an integer{}, got {}", key,
                               digits_allowed ? " or a string of digits" : "", it->dump()));
    }
    if (*index < 0 || *index >= static_cast<int64_t>(count)) {
      return Error(fmt::format("\"{}\" is {}, outside the {} candidates [0, {})", key, *index,
                               count, count));
    }
    return *index;
  }

 private:
  std::string_view path_;
  int64_t line_;
};

// Code points of UTF-8 text: every byte that does not continue a multi-byte character.
int64_t CodePoints(std::string_view text) {
  int64_t n = 0;
  for (const char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// lm-eval-harness's _encode_pair: trailing whitespace of the context belongs to the continuation,
// where BPE expects a word's leading space.
BenchmarkCandidate MakeCandidate(std::string context, std::string continuation,
                                 std::string_view choice_text) {
  const size_t last = context.find_last_not_of(kWhitespace);
  const size_t keep = last == std::string::npos ? 0 : last + 1;
  continuation.insert(0, context, keep);
  context.resize(keep);
  return BenchmarkCandidate{std::move(context), std::move(continuation),
                            std::max<int64_t>(1, CodePoints(choice_text))};
}

Result<BenchmarkItem> ParseItem(const json& item, BenchmarkFormat format,
                                std::string_view delimiter, const LineContext& at) {
  BenchmarkItem out;
  out.line = at.line();
  switch (format) {
    case BenchmarkFormat::kChoices: {
      Result<std::string> query = at.String(item, "query");
      if (!query.ok()) return query.status();
      Result<std::vector<std::string>> choices = at.Strings(item, "choices");
      if (!choices.ok()) return choices.status();
      Result<int64_t> gold = at.Index(item, "gold", choices->size(), false);
      if (!gold.ok()) return gold.status();
      const std::string context = *query + std::string(delimiter);
      for (const std::string& choice : *choices) {
        out.candidates.push_back(MakeCandidate(context, choice, choice));
      }
      out.gold = *gold;
      break;
    }
    case BenchmarkFormat::kContextOptions: {
      Result<std::vector<std::string>> options = at.Strings(item, "context_options");
      if (!options.ok()) return options.status();
      Result<std::string> continuation = at.String(item, "continuation");
      if (!continuation.ok()) return continuation.status();
      Result<int64_t> gold = at.Index(item, "gold", options->size(), false);
      if (!gold.ok()) return gold.status();
      for (const std::string& option : *options) {
        out.candidates.push_back(MakeCandidate(option, " " + *continuation, *continuation));
      }
      out.gold = *gold;
      break;
    }
    case BenchmarkFormat::kCloze: {
      Result<std::string> context = at.String(item, "context");
      if (!context.ok()) return context.status();
      Result<std::string> continuation = at.String(item, "continuation");
      if (!continuation.ok()) return continuation.status();
      if (continuation->find_first_not_of(kWhitespace) == std::string::npos) {
        return at.Error("\"continuation\" is empty: there is nothing to predict");
      }
      out.candidates.push_back(MakeCandidate(*context, " " + *continuation, *continuation));
      break;
    }
    case BenchmarkFormat::kHellaSwag: {
      std::array<std::string, 3> parts;  // activity_label, ctx_a, ctx_b
      const std::array<const char*, 3> keys = {"activity_label", "ctx_a", "ctx_b"};
      for (size_t i = 0; i < keys.size(); ++i) {
        Result<std::string> part = at.String(item, keys[i]);
        if (!part.ok()) return part.status();
        parts[i] = std::move(part).value();
      }
      Result<std::vector<std::string>> endings = at.Strings(item, "endings");
      if (!endings.ok()) return endings.status();
      Result<int64_t> label = at.Index(item, "label", endings->size(), true);
      if (!label.ok()) return label.status();
      const std::string query =
          CleanHellaSwagText(parts[0] + ": " + parts[1] + " " + Capitalize(parts[2]));
      for (const std::string& ending : *endings) {
        const std::string choice = CleanHellaSwagText(ending);
        out.candidates.push_back(MakeCandidate(query + " ", choice, choice));
      }
      out.gold = *label;
      break;
    }
  }
  return out;
}

// The JSON object on a line, or an error naming the parser's complaint.
Result<json> ParseObject(std::string_view line, const LineContext& at) {
  json item;
  try {
    item = json::parse(line);
  } catch (const json::parse_error& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 7: ..." -> from "parse
    // error".
    const std::string what = e.what();
    const size_t from = what.find("parse error");
    return at.Error(
        fmt::format("not valid JSON: {}", from == std::string::npos ? what : what.substr(from)));
  }
  if (!item.is_object()) {
    return at.Error(
        fmt::format("expected a JSON object (one item a line), got {}", item.type_name()));
  }
  return item;
}

// The format that an item's keys name.
Result<BenchmarkFormat> DetectFormat(const json& item, const LineContext& at) {
  if (item.contains("endings")) return BenchmarkFormat::kHellaSwag;
  if (item.contains("context_options")) return BenchmarkFormat::kContextOptions;
  if (item.contains("choices")) return BenchmarkFormat::kChoices;
  if (item.contains("context") && item.contains("continuation")) return BenchmarkFormat::kCloze;
  return at.Error(
      "not a benchmark item: expected the keys of one format of shared/data/README.md: "
      "{query, choices, gold}, {context_options, continuation, gold}, {context, continuation} or "
      "HellaSwag's {activity_label, ctx_a, ctx_b, endings, label}");
}

}  // namespace

const char* ToString(BenchmarkFormat format) {
  switch (format) {
    case BenchmarkFormat::kChoices:
      return "query/choices";
    case BenchmarkFormat::kContextOptions:
      return "context_options";
    case BenchmarkFormat::kCloze:
      return "cloze";
    case BenchmarkFormat::kHellaSwag:
      return "hellaswag";
  }
  return "?";
}

std::string_view QueryChoiceDelimiter(std::string_view path) {
  static constexpr std::array<std::string_view, 5> kQuestionAnswer = {"arc_easy", "arc_challenge",
                                                                      "piqa", "boolq", "mmlu"};
  const std::string stem = fs::path(path).stem().string();
  for (const std::string_view name : kQuestionAnswer) {
    if (stem == name) return "\nAnswer: ";
  }
  return " ";
}

std::string CleanHellaSwagText(std::string_view text) {
  const size_t first = text.find_first_not_of(kWhitespace);
  if (first == std::string_view::npos) return "";
  text = text.substr(first, text.find_last_not_of(kWhitespace) - first + 1);

  std::string titled;
  for (size_t at = 0;;) {
    const size_t found = text.find(" [title]", at);
    titled.append(text.substr(at, found - at));
    if (found == std::string_view::npos) break;
    titled += ". ";
    at = found + 8;
  }
  // re.sub("\\[.*?\\]", "", text): each "[" up to the nearest "]" goes; a "[" never closed stays.
  std::string unbracketed;
  for (size_t at = 0;;) {
    const size_t open = titled.find('[', at);
    const size_t close = open == std::string::npos ? open : titled.find(']', open);
    if (close == std::string::npos) {
      unbracketed.append(titled, at);
      break;
    }
    unbracketed.append(titled, at, open - at);
    at = close + 1;
  }
  // str.replace("  ", " "): pairs counted left to right without overlap, so "   " becomes "  ".
  std::string out;
  for (size_t i = 0; i < unbracketed.size(); ++i) {
    out += unbracketed[i];
    if (unbracketed[i] == ' ' && i + 1 < unbracketed.size() && unbracketed[i + 1] == ' ') ++i;
  }
  return out;
}

std::string Capitalize(std::string_view text) {
  std::string out(text);
  for (size_t i = 0; i < out.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(out[i]);
    if (c < 0x80) out[i] = static_cast<char>(i == 0 ? std::toupper(c) : std::tolower(c));
  }
  return out;
}

Result<Benchmark> ReadBenchmark(const BenchmarkSpec& spec) {
  std::error_code ec;
  if (!fs::exists(spec.path, ec)) {
    return Status::NotFound(fmt::format("{}: benchmark file not found", spec.path));
  }
  std::ifstream in(spec.path, std::ios::binary);
  if (!in) return Status::IOError(fmt::format("{}: cannot open the benchmark file", spec.path));

  Benchmark benchmark;
  benchmark.name = spec.name;
  benchmark.path = spec.path;
  const std::string_view delimiter = QueryChoiceDelimiter(spec.path);
  int64_t format_line = 0;  // the line whose item fixed the file's format
  std::string line;
  for (int64_t line_number = 1; std::getline(in, line); ++line_number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_number == 1 && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);  // a UTF-8 BOM
    if (line.find_first_not_of(kWhitespace) == std::string::npos) continue;
    const LineContext at(spec.path, line_number);
    Result<json> object = ParseObject(line, at);
    if (!object.ok()) return object.status();
    Result<BenchmarkFormat> format = DetectFormat(*object, at);
    if (!format.ok()) return format.status();
    if (format_line == 0) {
      benchmark.format = *format;
      format_line = line_number;
    } else if (*format != benchmark.format) {
      return at.Error(fmt::format("a {} item, but line {} began a file of {} items",
                                  ToString(*format), format_line, ToString(benchmark.format)));
    }
    Result<BenchmarkItem> item = ParseItem(*object, benchmark.format, delimiter, at);
    if (!item.ok()) return item.status();
    benchmark.items.push_back(std::move(item).value());
    if (spec.limit > 0 && static_cast<int64_t>(benchmark.items.size()) == spec.limit) break;
  }
  if (in.bad()) return Status::IOError(fmt::format("{}: read error", spec.path));
  if (benchmark.items.empty()) {
    return Status::InvalidArgument(fmt::format("{}: holds no benchmark items", spec.path));
  }
  return benchmark;
}

TokenizedRequest Tokenize(const BenchmarkCandidate& candidate, Tokenizer& tokenizer) {
  TokenizedRequest request;
  request.context = tokenizer.Encode(candidate.context);
  // Nothing to condition on: EOT, the token that starts every training document, stands in.
  if (request.context.empty()) request.context.push_back(tokenizer.eot_token());
  request.continuation = tokenizer.Encode(candidate.continuation);
  return request;
}

Result<BenchmarkResult> ComputeBenchmarkMetrics(const Benchmark& benchmark,
                                                std::span<const ContinuationScore> scores) {
  size_t expected = 0;
  for (const BenchmarkItem& item : benchmark.items) expected += item.candidates.size();
  if (scores.size() != expected) {
    return Status::InvalidArgument(
        fmt::format("{}: {} scores for {} candidates", benchmark.name, scores.size(), expected));
  }
  BenchmarkResult result;
  result.name = benchmark.name;
  result.items = static_cast<int64_t>(benchmark.items.size());
  result.requests = static_cast<int64_t>(expected);

  int64_t correct = 0, correct_norm = 0;
  double logprob_sum = 0;
  size_t next = 0;
  for (const BenchmarkItem& item : benchmark.items) {
    const std::span<const ContinuationScore> item_scores =
        scores.subspan(next, item.candidates.size());
    next += item.candidates.size();
    if (benchmark.format == BenchmarkFormat::kCloze) {
      correct += item_scores[0].greedy;
      logprob_sum += item_scores[0].logprob;
      continue;
    }
    size_t best = 0, best_norm = 0;
    for (size_t i = 1; i < item_scores.size(); ++i) {
      if (item_scores[i].logprob > item_scores[best].logprob) best = i;
      const auto per_char = [&](size_t k) {
        return item_scores[k].logprob / static_cast<double>(item.candidates[k].norm_chars);
      };
      if (per_char(i) > per_char(best_norm)) best_norm = i;
    }
    correct += static_cast<int64_t>(best) == item.gold;
    correct_norm += static_cast<int64_t>(best_norm) == item.gold;
  }

  const double n = static_cast<double>(result.items);
  result.metrics.emplace_back("acc", static_cast<double>(correct) / n);
  switch (benchmark.format) {
    case BenchmarkFormat::kChoices:
    case BenchmarkFormat::kHellaSwag:
      result.metrics.emplace_back("acc_norm", static_cast<double>(correct_norm) / n);
      break;
    case BenchmarkFormat::kCloze:
      result.metrics.emplace_back("ppl", std::exp(-logprob_sum / n));
      break;
    case BenchmarkFormat::kContextOptions:
      break;
  }
  return result;
}

Result<BenchmarkResult> EvaluateBenchmark(const Benchmark& benchmark, Tokenizer& tokenizer,
                                          const ContinuationScorer& scorer) {
  std::vector<TokenizedRequest> requests;
  for (const BenchmarkItem& item : benchmark.items) {
    for (const BenchmarkCandidate& candidate : item.candidates) {
      requests.push_back(Tokenize(candidate, tokenizer));
    }
  }
  const std::vector<ContinuationScore> scores = scorer(requests);
  return ComputeBenchmarkMetrics(benchmark, scores);
}

}  // namespace isoflop
