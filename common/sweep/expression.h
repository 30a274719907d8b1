// Expression: a derived field such as `lr: "0.0047 * (N / 1.08e8)^(-1/3)"`, compiled once by
// muParser and evaluated once per run against that run's variables.
//
// Variables come in two phases (sweep_expander.h): the model's shape, known once the literal model
// fields are read, and the run's accounting (N, F) and budget (C, D), known only after the
// accountant and the budget solver ran. An expression names its variables up front (used()), so the
// expander can reject one that reads a variable its field cannot know yet before evaluating
// anything.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace isoflop::sweep {

enum class Variable : int {
  // Phase 1: the model's shape.
  kDModel,
  kNLayer,
  kNHead,
  kSeqLen,
  kVocabSize,
  kDFf,
  // Phase 2: accounting and budget.
  kN,        // parameters, total
  kNNonemb,  // parameters without embeddings
  kF,        // training FLOPs per token (3 x forward, without self-guidance)
  kC,        // the budget in FLOPs
  kD,        // training tokens
  kCount
};
inline constexpr int kVariableCount = static_cast<int>(Variable::kCount);

// The name an expression uses ("d_model", "N", ...).
const char* VariableName(Variable v);

using VariableSet = uint32_t;  // bit i: Variable i
constexpr VariableSet Bit(Variable v) {
  return VariableSet{1} << static_cast<int>(v);
}
// "d_model, n_layer and N" for messages.
std::string DescribeVariables(VariableSet set);

using VariableValues = std::array<double, kVariableCount>;

class Expression {
 public:
  // Syntax errors and unknown variables or functions fail here, worded for a user
  // ("unknown variable \"dmodel\" (did you mean \"d_model\"?)"); the caller adds file, line and
  // field.
  static Result<Expression> Compile(std::string_view text);

  Expression(Expression&&) noexcept;
  Expression& operator=(Expression&&) noexcept;
  ~Expression();

  const std::string& text() const;
  VariableSet used() const;

  // The value for these variables: may be inf or NaN (division by zero), which the caller reports.
  // Not thread-safe: evaluation goes through the compiled expression's own variable slots.
  double Evaluate(const VariableValues& values) const;

 private:
  struct Impl;
  explicit Expression(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace isoflop::sweep
