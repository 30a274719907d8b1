// Derived fields (common/sweep/expression.*): compiled once, evaluated per run, errors worded for
// the person who wrote the sweep.
#include <gtest/gtest.h>

#include <cmath>

#include "common/sweep/expression.h"

namespace isoflop::sweep {
namespace {

VariableValues Values() {
  VariableValues v{};
  v[static_cast<int>(Variable::kDModel)] = 256;
  v[static_cast<int>(Variable::kNLayer)] = 4;
  v[static_cast<int>(Variable::kN)] = 1.08e8;
  v[static_cast<int>(Variable::kD)] = 2e9;
  return v;
}

std::string CompileError(const std::string& text) {
  Result<Expression> e = Expression::Compile(text);
  EXPECT_FALSE(e.ok()) << text;
  return e.ok() ? "" : e.status().message();
}

TEST(Expression, EvaluatesWithTheRunsVariables) {
  Result<Expression> lr = Expression::Compile("0.0047 * (N / 1.08e8)^(-1/3)");
  ASSERT_TRUE(lr.ok()) << lr.status().message();
  EXPECT_DOUBLE_EQ(lr->Evaluate(Values()), 0.0047);
  VariableValues bigger = Values();
  bigger[static_cast<int>(Variable::kN)] = 8 * 1.08e8;
  EXPECT_DOUBLE_EQ(lr->Evaluate(bigger), 0.0047 / 2);  // compiled once, evaluated again
  EXPECT_EQ(lr->used(), Bit(Variable::kN));
}

TEST(Expression, ReportsTheVariablesItReads) {
  Result<Expression> e = Expression::Compile("d_model / n_layer + D / 1e9");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->used(), Bit(Variable::kDModel) | Bit(Variable::kNLayer) | Bit(Variable::kD));
  EXPECT_DOUBLE_EQ(e->Evaluate(Values()), 66);
  EXPECT_EQ(DescribeVariables(e->used()), "d_model, n_layer and D");
  Result<Expression> constant = Expression::Compile("2^10");
  ASSERT_TRUE(constant.ok());
  EXPECT_EQ(constant->used(), 0u);
  EXPECT_EQ(constant->Evaluate(Values()), 1024);
}

TEST(Expression, RoundingFunctionsAndComparisons) {
  for (const auto& [text, expected] :
       std::vector<std::pair<std::string, double>>{{"64 * round(d_model / 3 / 64)", 64},
                                                   {"floor(d_model / 3)", 85},
                                                   {"ceil(d_model / 3)", 86},
                                                   {"rint(2.5)", 3},
                                                   {"n_layer >= 4 ? 1 : 2", 1},
                                                   {"n_layer == 4", 1},
                                                   {"max(d_model, 300)", 300},
                                                   {"log(_e)", 1}}) {
    Result<Expression> e = Expression::Compile(text);
    ASSERT_TRUE(e.ok()) << text << ": " << e.status().message();
    EXPECT_DOUBLE_EQ(e->Evaluate(Values()), expected) << text;
  }
}

TEST(Expression, DivisionByZeroIsAValueTheCallerRejects) {
  Result<Expression> e = Expression::Compile("d_model / (n_layer - 4)");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(std::isinf(e->Evaluate(Values())));
}

TEST(Expression, ErrorsNameTheProblem) {
  EXPECT_EQ(CompileError("dmodel / 4"),
            "unknown variable \"dmodel\" in \"dmodel / 4\" (did you mean \"d_model\"?)");
  EXPECT_EQ(CompileError("q * 2"),
            "unknown variable \"q\" in \"q * 2\" (variables: d_model, n_layer, n_head, seq_len, "
            "vocab_size, d_ff, N, N_nonemb, F, C, D)");
  EXPECT_EQ(CompileError("four"),
            "expected a number or an expression, got \"four\", which is neither a number nor a "
            "variable (d_model, n_layer, n_head, seq_len, vocab_size, d_ff, N, N_nonemb, F, C, D)");
  EXPECT_EQ(CompileError("d_model //4"),
            "syntax error in \"d_model //4\": unexpected operator \"/\" at character 10");
  EXPECT_EQ(CompileError("(d_model"),
            "syntax error in \"(d_model\": missing parenthesis at the end");
  EXPECT_EQ(
      CompileError("floorx(2)"),
      "syntax error in \"floorx(2)\": unknown function \"floorx\" (functions: sqrt, exp, log, "
      "log2, log10, abs, min, max, rint, floor, ceil, round)");
  EXPECT_EQ(CompileError("d_model = 3"),
            "\"d_model = 3\": '=' assigns, which expressions may not do (compare with ==)");
  EXPECT_EQ(CompileError("1, 2"), "\"1, 2\" gives 2 values; ',' only separates function arguments");
  EXPECT_EQ(CompileError(""), "syntax error in \"\": the expression is empty");
}

}  // namespace
}  // namespace isoflop::sweep
