// `isoflop curves` end to end: a results database written through RunStore with the runs of a
// synthetic two-variant IsoFLOP sweep (losses drawn from known laws), then the command as a user
// runs it, in both formats, with figures.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "common/fit/chinchilla_fit.h"
#include "common/store/run_store.h"

namespace isoflop {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kSweep[] = "ffn-demo";
constexpr double kSizes[] = {1.5e7, 3e7, 6e7, 1.2e8, 2.4e8};
constexpr ChinchillaLaw kDense{1.69, 406.4, 410.7, 0.34, 0.28};
constexpr ChinchillaLaw kLowRank{1.75, 520.0, 410.7, 0.33, 0.28};

RunConfig MakeRun(const std::string& variant, size_t size, double budget, int64_t seed) {
  RunConfig run;
  run.sweep = kSweep;
  run.variant = variant;
  run.size = fmt::format("s{}", size);
  run.seed = seed;
  run.name = fmt::format("{}/{}/C{:g}/s{}", variant, run.size, budget, seed);
  run.model.n_layer = 4;
  run.model.d_model = 256;
  run.model.n_head = 4;
  run.model.seq_len = 256;
  run.data.train = "train.bin";
  run.data.val = "val.bin";
  run.data.fingerprint = "fp-fit";
  const double params = kSizes[size];
  run.accounting.params = static_cast<int64_t>(params);
  run.accounting.params_nonemb = static_cast<int64_t>(params * 0.8);
  run.budget.flops = budget;
  run.budget.flops_per_token = 6 * params;
  run.budget.tokens = static_cast<int64_t>(budget / (6 * params));
  run.budget.steps = 100;
  run.budget.tokens_processed = run.budget.tokens;
  run.budget.planned_flops = budget;
  run.budget.six_nd = budget;
  return run;
}

struct Output {
  int status;
  std::string out, err;
};

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class CurvesCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "fit_cli_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    fs::create_directories(dir_ / "state");
    auto store = RunStore::Open((dir_ / "state" / "isoflop.db").string());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);

    std::vector<RunConfig> runs;
    for (const char* variant : {"dense", "low_rank"}) {
      for (int b = 0; b < 4; ++b) {
        for (size_t s = 0; s < std::size(kSizes); ++s) {
          for (int seed = 0; seed < 2; ++seed) {
            runs.push_back(MakeRun(variant, s, 1e17 * std::pow(10.0, 0.5 * b), seed));
          }
        }
      }
    }
    // Two runs the fits must leave out: one failed, one whose last val_loss is NaN (diverged).
    runs.push_back(MakeRun("dense", 2, 1e17, 7));
    runs.push_back(MakeRun("dense", 2, 1e17, 8));
    ASSERT_TRUE(store_->InsertSweep(kSweep, "name: ffn-demo\n", runs).ok());

    std::mt19937_64 rng(5);
    std::normal_distribution<double> log_noise(0, 0.003);
    std::vector<EvalRecord> evals;
    for (const RunConfig& run : runs) {
      const std::string id = RunId(run);
      const ChinchillaLaw& law = run.variant == "dense" ? kDense : kLowRank;
      const double params = static_cast<double>(run.accounting.params);
      const double loss =
          law.Loss(params, static_cast<double>(run.budget.tokens)) * std::exp(log_noise(rng));
      // An early evaluation, worse than the final one: only the last may count.
      evals.push_back({id, 10, 1000, 1e15, "val_loss", loss + 1.0, 0});
      evals.push_back({id, 100, run.budget.tokens, run.budget.flops, "val_loss",
                       run.seed == 8 ? NAN : loss, 0});
      evals.push_back({id, 100, run.budget.tokens, run.budget.flops, "val_ppl", std::exp(loss), 0});
      const RunState state = run.seed == 7 ? RunState::kFailed : RunState::kCompleted;
      ASSERT_TRUE(store_->SetRunState(id, state, "test").ok());
    }
    ASSERT_TRUE(store_->AppendEvals(evals).ok());
  }
  void TearDown() override { fs::remove_all(dir_); }

  Output Curves(const std::string& args) {
    const fs::path out = dir_ / "cli.out", err = dir_ / "cli.err";
    const std::string command =
        fmt::format("cd {} && {} --state-dir {} curves {} > {} 2> {}", dir_.string(),
                    ISOFLOP_CLI_BIN, (dir_ / "state").string(), args, out.string(), err.string());
    const int status = std::system(command.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ReadFile(out), ReadFile(err)};
  }

  fs::path dir_;
  std::unique_ptr<RunStore> store_;
};

TEST_F(CurvesCommandTest, RunOutcomesGiveEachRunsLastValue) {
  auto outcomes = store_->RunOutcomes(*store_->FindSweep(kSweep), "val_loss");
  ASSERT_TRUE(outcomes.ok()) << outcomes.status().ToString();
  ASSERT_EQ(outcomes->size(), 82u);
  const RunOutcome& first = outcomes->front();  // expansion order
  EXPECT_EQ(first.name, "dense/s0/C1e+17/s0");
  EXPECT_EQ(first.state, RunState::kCompleted);
  EXPECT_EQ(first.params, 15'000'000);
  EXPECT_EQ(first.params_nonemb, 12'000'000);
  EXPECT_EQ(first.planned_flops, 1e17);
  ASSERT_TRUE(first.final_value);
  EXPECT_NEAR(*first.final_value, kDense.Loss(1.5e7, first.tokens), 0.05);  // not the step-10 one
  EXPECT_EQ((*outcomes)[80].state, RunState::kFailed);
  EXPECT_FALSE((*outcomes)[81].final_value);  // NaN is stored as NULL: no final value
  EXPECT_FALSE(
      store_->RunOutcomes(*store_->FindSweep(kSweep), "arc_easy/acc")->front().final_value);
  EXPECT_EQ(store_->RunOutcomes(99, "val_loss").status().code(), Status::Code::kNotFound);
}

TEST_F(CurvesCommandTest, JsonReportWithFigures) {
  const Output result = Curves(
      fmt::format("{} --format json --bootstrap 100 --plot curves.png --plot curves.svg", kSweep));
  ASSERT_EQ(result.status, 0) << result.err;
  const json report = json::parse(result.out);
  EXPECT_EQ(report["sweep"], kSweep);
  EXPECT_EQ(report["runs"], 82);
  EXPECT_EQ(report["runs_used"], 80);
  ASSERT_EQ(report["runs_left_out"].size(), 2u);
  EXPECT_EQ(report["runs_left_out"][0]["why"], "FAILED");
  EXPECT_EQ(report["runs_left_out"][1]["why"], "no final val_loss");

  ASSERT_EQ(report["variants"].size(), 2u);
  const json& dense = report["variants"][0];
  EXPECT_EQ(dense["variant"], "dense");
  EXPECT_EQ(dense["points"].size(), 20u);
  EXPECT_NEAR(dense["flops_per_param_token"].get<double>(), 6, 0.01);
  const json& law = dense["chinchilla"];
  ASSERT_TRUE(law.is_object()) << dense.dump();
  EXPECT_NEAR(law["alpha"].get<double>(), kDense.alpha, 0.05);
  EXPECT_NEAR(law["beta"].get<double>(), kDense.beta, 0.05);
  EXPECT_LE(law["alpha_interval"][0].get<double>(), law["alpha"].get<double>());
  EXPECT_GE(law["alpha_interval"][1].get<double>(), law["alpha"].get<double>());
  EXPECT_TRUE(dense["power_law"]["alpha"].is_number());
  ASSERT_EQ(dense["optima"].size(), 4u);
  EXPECT_TRUE(dense["optima"][0]["fitted"]["params"].is_number());

  ASSERT_EQ(report["multipliers"].size(), 1u);
  const json& multiplier = report["multipliers"][0];
  EXPECT_EQ(multiplier["baseline"], "dense");
  EXPECT_EQ(multiplier["other"], "low_rank");
  EXPECT_GT(multiplier["multiplier"].get<double>(), 1.0);  // low-rank needs more compute

  const std::string png = ReadFile(dir_ / "curves.png"), svg = ReadFile(dir_ / "curves.svg");
  EXPECT_GT(png.size(), 30'000u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_GT(svg.size(), 30'000u);
  EXPECT_NE(svg.find("<path"), std::string::npos);
  EXPECT_NE(result.err.find("wrote curves.png"), std::string::npos);
}

TEST_F(CurvesCommandTest, TableReport) {
  const Output result = Curves(fmt::format("{} --bootstrap 50 --params nonemb", kSweep));
  ASSERT_EQ(result.status, 0) << result.err;
  for (const char* expected :
       {"80 of 82 runs completed with a final val_loss", "N = non-embedding parameters",
        "L(C) = E + A * C^-alpha", "L(N, D) = E + A / N^alpha + B / D^beta",
        "Compute-optimal N and D per budget", "Compute multiplier", "low_rank"}) {
    EXPECT_NE(result.out.find(expected), std::string::npos) << expected << "\n" << result.out;
  }
}

TEST_F(CurvesCommandTest, ErrorsNameTheProblem) {
  Output unknown = Curves("no-such-sweep");
  EXPECT_EQ(unknown.status, 1);
  EXPECT_NE(unknown.err.find("no-such-sweep"), std::string::npos) << unknown.err;
  Output pdf = Curves(fmt::format("{} --plot curves.pdf", kSweep));
  EXPECT_EQ(pdf.status, 1);
  EXPECT_NE(pdf.err.find(".png or .svg"), std::string::npos) << pdf.err;
  EXPECT_FALSE(fs::exists(dir_ / "curves.pdf"));
  Output metric = Curves(fmt::format("{} --metric arc_easy/acc", kSweep));
  EXPECT_EQ(metric.status, 1);
  EXPECT_NE(metric.err.find("no completed run with a final arc_easy/acc"), std::string::npos)
      << metric.err;
}

}  // namespace
}  // namespace isoflop
