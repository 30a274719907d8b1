#include "common/sweep/expression.h"

#include <fmt/format.h>
#include <muParser.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "common/sweep/diagnostics.h"

namespace isoflop::sweep {

namespace {

constexpr const char* kVariableNames[kVariableCount] = {
    "d_model", "n_layer",  "n_head", "seq_len", "vocab_size", "d_ff",
    "N",       "N_nonemb", "F",      "C",       "D"};

// muParser has rint but not these; sizes are often rounded to a multiple ("64 * round(d / 64)").
double Floor(double x) {
  return std::floor(x);
}
double Ceil(double x) {
  return std::ceil(x);
}
double Round(double x) {
  return std::round(x);
}

bool IsIdentifierChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
}

// muParser's assignment operator would let an expression write into the variables of the run.
bool HasAssignment(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '=') continue;
    const char before = i > 0 ? text[i - 1] : ' ';
    const char after = i + 1 < text.size() ? text[i + 1] : ' ';
    if (after == '=') {
      ++i;  // "==": skip both characters
      continue;
    }
    if (before != '<' && before != '>' && before != '!') return true;
  }
  return false;
}

// muParser words its errors for programmers ("Unexpected token \"x\" found at position 0."); keep
// the substance, drop its position (reported as a 1-based character instead) and name unknown
// functions.
std::string Explain(const mu::Parser::exception_type& e, std::string_view text) {
  std::string message = e.GetMsg();
  for (const char* tail : {" found at position", " at expression position", " at position"}) {
    if (size_t at = message.find(tail); at != std::string::npos) message.resize(at);
  }
  while (!message.empty() && (message.back() == '.' || message.back() == ' ')) message.pop_back();
  if (!message.empty()) message[0] = static_cast<char>(std::tolower(message[0]));
  const int pos = e.GetPos();
  if (e.GetCode() == mu::ecUNEXPECTED_PARENS && pos > 0 && pos <= static_cast<int>(text.size()) &&
      IsIdentifierChar(text[pos - 1])) {
    size_t begin = pos;
    while (begin > 0 && IsIdentifierChar(text[begin - 1])) --begin;
    return fmt::format(
        "unknown function \"{}\" (functions: sqrt, exp, log, log2, log10, abs, min, max, rint, "
        "floor, ceil, round)",
        text.substr(begin, pos - begin));
  }
  if (e.GetCode() == mu::ecEMPTY_EXPRESSION) return "the expression is empty";
  if (pos >= 0 && pos < static_cast<int>(text.size())) {
    return fmt::format("{} at character {}", message, pos + 1);
  }
  if (pos >= static_cast<int>(text.size())) return message + " at the end";
  return message;
}

// The closest variable name, or the list of all of them.
std::string VariableHint(const std::string& name, const std::vector<std::string>& known,
                         const char* list_prefix) {
  std::string hint = DidYouMean(name, known);
  return hint.empty() ? fmt::format(" ({}{})", list_prefix, JoinAlternatives(known, ", ")) : hint;
}

Status UnknownVariable(const std::string& name, std::string_view text,
                       const std::vector<std::string>& known) {
  if (name == text) {
    // A lone word where a number belongs is more likely a mistyped value than an expression.
    return Status::InvalidArgument(
        fmt::format("expected a number or an expression, got \"{}\", which is neither a number "
                    "nor a variable{}",
                    text, VariableHint(name, known, "")));
  }
  return Status::InvalidArgument(fmt::format("unknown variable \"{}\" in \"{}\"{}", name, text,
                                             VariableHint(name, known, "variables: ")));
}

}  // namespace

const char* VariableName(Variable v) {
  return kVariableNames[static_cast<int>(v)];
}

std::string DescribeVariables(VariableSet set) {
  std::vector<std::string> names;
  for (int i = 0; i < kVariableCount; ++i) {
    if (set & (VariableSet{1} << i)) names.push_back(kVariableNames[i]);
  }
  return JoinAlternatives(names, " and ");
}

struct Expression::Impl {
  std::string text;
  VariableSet used = 0;
  // muParser reads variables through pointers bound once at compile time; Evaluate copies a run's
  // values here. Impl lives on the heap, so the pointers stay valid when an Expression moves.
  mutable VariableValues slots{};
  mu::Parser parser;
};

Expression::Expression(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Expression::Expression(Expression&&) noexcept = default;
Expression& Expression::operator=(Expression&&) noexcept = default;
Expression::~Expression() = default;

Result<Expression> Expression::Compile(std::string_view text) {
  auto impl = std::make_unique<Impl>();
  impl->text = std::string(text);
  if (HasAssignment(text)) {
    return Status::InvalidArgument(
        fmt::format("\"{}\": '=' assigns, which expressions may not do (compare with ==)", text));
  }
  try {
    mu::Parser& parser = impl->parser;
    parser.DefineFun("floor", Floor);
    parser.DefineFun("ceil", Ceil);
    parser.DefineFun("round", Round);
    parser.SetExpr(impl->text);
    // Collects every name, defined or not, so unknown ones can be reported by name.
    const mu::varmap_type used = parser.GetUsedVar();
    std::vector<std::string> known(std::begin(kVariableNames), std::end(kVariableNames));
    for (const auto& entry : used) {
      const std::string& name = entry.first;
      auto it = std::find(known.begin(), known.end(), name);
      if (it == known.end()) return UnknownVariable(name, text, known);
      impl->used |= VariableSet{1} << (it - known.begin());
    }
    for (int i = 0; i < kVariableCount; ++i) parser.DefineVar(kVariableNames[i], &impl->slots[i]);
    impl->slots.fill(1.0);
    parser.Eval();  // compiles to bytecode now, so later evaluations cannot fail on syntax
    if (parser.GetNumResults() != 1) {
      return Status::InvalidArgument(
          fmt::format("\"{}\" gives {} values; ',' only separates function arguments", text,
                      parser.GetNumResults()));
    }
  } catch (const mu::Parser::exception_type& e) {
    return Status::InvalidArgument(
        fmt::format("syntax error in \"{}\": {}", text, Explain(e, text)));
  }
  return Expression(std::move(impl));
}

const std::string& Expression::text() const {
  return impl_->text;
}

VariableSet Expression::used() const {
  return impl_->used;
}

double Expression::Evaluate(const VariableValues& values) const {
  impl_->slots = values;
  try {
    return impl_->parser.Eval();
  } catch (const mu::Parser::exception_type&) {
    return std::nan("");  // unreachable after Compile's evaluation; reported as "not a number"
  }
}

}  // namespace isoflop::sweep
