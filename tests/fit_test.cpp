// Scaling-law fits (common/fit/): data drawn from known laws with noise must give back the laws,
// inside the fits' own confidence intervals as often as the intervals promise; IsoFLOP parabolas
// find known minima and flag minima on the grid edge; compute multipliers between variants come
// out as constructed; figures are drawn.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "common/fit/bootstrap.h"
#include "common/fit/chinchilla_fit.h"
#include "common/fit/isoflop_parabola.h"
#include "common/fit/power_law_fit.h"
#include "common/fit/scaling_analysis.h"
#include "common/fit/scaling_plot.h"

namespace isoflop {
namespace {

namespace fs = std::filesystem;

// Hoffmann et al. (2022), equation 10: the law their approach 3 found.
constexpr ChinchillaLaw kChinchilla{1.69, 406.4, 410.7, 0.34, 0.28};
// Loss against compute along a compute-optimal frontier, in the range such laws take.
constexpr PowerLaw kPowerLaw{1.7, 501.0, 0.15};
// Seed-to-seed noise of a final validation loss: 1% (log-normal).
constexpr double kNoise = 0.01;

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// An IsoFLOP sweep of `law`: 6 budgets half a decade apart, 8 sizes at each spaced by 2x around
// the compute-optimal one, D = C / (6N), `seeds` seeds: 96 runs with the default 2 seeds.
std::vector<ModelPoint> ChinchillaSweep(const ChinchillaLaw& law, std::mt19937_64& rng,
                                        int seeds = 2, double noise = kNoise) {
  std::normal_distribution<double> log_noise(0, noise);
  std::vector<ModelPoint> points;
  for (int b = 0; b < 6; ++b) {
    const double flops = 1e17 * std::pow(10.0, 0.5 * b);
    const double optimal = law.ComputeOptimal(flops, 6).params;
    for (int s = 0; s < 8; ++s) {
      const double params = optimal * std::pow(2.0, s - 3.5);
      const double tokens = flops / (6 * params);
      for (int seed = 0; seed < seeds; ++seed) {
        points.push_back({params, tokens, law.Loss(params, tokens) * std::exp(log_noise(rng))});
      }
    }
  }
  return points;
}

// 8 budgets half a decade apart, 3 seeds each: 24 runs.
std::vector<ComputePoint> PowerLawSweep(const PowerLaw& law, std::mt19937_64& rng,
                                        double noise = kNoise) {
  std::normal_distribution<double> log_noise(0, noise);
  std::vector<ComputePoint> points;
  for (int b = 0; b < 8; ++b) {
    const double flops = 1e17 * std::pow(10.0, 0.5 * b);
    for (int seed = 0; seed < 3; ++seed) {
      points.push_back({flops, law.Loss(flops) * std::exp(log_noise(rng))});
    }
  }
  return points;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// ---- Bootstrap

TEST(Bootstrap, ResamplesAreReproducibleDrawsWithReplacement) {
  const std::vector<size_t> a = ResampleIndices(50, 7, 3);
  EXPECT_EQ(a, ResampleIndices(50, 7, 3));
  EXPECT_NE(a, ResampleIndices(50, 7, 4));
  EXPECT_NE(a, ResampleIndices(50, 8, 3));
  ASSERT_EQ(a.size(), 50u);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_LT(a.back(), 50u);
  // With replacement: some point drawn twice (all distinct has probability 50!/50^50).
  EXPECT_NE(std::adjacent_find(a.begin(), a.end()), a.end());
}

TEST(Bootstrap, PercentileIntervalInterpolatesOrderStatistics) {
  std::vector<double> values;
  for (int i = 101; i >= 1; --i) values.push_back(i);
  const Interval interval = PercentileInterval(values, 0.9);
  EXPECT_DOUBLE_EQ(interval.lo, 6);
  EXPECT_DOUBLE_EQ(interval.hi, 96);
  EXPECT_TRUE(interval.contains(50));
  EXPECT_FALSE(interval.contains(99));
  EXPECT_FALSE(PercentileInterval({1.0}, 0.9).known());
}

TEST(Bootstrap, RefitIntervalIsUnknownWhenMostResamplesFailed) {
  const double nan = std::nan("");
  EXPECT_TRUE(RefitInterval({1, 2, 3, nan}, 0.9).known());
  EXPECT_FALSE(RefitInterval({1, nan, nan, nan}, 0.9).known());
  // An infinite refit (a variant that never reaches a loss) is a value, not a failure.
  EXPECT_EQ(RefitInterval({1, 2, INFINITY, INFINITY}, 0.9).hi, INFINITY);
}

// ---- L(C) = E + A * C^-alpha

TEST(PowerLawFit, RecoversNoiselessLawExactly) {
  std::vector<ComputePoint> points;
  for (int b = 0; b < 6; ++b) {
    const double flops = 1e17 * std::pow(10.0, 0.6 * b);
    points.push_back({flops, kPowerLaw.Loss(flops)});
  }
  Result<PowerLawFit> fit = FitPowerLaw(points, {.bootstrap = {.resamples = 0}});
  ASSERT_TRUE(fit.ok()) << fit.status().ToString();
  EXPECT_NEAR(fit->law.E, kPowerLaw.E, 1e-4 * kPowerLaw.E);
  EXPECT_NEAR(fit->law.A, kPowerLaw.A, 1e-3 * kPowerLaw.A);
  EXPECT_NEAR(fit->law.alpha, kPowerLaw.alpha, 1e-4);
  EXPECT_FALSE(fit->alpha.known());  // no resamples, no interval
  // FlopsFor inverts Loss; a loss at or below E is never reached.
  EXPECT_NEAR(fit->law.FlopsFor(fit->law.Loss(3e19)), 3e19, 1e-6 * 3e19);
  EXPECT_EQ(fit->law.FlopsFor(fit->law.E), INFINITY);
}

// The contract of an interval: at 95% confidence, over 100 independent sweeps, each parameter's
// true value lies inside its interval in at least 90 (a binomial(100, 0.95) count falls below 90
// with probability 0.03). Intervals so wide that they cannot miss are ruled out by bounding their
// median width.
TEST(PowerLawFit, IntervalsCoverTheTrueLawInNinetyPercentOfDraws) {
  const auto start = std::chrono::steady_clock::now();
  int covered_e = 0, covered_a = 0, covered_alpha = 0;
  std::vector<double> alpha_widths;
  for (int draw = 0; draw < 100; ++draw) {
    std::mt19937_64 rng(1000 + draw);
    FitOptions options;
    options.bootstrap = {.resamples = 200, .confidence = 0.95, .seed = uint64_t(draw)};
    Result<PowerLawFit> fit = FitPowerLaw(PowerLawSweep(kPowerLaw, rng), options);
    ASSERT_TRUE(fit.ok()) << fit.status().ToString();
    covered_e += fit->E.contains(kPowerLaw.E);
    covered_a += fit->A.contains(kPowerLaw.A);
    covered_alpha += fit->alpha.contains(kPowerLaw.alpha);
    alpha_widths.push_back(fit->alpha.hi - fit->alpha.lo);
  }
  std::printf(
      "L(C) coverage of 100 draws: E %d, A %d, alpha %d; median alpha interval width "
      "%.3f; %.1f s\n",
      covered_e, covered_a, covered_alpha, Median(alpha_widths), Seconds(start));
  EXPECT_GE(covered_e, 90);
  EXPECT_GE(covered_a, 90);
  EXPECT_GE(covered_alpha, 90);
  EXPECT_LT(Median(alpha_widths), 0.75 * kPowerLaw.alpha);
}

TEST(PowerLawFit, NeedsThreeBudgetsAndPositiveValues) {
  EXPECT_EQ(FitPowerLaw({{1e18, 3}, {1e18, 3.1}, {1e19, 2.9}}).status().code(),
            Status::Code::kFailedPrecondition);
  EXPECT_EQ(FitPowerLaw({{1e18, 3}, {1e19, -1}, {1e20, 2.5}}).status().code(),
            Status::Code::kInvalidArgument);
}

// ---- L(N, D) = E + A / N^alpha + B / D^beta

TEST(ChinchillaFit, RecoversNoiselessLawExactly) {
  std::mt19937_64 rng(1);
  Result<ChinchillaFit> fit =
      FitChinchilla(ChinchillaSweep(kChinchilla, rng, 1, 0), {.bootstrap = {.resamples = 0}});
  ASSERT_TRUE(fit.ok()) << fit.status().ToString();
  EXPECT_NEAR(fit->law.E, kChinchilla.E, 1e-3 * kChinchilla.E);
  EXPECT_NEAR(fit->law.A, kChinchilla.A, 1e-2 * kChinchilla.A);
  EXPECT_NEAR(fit->law.B, kChinchilla.B, 1e-2 * kChinchilla.B);
  EXPECT_NEAR(fit->law.alpha, kChinchilla.alpha, 1e-3);
  EXPECT_NEAR(fit->law.beta, kChinchilla.beta, 1e-3);
}

TEST(ChinchillaFit, IntervalsCoverTheTrueLawInNinetyPercentOfDraws) {
  const auto start = std::chrono::steady_clock::now();
  int covered[6] = {};
  std::vector<double> alpha_widths;
  for (int draw = 0; draw < 100; ++draw) {
    std::mt19937_64 rng(1000 + draw);
    FitOptions options;
    options.bootstrap = {.resamples = 200, .confidence = 0.95, .seed = uint64_t(draw)};
    Result<ChinchillaFit> fit = FitChinchilla(ChinchillaSweep(kChinchilla, rng), options);
    ASSERT_TRUE(fit.ok()) << fit.status().ToString();
    covered[0] += fit->E.contains(kChinchilla.E);
    covered[1] += fit->A.contains(kChinchilla.A);
    covered[2] += fit->B.contains(kChinchilla.B);
    covered[3] += fit->alpha.contains(kChinchilla.alpha);
    covered[4] += fit->beta.contains(kChinchilla.beta);
    covered[5] += fit->params_exponent.contains(kChinchilla.ParamsExponent());
    alpha_widths.push_back(fit->alpha.hi - fit->alpha.lo);
  }
  std::printf(
      "L(N, D) coverage of 100 draws: E %d, A %d, B %d, alpha %d, beta %d, a %d; median "
      "alpha interval width %.3f; %.1f s\n",
      covered[0], covered[1], covered[2], covered[3], covered[4], covered[5], Median(alpha_widths),
      Seconds(start));
  for (int c : covered) EXPECT_GE(c, 90);
  EXPECT_LT(Median(alpha_widths), 0.25 * kChinchilla.alpha);
}

// A CLI answers in a moment: 96 runs with 300 resamples, the default, well under a few seconds.
// Huber loss: one run whose loss was logged 40% too high (a bad node, a mis-set eval) barely moves
// the fit, where least squares would be dragged towards it.
TEST(ChinchillaFit, OneCorruptRunBarelyMovesTheFit) {
  std::mt19937_64 rng(11);
  std::vector<ModelPoint> points = ChinchillaSweep(kChinchilla, rng, 1, 0.002);
  points[20].loss *= 1.4;
  Result<ChinchillaFit> fit = FitChinchilla(points, {.bootstrap = {.resamples = 0}});
  ASSERT_TRUE(fit.ok()) << fit.status().ToString();
  EXPECT_NEAR(fit->law.alpha, kChinchilla.alpha, 0.01);
  EXPECT_NEAR(fit->law.beta, kChinchilla.beta, 0.01);
  EXPECT_NEAR(fit->law.E, kChinchilla.E, 0.03);
}

TEST(ChinchillaFit, SameSeedSameIntervalsOtherSeedOtherIntervals) {
  std::mt19937_64 rng(3);
  const std::vector<ModelPoint> points = ChinchillaSweep(kChinchilla, rng);
  FitOptions options{.bootstrap = {.resamples = 40, .seed = 9}};
  const ChinchillaFit a = *FitChinchilla(points, options);
  const ChinchillaFit b = *FitChinchilla(points, options);
  options.bootstrap.seed = 10;
  const ChinchillaFit c = *FitChinchilla(points, options);
  EXPECT_EQ(a.alpha.lo, b.alpha.lo);
  EXPECT_EQ(a.alpha.hi, b.alpha.hi);
  EXPECT_NE(a.alpha.lo, c.alpha.lo);
}

TEST(ChinchillaFit, NeedsFiveDistinctRunsAcrossSizesAndTokens) {
  std::vector<ModelPoint> one_size;
  for (double d : {1e9, 2e9, 4e9, 8e9, 16e9, 32e9}) one_size.push_back({1e8, d, 3.0});
  EXPECT_EQ(FitChinchilla(one_size).status().code(), Status::Code::kFailedPrecondition);
}

// Hoffmann et al., equation 4: at N_opt, dL/dN along C = k N D is zero, and the budget is spent.
TEST(ChinchillaLaw, ComputeOptimalAllocationMinimisesLossAtFixedCompute) {
  constexpr double kFlops = 5.76e23, kK = 6;  // Chinchilla's own budget
  const ComputeAllocation best = kChinchilla.ComputeOptimal(kFlops, kK);
  EXPECT_NEAR(kK * best.params * best.tokens / kFlops, 1.0, 1e-12);
  EXPECT_NEAR(best.loss, kChinchilla.Loss(best.params, best.tokens), 1e-12);
  for (double factor : {1.01, 1 / 1.01, 2.0, 0.5}) {
    const double params = best.params * factor;
    EXPECT_GT(kChinchilla.Loss(params, kFlops / (kK * params)), best.loss) << factor;
  }
  // N_opt grows as C^a: ten times the compute, 10^a times the parameters.
  EXPECT_NEAR(kChinchilla.ComputeOptimal(10 * kFlops, kK).params / best.params,
              std::pow(10.0, kChinchilla.ParamsExponent()), 1e-9);
}

// ---- IsoFLOP parabolas

std::vector<SizePoint> Valley(double optimum, const std::vector<double>& sizes,
                              double flops = 1e18) {
  std::vector<SizePoint> points;
  for (double n : sizes) {
    const double u = std::log(n / optimum);
    points.push_back({n, flops / (6 * n), 3.0 + 0.08 * u * u});
  }
  return points;
}

TEST(IsoflopParabola, FindsTheMinimumBetweenTheSizesTried) {
  Result<IsoflopParabola> parabola =
      FitIsoflopParabola(Valley(1e8, {2e7, 4.5e7, 8e7, 1.6e8, 3.5e8}));
  ASSERT_TRUE(parabola.ok()) << parabola.status().ToString();
  ASSERT_TRUE(parabola->minimum);
  EXPECT_NEAR(parabola->minimum->params / 1e8, 1, 1e-9);
  EXPECT_NEAR(parabola->minimum->loss, 3.0, 1e-9);
  // D = C / (6N) is linear in log-log, so the interpolated D_opt is exact.
  EXPECT_NEAR(parabola->minimum->tokens / (1e18 / 6e8), 1, 1e-9);
  EXPECT_FALSE(parabola->minimum_on_edge);
}

TEST(IsoflopParabola, FlagsAMinimumOnTheGridEdge) {
  // The valley's bottom lies beyond the largest size: the lowest loss is measured at that size.
  Result<IsoflopParabola> beyond = FitIsoflopParabola(Valley(5e8, {2e7, 4e7, 8e7, 1.6e8}));
  ASSERT_TRUE(beyond.ok());
  ASSERT_TRUE(beyond->minimum);
  EXPECT_TRUE(beyond->minimum_on_edge);
  EXPECT_EQ(beyond->best_params, 1.6e8);
  // Loss falling ever faster with N: no valley at all.
  std::vector<SizePoint> concave;
  for (double n : {2e7, 4e7, 8e7, 1.6e8})
    concave.push_back({n, 1e9, 4 - 0.05 * std::pow(std::log(n / 1e7), 2)});
  Result<IsoflopParabola> none = FitIsoflopParabola(concave);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->minimum);
  EXPECT_TRUE(none->minimum_on_edge);
  // Two sizes make no parabola.
  EXPECT_EQ(FitIsoflopParabola(Valley(1e8, {5e7, 2e8})).status().code(),
            Status::Code::kFailedPrecondition);
}

// ---- The analysis of a sweep

// Runs of one variant on an IsoFLOP grid drawn from `law` (3 seeds per point).
void AddVariant(const std::string& name, const ChinchillaLaw& law, std::vector<double> sizes,
                std::mt19937_64& rng, std::vector<RunObservation>* runs, double noise = 0.005) {
  std::normal_distribution<double> log_noise(0, noise);
  for (int b = 0; b < 4; ++b) {
    const double flops = 1e17 * std::pow(10.0, 0.5 * b);
    for (size_t s = 0; s < sizes.size(); ++s) {
      const double tokens = flops / (6 * sizes[s]);
      for (int seed = 0; seed < 3; ++seed) {
        runs->push_back({name, fmt::format("s{}", s), flops, seed, sizes[s], tokens, flops,
                         law.Loss(sizes[s], tokens) * std::exp(log_noise(rng))});
      }
    }
  }
}

const std::vector<double> kSizes = {1.5e7, 3e7, 6e7, 1.2e8, 2.4e8, 4.8e8};

TEST(ScalingAnalysis, SummarisesSeedsAndFitsTheLowerEnvelope) {
  std::mt19937_64 rng(21);
  std::vector<RunObservation> runs;
  AddVariant("dense", kChinchilla, kSizes, rng, &runs);
  const ScalingReport report = AnalyzeScaling(runs, {.bootstrap = {.resamples = 50}});
  ASSERT_EQ(report.variants.size(), 1u);
  const VariantScaling& dense = report.variants[0];
  ASSERT_EQ(dense.configs.size(), 4 * kSizes.size());
  for (size_t b = 0; b < 4; ++b) {
    // One envelope point per budget, and it is the size with the lowest mean loss there.
    int on_envelope = 0;
    double lowest = INFINITY;
    for (const ConfigSummary& c : dense.configs) {
      if (c.budget != dense.configs[b * kSizes.size()].budget) continue;
      EXPECT_EQ(c.seeds, 3);
      on_envelope += c.on_envelope;
      lowest = std::min(lowest, c.loss_mean);
    }
    EXPECT_EQ(on_envelope, 1);
    for (const ConfigSummary& c : dense.configs) {
      if (c.on_envelope && c.budget == dense.configs[b * kSizes.size()].budget) {
        EXPECT_EQ(c.loss_mean, lowest);
      }
    }
  }
  ASSERT_TRUE(dense.power_law);
  EXPECT_EQ(dense.power_law->points, 4u * 3u);  // the envelope's runs, every seed
  ASSERT_TRUE(dense.chinchilla);
  EXPECT_EQ(dense.chinchilla->points, runs.size());
  EXPECT_NEAR(dense.flops_per_param_token, 6, 1e-9);
  ASSERT_EQ(dense.optima.size(), 4u);
  for (const BudgetOptimum& optimum : dense.optima) {
    ASSERT_TRUE(optimum.parabola && optimum.parabola->minimum);
    ASSERT_TRUE(optimum.fitted);
    // Approaches 2 and 3 agree on N_opt to within the grid's resolution (2x between sizes).
    const double ratio = optimum.parabola->minimum->params / optimum.fitted->params;
    EXPECT_GT(ratio, 0.6) << optimum.budget;
    EXPECT_LT(ratio, 1 / 0.6) << optimum.budget;
  }
}

TEST(ScalingAnalysis, SampleStandardDeviationOverSeeds) {
  std::vector<RunObservation> runs;
  for (double loss : {3.0, 3.2}) runs.push_back({"v", "s", 1e18, 0, 1e8, 1e9, 1e18, loss});
  const ScalingReport report = AnalyzeScaling(runs, {.bootstrap = {.resamples = 0}});
  ASSERT_EQ(report.variants.at(0).configs.size(), 1u);
  const ConfigSummary& c = report.variants[0].configs[0];
  EXPECT_NEAR(c.loss_mean, 3.1, 1e-12);
  EXPECT_NEAR(c.loss_stddev, std::sqrt(0.02), 1e-12);
  EXPECT_FALSE(report.variants[0].power_law);  // one budget: no law, and a warning says so
  EXPECT_FALSE(report.warnings.empty());
}

TEST(ScalingAnalysis, WarnsWhenTheGridMissesTheMinimum) {
  std::mt19937_64 rng(22);
  std::vector<RunObservation> runs;
  // Only small sizes: at the larger budgets the best size is the largest one tried.
  AddVariant("narrow", kChinchilla, {1e7, 1.5e7, 2.2e7, 3.3e7}, rng, &runs);
  const ScalingReport report = AnalyzeScaling(runs, {.bootstrap = {.resamples = 0}});
  bool warned = false;
  for (const std::string& w : report.warnings) {
    warned |= w.find("narrow: at C = 3.16e+18") != std::string::npos &&
              w.find("add larger sizes") != std::string::npos;
  }
  EXPECT_TRUE(warned) << fmt::format("{}", fmt::join(report.warnings, "\n"));
  EXPECT_TRUE(report.variants[0].optima.back().parabola->minimum_on_edge);
}

// A variant built to need exactly 2.5x the compute of the baseline for every loss,
// L_slow(C) = L_base(C / 2.5), has multiplier 2.5 whatever loss it is read at.
std::vector<RunObservation> ShiftedVariants(double multiplier, double noise, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> log_noise(0, noise);
  std::vector<RunObservation> runs;
  for (int b = 0; b < 8; ++b) {
    const double flops = 1e17 * std::pow(10.0, 0.5 * b);
    for (int s = 0; s < 3; ++s) {
      runs.push_back({"base", "m", flops, s, 1e8, flops / 6e8, flops,
                      kPowerLaw.Loss(flops) * std::exp(log_noise(rng))});
      runs.push_back({"slow", "m", flops, s, 1e8, flops / 6e8, flops,
                      kPowerLaw.Loss(flops / multiplier) * std::exp(log_noise(rng))});
    }
  }
  return runs;
}

TEST(ScalingAnalysis, ComputeMultiplierOfAVariantShiftedInCompute) {
  constexpr double kMultiplier = 2.5;
  const ScalingReport exact =
      AnalyzeScaling(ShiftedVariants(kMultiplier, 0, 1), {.bootstrap = {.resamples = 0}});
  ASSERT_EQ(exact.multipliers.size(), 1u);
  const ComputeMultiplier& m = exact.multipliers[0];
  EXPECT_EQ(m.baseline, "base");
  EXPECT_EQ(m.other, "slow");
  EXPECT_EQ(m.reference_flops, 1e17 * std::pow(10.0, 3.5));
  // Read at the weaker variant's loss at the largest budget: the stronger one reaches it inside its
  // own data, at 1/2.5 of that budget.
  EXPECT_NEAR(m.reference_loss, kPowerLaw.Loss(m.reference_flops / kMultiplier), 1e-6);
  EXPECT_NEAR(m.multiplier, kMultiplier, 1e-3 * kMultiplier);
}

// The multiplier's interval keeps the intervals' promise too: it covers 2.5 in 90 of 100 noisy
// sweeps, and is narrow enough to tell the two variants apart (its lower end above 1) in most.
TEST(ScalingAnalysis, ComputeMultiplierIntervalCoversTheTrueMultiplier) {
  constexpr double kMultiplier = 2.5;
  const auto start = std::chrono::steady_clock::now();
  int covered = 0, separated = 0;
  for (int draw = 0; draw < 100; ++draw) {
    const ScalingReport report =
        AnalyzeScaling(ShiftedVariants(kMultiplier, 0.003, 2000 + draw),
                       {.bootstrap = {.resamples = 200, .seed = uint64_t(draw)}});
    ASSERT_EQ(report.multipliers.size(), 1u);
    covered += report.multipliers[0].interval.contains(kMultiplier);
    separated += report.multipliers[0].interval.lo > 1;
  }
  std::printf("compute multiplier 2.5: covered in %d of 100 draws, told from 1 in %d; %.1f s\n",
              covered, separated, Seconds(start));
  EXPECT_GE(covered, 90);
  EXPECT_GE(separated, 90);
}

// ---- Figures

class ScalingPlotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "fit_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    std::mt19937_64 rng(31);
    std::vector<RunObservation> runs;
    AddVariant("dense", kChinchilla, kSizes, rng, &runs);
    AddVariant("low_rank", {1.75, 520, 410.7, 0.33, 0.28}, kSizes, rng, &runs);
    report_ = AnalyzeScaling(runs, {.bootstrap = {.resamples = 50}});
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Read(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  fs::path dir_;
  ScalingReport report_;
};

TEST_F(ScalingPlotTest, DrawsPngAndSvg) {
  const fs::path png = dir_ / "curves.png", svg = dir_ / "curves.svg";
  ASSERT_TRUE(PlotScaling(report_, png.string()).ok());
  ASSERT_TRUE(PlotScaling(report_, svg.string()).ok());
  // Three panels of points, curves and text: tens of kilobytes, not an empty canvas.
  EXPECT_GT(fs::file_size(png), 30'000u);
  EXPECT_EQ(Read(png).substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  const std::string text = Read(svg);
  EXPECT_GT(text.size(), 30'000u);
  EXPECT_NE(text.find("<svg"), std::string::npos);
  size_t paths = 0;
  for (size_t at = text.find("<path"); at != std::string::npos; at = text.find("<path", at + 1)) {
    ++paths;
  }
  EXPECT_GT(paths, 50u);
  // The legend names the variants (verbatim: "low_rank" is not a subscript) with their exponents.
  EXPECT_NE(text.find("low_rank:  α = "), std::string::npos);
}

TEST_F(ScalingPlotTest, ScriptHasAComputePanelAndAnIsoflopPanelPerVariant) {
  const std::string script = ScalingPlotScript(report_, "png", "/x/y.png", {});
  EXPECT_NE(script.find("set output '/x/y.png'"), std::string::npos);
  EXPECT_NE(script.find("Loss against training compute"), std::string::npos);
  EXPECT_NE(script.find("IsoFLOP profiles: dense"), std::string::npos);
  EXPECT_NE(script.find("IsoFLOP profiles: low_rank"), std::string::npos);
  EXPECT_NE(script.find("dense:  α = "), std::string::npos);
}

// The smallest sweep there is: one run, no law, no IsoFLOP panel; still a figure with its point.
TEST_F(ScalingPlotTest, DrawsASingleRun) {
  const ScalingReport one =
      AnalyzeScaling({{"dense", "s", 1e18, 0, 1e8, 1.6e9, 1e18, 3.2}}, {.bootstrap = {}});
  const fs::path png = dir_ / "one.png";
  const Status plotted = PlotScaling(one, png.string());
  ASSERT_TRUE(plotted.ok()) << plotted.ToString();
  EXPECT_GT(fs::file_size(png), 10'000u);
  EXPECT_EQ(ScalingPlotScript(one, "png", png.string(), {}).find("IsoFLOP"), std::string::npos);
}

TEST_F(ScalingPlotTest, RefusesOtherFormatsAndReportsMissingGnuplot) {
  EXPECT_EQ(PlotScaling(report_, (dir_ / "curves.pdf").string()).code(),
            Status::Code::kInvalidArgument);
  setenv("ISOFLOP_GNUPLOT", "/nonexistent/gnuplot", 1);
  const Status missing = PlotScaling(report_, (dir_ / "curves.png").string());
  unsetenv("ISOFLOP_GNUPLOT");
  EXPECT_EQ(missing.code(), Status::Code::kNotFound) << missing.ToString();
  EXPECT_NE(missing.message().find("gnuplot"), std::string::npos);
}

}  // namespace
}  // namespace isoflop
