// From a sweep file to runs (common/sweep/sweep_expander.*, run_resolver.*, sweep_loader.*): the
// grid, zip and random axes, the order of overrides, expressions in both phases, budgets, data
// paths and fingerprints, and how errors are collected.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "common/accountant.h"
#include "common/sweep/sweep_loader.h"

namespace isoflop {
namespace {

namespace fs = std::filesystem;

// Two sizes, two variants, two budgets: 8 runs for one seed.
constexpr char kBase[] = R"yaml(name: t
data: {train: data/train.bin, val: data/val.bin}
sizes:
  s: {n_layer: 2, d_model: 64, n_head: 2, seq_len: 64}
  m: {n_layer: 4, d_model: 128, n_head: 4, seq_len: 64}
variants:
  dense: {}
  lowrank: {ffn: {type: lowrank, rank: "d_model / 4"}}
budgets: {flops: [1e12, 1e13]}
train: {batch_tokens: 4096}
)yaml";

Result<ExpandedSweep> Load(const std::string& yaml, SweepLoadOptions options = {}) {
  return LoadSweepFromString(yaml, "/nonexistent/sweeps/t.yaml", options);
}

ExpandedSweep LoadOk(const std::string& yaml, SweepLoadOptions options = {}) {
  Result<ExpandedSweep> sweep = Load(yaml, options);
  EXPECT_TRUE(sweep.ok()) << sweep.status().message();
  return sweep.ok() ? std::move(*sweep) : ExpandedSweep{};
}

std::vector<std::string> Names(const ExpandedSweep& sweep) {
  std::vector<std::string> names;
  for (const RunConfig& run : sweep.runs) names.push_back(run.name);
  return names;
}

const RunConfig& FindRun(const ExpandedSweep& sweep, const std::string& name) {
  for (const RunConfig& run : sweep.runs) {
    if (run.name == name) return run;
  }
  ADD_FAILURE() << "no run " << name;
  static const RunConfig kNone;
  return kNone;
}

TEST(SweepExpansion, CrossesVariantsSizesBudgetsAndSeedsInThatOrder) {
  const ExpandedSweep sweep = LoadOk(std::string(kBase) + "seeds: [0, 1, 2]\n");
  ASSERT_EQ(sweep.runs.size(), 24u);
  EXPECT_EQ(sweep.name, "t");
  const std::vector<std::string> names = Names(sweep);
  EXPECT_EQ(std::vector<std::string>(names.begin(), names.begin() + 7),
            (std::vector<std::string>{"dense/s/C1e+12/s0", "dense/s/C1e+12/s1", "dense/s/C1e+12/s2",
                                      "dense/s/C1e+13/s0", "dense/s/C1e+13/s1", "dense/s/C1e+13/s2",
                                      "dense/m/C1e+12/s0"}));
  EXPECT_EQ(names.back(), "lowrank/m/C1e+13/s2");
  const RunConfig& run = FindRun(sweep, "lowrank/m/C1e+13/s2");
  EXPECT_EQ(run.sweep, "t");
  EXPECT_EQ(run.variant, "lowrank");
  EXPECT_EQ(run.size, "m");
  EXPECT_EQ(run.seed, 2);
  EXPECT_EQ(run.model.ffn.type, FfnType::kLowRank);
  EXPECT_EQ(run.model.ffn.rank, 32);
}

TEST(SweepExpansion, EveryRunCarriesItsAccountingAndBudgetPlan) {
  const ExpandedSweep sweep = LoadOk(kBase);
  for (const RunConfig& run : sweep.runs) {
    const ParamCount params = Accountant::Params(run.model);
    EXPECT_EQ(run.accounting.params, params.total) << run.name;
    EXPECT_EQ(run.accounting.params_nonemb, params.non_embedding()) << run.name;
    EXPECT_EQ(run.accounting.train_flops, Accountant::Flops(run.model).train()) << run.name;
    EXPECT_EQ(run.budget.tokens_processed, run.budget.steps * run.train.batch_tokens) << run.name;
    EXPECT_TRUE(run.budget.flops == 1e12 || run.budget.flops == 1e13) << run.name;
    // Whole steps: the plan misses the budget by at most half a step.
    const double half_step = 0.5 * run.train.batch_tokens * run.budget.flops_per_token;
    EXPECT_LE(std::abs(run.budget.planned_flops - run.budget.flops), half_step) << run.name;
  }
}

TEST(SweepExpansion, TokenBudgetsNameRunsByTokens) {
  std::string yaml = kBase;
  yaml.replace(yaml.find("flops: [1e12, 1e13]"), 19, "tokens: [1e6]");
  const ExpandedSweep sweep = LoadOk(yaml);
  ASSERT_EQ(sweep.runs.size(), 4u);
  EXPECT_EQ(sweep.runs[0].name, "dense/s/D1e+06/s0");
  EXPECT_EQ(sweep.runs[0].budget.tokens, 999424);  // 244 whole steps of 4096 tokens
}

TEST(SweepExpansion, ZipPairsTheAxesItNamesAndCrossesTheRest) {
  const ExpandedSweep sweep =
      LoadOk(std::string(kBase) + "seeds: [0, 1]\nzip:\n  size: [s, m]\n  budget: [1e12, 1e13]\n");
  EXPECT_EQ(Names(sweep), (std::vector<std::string>{"dense/s/C1e+12/s0", "dense/s/C1e+12/s1",
                                                    "lowrank/s/C1e+12/s0", "lowrank/s/C1e+12/s1",
                                                    "dense/m/C1e+13/s0", "dense/m/C1e+13/s1",
                                                    "lowrank/m/C1e+13/s0", "lowrank/m/C1e+13/s1"}));
}

TEST(SweepExpansion, ZipOverridesNameTheirEntry) {
  const ExpandedSweep sweep = LoadOk(std::string(kBase) +
                                     "zip:\n  size: [s, m]\n  train.optimizer.lr: [1e-3, 5e-4]\n"
                                     "  ffn.rank: [8, \"d_model / 8\"]\n");
  ASSERT_EQ(sweep.runs.size(), 8u);
  EXPECT_EQ(sweep.runs[0].name, "dense/s/C1e+12/s0/z0");
  EXPECT_EQ(FindRun(sweep, "lowrank/s/C1e+13/s0/z0").train.optimizer.lr, 1e-3);
  EXPECT_EQ(FindRun(sweep, "lowrank/s/C1e+13/s0/z0").model.ffn.rank, 8);
  EXPECT_EQ(FindRun(sweep, "lowrank/m/C1e+12/s0/z1").train.optimizer.lr, 5e-4);
  EXPECT_EQ(FindRun(sweep, "lowrank/m/C1e+12/s0/z1").model.ffn.rank, 16);
}

std::string RandomSweep(int seed, int count) {
  return std::string(kBase) + fmt::format(R"yaml(random:
  seed: {}
  count: {}
  space:
    train.optimizer.lr: {{log_uniform: [1e-4, 1e-2]}}
    train.optimizer.weight_decay: {{uniform: [0, 0.2]}}
    train.log_every: {{int: [1, 20]}}
    train.schedule.decay: {{choice: [cosine, wsd]}}
)yaml",
                                          seed, count);
}

TEST(SweepExpansion, RandomSamplesAreDeterministicPerSeedAndCrossTheGrid) {
  const ExpandedSweep a = LoadOk(RandomSweep(7, 5));
  const ExpandedSweep b = LoadOk(RandomSweep(7, 5));
  const ExpandedSweep c = LoadOk(RandomSweep(8, 5));
  ASSERT_EQ(a.runs.size(), 40u);  // 8 grid points x 5 samples
  EXPECT_EQ(a.runs[0].name, "dense/s/C1e+12/s0/r0");
  EXPECT_EQ(a.runs[4].name, "dense/s/C1e+12/s0/r4");
  std::set<double> lrs;
  int differing = 0;
  for (size_t i = 0; i < a.runs.size(); ++i) {
    const TrainSpec& t = a.runs[i].train;
    EXPECT_EQ(ToJson(a.runs[i]), ToJson(b.runs[i]));
    differing += t.optimizer.lr != c.runs[i].train.optimizer.lr;
    EXPECT_GE(t.optimizer.lr, 1e-4);
    EXPECT_LE(t.optimizer.lr, 1e-2);
    EXPECT_GE(t.optimizer.weight_decay, 0);
    EXPECT_LE(t.optimizer.weight_decay, 0.2);
    EXPECT_GE(t.log_every, 1);
    EXPECT_LE(t.log_every, 20);
    EXPECT_TRUE(t.schedule.decay == LrDecay::kCosine || t.schedule.decay == LrDecay::kWsd);
    lrs.insert(t.optimizer.lr);
  }
  EXPECT_EQ(lrs.size(), 5u);  // one value per sample, shared by the grid points
  EXPECT_EQ(differing, 40);
  // The same sample index carries the same values at every grid point.
  EXPECT_EQ(FindRun(a, "dense/s/C1e+12/s0/r3").train.optimizer.lr,
            FindRun(a, "lowrank/m/C1e+13/s0/r3").train.optimizer.lr);
}

TEST(SweepExpansion, RandomSamplesThatCoincideAreDroppedNotDuplicated) {
  const ExpandedSweep sweep = LoadOk(std::string(kBase) + R"yaml(random:
  count: 3
  space: {train.grad_clip: {choice: [0.5]}}
)yaml");
  EXPECT_EQ(sweep.runs.size(), 8u);
  ASSERT_EQ(sweep.dropped.size(), 16u);
  EXPECT_EQ(sweep.dropped[0].name, "dense/s/C1e+12/s0/r1");
  EXPECT_EQ(sweep.dropped[0].reason, "random sample 1 is identical to dense/s/C1e+12/s0/r0");
}

TEST(SweepExpansion, OverridesApplyModelThenSizeThenVariantThenZipThenRandom) {
  const std::string layers = R"yaml(name: t
data: {train: data/train.bin, val: data/val.bin}
model: {rope_base: 1000}
sizes:
  s: {n_layer: 2, d_model: 64, n_head: 2, seq_len: 64, rope_base: 2000, train: {grad_clip: 0.2}}
  m: {n_layer: 2, d_model: 64, n_head: 2, seq_len: 128}
variants:
  a: {}
  b: {rope_base: 3000, train: {grad_clip: 0.3}}
budgets: {flops: [1e12]}
train: {batch_tokens: 4096, grad_clip: 0.1}
)yaml";
  const ExpandedSweep grid = LoadOk(layers);
  EXPECT_EQ(FindRun(grid, "a/m/C1e+12/s0").model.rope_base, 1000);
  EXPECT_EQ(FindRun(grid, "a/m/C1e+12/s0").train.grad_clip, 0.1);
  EXPECT_EQ(FindRun(grid, "a/s/C1e+12/s0").model.rope_base, 2000);
  EXPECT_EQ(FindRun(grid, "a/s/C1e+12/s0").train.grad_clip, 0.2);
  EXPECT_EQ(FindRun(grid, "b/s/C1e+12/s0").model.rope_base, 3000);
  EXPECT_EQ(FindRun(grid, "b/s/C1e+12/s0").train.grad_clip, 0.3);

  const ExpandedSweep zipped =
      LoadOk(layers + "zip:\n  variant: [b]\n  rope_base: [4000]\n  train.grad_clip: [0.4]\n");
  EXPECT_EQ(FindRun(zipped, "b/s/C1e+12/s0/z0").model.rope_base, 4000);
  EXPECT_EQ(FindRun(zipped, "b/s/C1e+12/s0/z0").train.grad_clip, 0.4);

  const ExpandedSweep sampled =
      LoadOk(layers +
             "zip:\n  variant: [b]\n  rope_base: [4000]\n  train.grad_clip: [0.4]\n"
             "random:\n  count: 1\n  space: {model.rope_base: {choice: [5000]}, "
             "train.grad_clip: {choice: [0.5]}}\n");
  EXPECT_EQ(FindRun(sampled, "b/s/C1e+12/s0/z0/r0").model.rope_base, 5000);
  EXPECT_EQ(FindRun(sampled, "b/s/C1e+12/s0/z0/r0").train.grad_clip, 0.5);
}

TEST(SweepExpansion, SectionsMergeDeeplyAndFfnShorthandReplacesTheMap) {
  const ExpandedSweep sweep = LoadOk(R"yaml(name: t
data: {train: data/train.bin, val: data/val.bin}
model: {ffn: {type: lowrank, rank: 16, first_layer_dense: false}}
sizes:
  s: {n_layer: 2, d_model: 64, n_head: 2, seq_len: 64}
variants:
  low: {ffn: {rank: 8}, train: {optimizer: {lr: 1e-4}}}
  dense: {ffn: dense}
budgets: {flops: [1e12]}
train: {batch_tokens: 4096, optimizer: {lr: 1e-3, weight_decay: 0.05}}
)yaml");
  const RunConfig& low = FindRun(sweep, "low/s/C1e+12/s0");
  EXPECT_EQ(low.model.ffn.type, FfnType::kLowRank);
  EXPECT_EQ(low.model.ffn.rank, 8);
  EXPECT_FALSE(low.model.ffn.first_layer_dense);
  EXPECT_EQ(low.train.optimizer.lr, 1e-4);
  EXPECT_EQ(low.train.optimizer.weight_decay, 0.05);
  const RunConfig& dense = FindRun(sweep, "dense/s/C1e+12/s0");
  EXPECT_EQ(dense.model.ffn.type, FfnType::kDense);
  EXPECT_EQ(dense.model.ffn.rank, 0);
  EXPECT_TRUE(dense.model.ffn.first_layer_dense);
}

TEST(SweepExpansion, ModelExpressionsReadTheShapeInDependencyOrder) {
  const ExpandedSweep sweep = LoadOk(R"yaml(name: t
data: {train: data/train.bin, val: data/val.bin}
model: {d_model: "64 * n_layer", n_head: "d_model / 32", ffn: {type: lowrank, rank: "d_ff / 16"}}
sizes:
  s: {n_layer: 2, seq_len: 64}
  m: {n_layer: 3, seq_len: 64, d_ff: "2 * d_model"}
variants:
  low: {}
budgets: {flops: [1e12]}
train: {batch_tokens: 4096}
)yaml");
  const RunConfig& s = FindRun(sweep, "low/s/C1e+12/s0");
  EXPECT_EQ(s.model.d_model, 128);
  EXPECT_EQ(s.model.n_head, 4);
  EXPECT_EQ(s.model.d_ff, 0);       // unset: 4 * d_model ...
  EXPECT_EQ(s.model.ffn.rank, 32);  // ... which is what d_ff reads as
  const RunConfig& m = FindRun(sweep, "low/m/C1e+12/s0");
  EXPECT_EQ(m.model.d_model, 192);
  EXPECT_EQ(m.model.d_ff, 384);
  EXPECT_EQ(m.model.ffn.rank, 24);
}

TEST(SweepExpansion, RunExpressionsReadAccountingAndBudget) {
  const ExpandedSweep sweep = LoadOk(R"yaml(name: t
data: {train: data/train.bin, val: data/val.bin}
sizes:
  s: {n_layer: 2, d_model: 64, n_head: 2, seq_len: 64}
  m: {n_layer: 4, d_model: 128, n_head: 4, seq_len: 64}
variants:
  dense: {}
budgets: {flops: [1e14, 4e14]}
train:
  batch_tokens: "64 * 2^round(log2(sqrt(C / 1e6)))"
  optimizer: {lr: "0.0047 * (N / 1.08e8)^(-1/3)", weight_decay: "0.1 * N_nonemb / N"}
  checkpoint_every_tokens: "D / 4"
eval: {every_tokens: "C / F / 10", val_tokens: "16 * seq_len"}
resources: {priority: "n_layer"}
)yaml");
  for (const RunConfig& run : sweep.runs) {
    const double n = static_cast<double>(run.accounting.params);
    const double c = run.budget.flops;
    EXPECT_EQ(run.train.batch_tokens,
              64 * static_cast<int64_t>(std::pow(2, std::round(std::log2(std::sqrt(c / 1e6))))))
        << run.name;
    EXPECT_DOUBLE_EQ(run.train.optimizer.lr, 0.0047 * std::pow(n / 1.08e8, -1.0 / 3)) << run.name;
    EXPECT_DOUBLE_EQ(run.train.optimizer.weight_decay,
                     0.1 * static_cast<double>(run.accounting.params_nonemb) / n);
    EXPECT_DOUBLE_EQ(run.train.checkpoint_every_tokens, run.budget.tokens / 4.0) << run.name;
    EXPECT_DOUBLE_EQ(run.eval.every_tokens,
                     c / static_cast<double>(run.accounting.train_flops) / 10);
    EXPECT_EQ(run.eval.val_tokens, 1024);
    EXPECT_EQ(run.resources.priority, run.model.n_layer);
  }
  EXPECT_EQ(FindRun(sweep, "dense/s/C1e+14/s0").train.batch_tokens, 64 * 8192);  // sqrt(1e8) ~ 2^13
  EXPECT_EQ(FindRun(sweep, "dense/s/C4e+14/s0").train.batch_tokens,
            64 * 16384);  // sqrt(4e8) ~ 2^14
}

TEST(SweepExpansion, RunsOutsideTheTokensPerParameterBoundsAreDroppedWithTheReason) {
  std::string yaml = kBase;
  yaml.replace(yaml.find("budgets: {flops: [1e12, 1e13]}"), 30,
               "budgets: {flops: [1e12, 1e13], tokens_per_param: [0.01, 0.1]}");
  const ExpandedSweep sweep = LoadOk(yaml);
  EXPECT_EQ(sweep.runs.size() + sweep.dropped.size(), 8u);
  ASSERT_FALSE(sweep.runs.empty());
  ASSERT_FALSE(sweep.dropped.empty());
  for (const RunConfig& run : sweep.runs) {
    const double tpp = static_cast<double>(run.budget.tokens) / run.accounting.params;
    EXPECT_GE(tpp, 0.01);
    EXPECT_LE(tpp, 0.1);
  }
  EXPECT_NE(sweep.dropped[0].reason.find("tokens per parameter is"), std::string::npos);
}

TEST(SweepExpansion, PathsResolveAgainstTheirFileOrTheBaseDirectory) {
  const std::string yaml = std::string(kBase) +
                           "eval: {benchmarks: [{name: arc_easy, path: ../bench/arc.jsonl}, "
                           "{name: piqa, path: /abs/piqa.jsonl, limit: 10}]}\n";
  const ExpandedSweep own_dir = LoadOk(yaml);
  const RunConfig& run = own_dir.runs[0];
  EXPECT_EQ(run.data.train, "/nonexistent/sweeps/data/train.bin");
  EXPECT_EQ(run.data.val, "/nonexistent/sweeps/data/val.bin");
  ASSERT_EQ(run.eval.benchmarks.size(), 2u);
  EXPECT_EQ(run.eval.benchmarks[0].path, "/nonexistent/bench/arc.jsonl");
  EXPECT_EQ(run.eval.benchmarks[1].path, "/abs/piqa.jsonl");
  EXPECT_EQ(run.eval.benchmarks[1].limit, 10);
  SweepLoadOptions options;
  options.base_dir = "/data/root";
  EXPECT_EQ(LoadOk(yaml, options).runs[0].data.train, "/data/root/data/train.bin");
}

class FingerprintTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // One directory per test and process: ctest runs the tests of this fixture in parallel.
    dir_ = fs::path(::testing::TempDir()) /
           ("sweep_fingerprint_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
            std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "data");
  }
  void TearDown() override { fs::remove_all(dir_); }
  // The warnings about data (few-step budgets add one about rounding).
  static std::vector<std::string> DataWarnings(const ExpandedSweep& sweep) {
    std::vector<std::string> data;
    for (const std::string& w : sweep.warnings) {
      if (w.rfind("data:", 0) == 0) data.push_back(w);
    }
    return data;
  }
  ExpandedSweep LoadHere() {
    std::string yaml = kBase;
    SweepLoadOptions options;
    options.base_dir = dir_.string();
    return LoadOk(yaml, options);
  }
  fs::path dir_;
};

TEST_F(FingerprintTest, MissingDataPlansWithAWarning) {
  const ExpandedSweep sweep = LoadHere();
  EXPECT_EQ(sweep.runs[0].data.fingerprint, "missing");
  ASSERT_EQ(DataWarnings(sweep).size(), 1u);
  EXPECT_NE(DataWarnings(sweep)[0].find("does not exist yet"), std::string::npos);
}

TEST_F(FingerprintTest, ShardSizesStandInForAManifest) {
  std::ofstream(dir_ / "data/train.bin") << std::string(1000, 'x');
  std::ofstream(dir_ / "data/val.bin") << std::string(10, 'x');
  const ExpandedSweep sweep = LoadHere();
  EXPECT_EQ(sweep.runs[0].data.fingerprint, "size:1000+10");
  ASSERT_EQ(DataWarnings(sweep).size(), 1u);
  EXPECT_NE(DataWarnings(sweep)[0].find("no usable manifest.json"), std::string::npos);
}

TEST_F(FingerprintTest, TheManifestsFingerprintWins) {
  std::ofstream(dir_ / "data/train.bin") << "x";
  std::ofstream(dir_ / "data/manifest.json")
      << R"({"fingerprint": "sha256:abc", "tokenizer": "gpt2"})";
  const ExpandedSweep sweep = LoadHere();
  EXPECT_EQ(sweep.runs[0].data.fingerprint, "sha256:abc");
  EXPECT_TRUE(DataWarnings(sweep).empty());
}

TEST(SweepLoading, IncludesMergeAndTheSourceKeepsThem) {
  const std::string dir = std::string(ISOFLOP_SOURCE_DIR) + "/tests/sweeps/good/";
  Result<ExpandedSweep> sweep = LoadSweep(dir + "structured_ffn.yaml");
  ASSERT_TRUE(sweep.ok()) << sweep.status().message();
  EXPECT_EQ(sweep->path, dir + "structured_ffn.yaml");
  EXPECT_NE(sweep->source.find("# include: " + dir + "common/base.yaml\n"), std::string::npos);
  EXPECT_EQ(sweep->runs.size() + sweep->dropped.size(), 48u);
  for (const RunConfig& run : sweep->runs) {
    EXPECT_TRUE(run.model.tied_embeddings);  // from the base
    EXPECT_EQ(run.data.train, dir + "data/train.bin") << "resolved against base.yaml's directory";
    if (run.size == "m") {
      EXPECT_EQ(run.model.n_layer, 8);          // this file's m merged into the base's m
      EXPECT_EQ(run.model.d_model, 384);        // kept from the base's m
      EXPECT_EQ(run.train.optimizer.lr, 3e-4);  // the size's train beats the shared train
    } else {
      EXPECT_DOUBLE_EQ(run.train.optimizer.lr,
                       0.0047 * std::pow(run.accounting.params / 1.08e8, -1.0 / 3));
    }
  }
}

TEST(SweepLoading, CollectsIndependentErrorsInFileOrderUpToMaxErrors) {
  const std::string yaml = R"yaml(name: t
data: {train: data/train.bin, val: data/val.bin}
sizes:
  s: {n_layer: 0, d_model: 64, n_hed: 2, seq_len: 64}
variants:
  dense: {positions: absolute}
budgets: {flops: [-1]}
)yaml";
  Result<ExpandedSweep> all = Load(yaml);
  ASSERT_FALSE(all.ok());
  EXPECT_EQ(
      all.status().message(),
      "/nonexistent/sweeps/t.yaml:4:16: sizes.s.n_layer: expected a number >= 1, got 0\n"
      "/nonexistent/sweeps/t.yaml:4:32: sizes.s.n_hed: unknown key (did you mean "
      "\"n_head\"?)\n"
      "/nonexistent/sweeps/t.yaml:6:22: variants.dense.positions: expected one of learned, "
      "rotary, got \"absolute\"\n"
      "/nonexistent/sweeps/t.yaml:7:19: budgets.flops[0]: expected a positive number, got -1");
  SweepLoadOptions two_errors;
  two_errors.max_errors = 2;
  Result<ExpandedSweep> two = Load(yaml, two_errors);
  ASSERT_FALSE(two.ok());
  EXPECT_EQ(std::count(two.status().message().begin(), two.status().message().end(), '\n'), 2);
  EXPECT_NE(two.status().message().find("(2 more errors not shown)"), std::string::npos);
}

TEST(SweepLoading, RefusesSweepsLargerThanTheRunLimit) {
  SweepLoadOptions options;
  options.max_runs = 10;
  Result<ExpandedSweep> sweep = Load(std::string(kBase) + "seeds: [0, 1, 2]\n", options);
  ASSERT_FALSE(sweep.ok());
  EXPECT_EQ(
      sweep.status().message(),
      "/nonexistent/sweeps/t.yaml:1:1: the sweep expands to 24 runs, more than the limit of 10");
}

TEST(SweepLoading, WarnsWhenWholeStepsMissTheBudget) {
  std::string yaml = kBase;
  // s buys 1.5 steps of 16384 tokens at 1e12 FLOPs and gets 2, m buys 1.4 and gets 1.
  yaml.replace(yaml.find("train: {batch_tokens: 4096}"), 27, "train: {batch_tokens: 16384}");
  const ExpandedSweep sweep = LoadOk(yaml);
  bool warned = false;
  for (const std::string& w : sweep.warnings)
    warned = warned || w.find("steps are whole") != std::string::npos;
  EXPECT_TRUE(warned);
}

TEST(SweepLoading, AMissingFileIsNotFound) {
  Result<ExpandedSweep> sweep = LoadSweep("/nonexistent/sweep.yaml");
  ASSERT_FALSE(sweep.ok());
  EXPECT_EQ(sweep.status().code(), Status::Code::kNotFound);
  EXPECT_EQ(sweep.status().message(), "cannot read /nonexistent/sweep.yaml: no such file");
}

// system.md section 10: planning a 10,000-run sweep takes well under a second. This checks the
// expansion is complete and prints the time; the timing target itself belongs to benchmarks.
TEST(SweepLoading, ExpandsTenThousandRuns) {
  std::string sizes, variants, flops;
  for (int i = 0; i < 10; ++i) {
    sizes += fmt::format("  s{}: {{n_layer: {}, d_model: {}, n_head: {}, seq_len: 256}}\n", i,
                         2 + i, 64 * (i + 1), i + 1);
    variants +=
        fmt::format("  v{}: {{ffn: {{type: lowrank, rank: \"{} * d_model / 64\"}}}}\n", i, i + 1);
    flops += fmt::format("{}{}e16", i ? ", " : "", i + 1);
  }
  const std::string yaml = fmt::format(R"yaml(name: large
data: {{train: data/train.bin, val: data/val.bin}}
sizes:
{}variants:
{}budgets: {{flops: [{}]}}
seeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
train:
  batch_tokens: 8192
  optimizer: {{lr: "0.0047 * (N / 1.08e8)^(-1/3)"}}
  checkpoint_every_tokens: "D / 10"
)yaml",
                                       sizes, variants, flops);
  const auto start = std::chrono::steady_clock::now();
  const ExpandedSweep sweep = LoadOk(yaml);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(sweep.runs.size(), 10000u);
  const std::vector<std::string> names = Names(sweep);
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), 10000u);
  std::printf("expanded 10,000 runs in %.0f ms\n", ms);
  RecordProperty("expand_10000_ms", static_cast<int>(ms));
}

}  // namespace
}  // namespace isoflop
