#include "common/fit/scaling_analysis.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <tuple>
#include <utility>

namespace isoflop {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool Usable(const RunObservation& run) {
  for (double v : {run.params, run.tokens, run.flops, run.loss, run.budget}) {
    if (!(v > 0 && std::isfinite(v))) return false;
  }
  return true;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

std::vector<ConfigSummary> SummarizeConfigs(const std::vector<const RunObservation*>& runs) {
  std::map<std::pair<double, std::string>, std::vector<const RunObservation*>> groups;
  for (const RunObservation* run : runs) groups[{run->budget, run->size}].push_back(run);
  std::vector<ConfigSummary> configs;
  for (const auto& [key, seeds] : groups) {
    ConfigSummary config;
    config.budget = key.first;
    config.size = key.second;
    config.seeds = static_cast<int>(seeds.size());
    for (const RunObservation* run : seeds) {
      config.params += run->params / config.seeds;
      config.tokens += run->tokens / config.seeds;
      config.flops += run->flops / config.seeds;
      config.loss_mean += run->loss / config.seeds;
    }
    if (config.seeds > 1) {
      double squares = 0;
      for (const RunObservation* run : seeds) {
        squares += (run->loss - config.loss_mean) * (run->loss - config.loss_mean);
      }
      config.loss_stddev = std::sqrt(squares / (config.seeds - 1));
    }
    configs.push_back(config);
  }
  std::sort(configs.begin(), configs.end(), [](const ConfigSummary& l, const ConfigSummary& r) {
    return std::tie(l.budget, l.params, l.size) < std::tie(r.budget, r.params, r.size);
  });
  // The lower envelope: per budget, the size that reached the lowest mean loss.
  for (size_t begin = 0; begin < configs.size();) {
    size_t end = begin, best = begin;
    for (; end < configs.size() && configs[end].budget == configs[begin].budget; ++end) {
      if (configs[end].loss_mean < configs[best].loss_mean) best = end;
    }
    configs[best].on_envelope = true;
    begin = end;
  }
  return configs;
}

void FitBudgetOptima(const std::vector<const RunObservation*>& runs, VariantScaling* variant,
                     std::vector<std::string>* warnings) {
  std::map<double, std::vector<SizePoint>> budgets;
  for (const RunObservation* run : runs) {
    budgets[run->budget].push_back({run->params, run->tokens, run->loss});
  }
  std::vector<std::pair<double, double>> interior_minima;  // (ln C, ln N_opt)
  for (const auto& [budget, points] : budgets) {
    BudgetOptimum optimum;
    optimum.budget = budget;
    if (variant->chinchilla) {
      optimum.fitted =
          variant->chinchilla->law.ComputeOptimal(budget, variant->flops_per_param_token);
    }
    std::set<double> sizes;
    for (const SizePoint& p : points) sizes.insert(p.params);
    if (sizes.size() >= 3) {
      Result<IsoflopParabola> parabola = FitIsoflopParabola(points);
      if (parabola.ok()) {
        optimum.parabola = *parabola;
        const double lo = parabola->min_params, hi = parabola->max_params;
        if (!parabola->minimum) {
          warnings->push_back(fmt::format(
              "{}: at C = {:.3g} the loss does not turn upwards over N = {:.3g} to {:.3g}: no "
              "IsoFLOP minimum; the grid needs wider sizes",
              variant->variant, budget, lo, hi));
        } else if (parabola->minimum_on_edge) {
          const double n_opt = parabola->minimum->params, best = parabola->best_params;
          const bool low = n_opt < lo || (n_opt <= hi && best == lo);
          const std::string edge = low ? "smallest" : "largest";
          const std::string where =
              n_opt < lo || n_opt > hi
                  ? fmt::format(
                        "the IsoFLOP minimum (N = {:.3g}) lies beyond the {} size tried "
                        "({:.3g})",
                        n_opt, edge, low ? lo : hi)
                  : fmt::format(
                        "the lowest loss is at the {} size tried ({:.3g}), so the "
                        "IsoFLOP minimum (N = {:.3g}) is not bracketed by runs",
                        edge, best, n_opt);
          warnings->push_back(fmt::format("{}: at C = {:.3g} {}: add {} sizes", variant->variant,
                                          budget, where, low ? "smaller" : "larger"));
        } else {
          interior_minima.emplace_back(std::log(budget), std::log(parabola->minimum->params));
        }
      } else {
        warnings->push_back(fmt::format("{}: at C = {:.3g}: {}", variant->variant, budget,
                                        parabola.status().message()));
      }
    }
    variant->optima.push_back(optimum);
  }
  if (interior_minima.size() >= 2) {
    // Least-squares slope of ln N_opt on ln C.
    double mean_x = 0, mean_y = 0;
    for (const auto& [x, y] : interior_minima) {
      mean_x += x / interior_minima.size();
      mean_y += y / interior_minima.size();
    }
    double sxy = 0, sxx = 0;
    for (const auto& [x, y] : interior_minima) {
      sxy += (x - mean_x) * (y - mean_y);
      sxx += (x - mean_x) * (x - mean_x);
    }
    if (sxx > 0) variant->isoflop_params_exponent = sxy / sxx;
  }
}

VariantScaling AnalyzeVariant(const std::string& name,
                              const std::vector<const RunObservation*>& runs,
                              const FitOptions& options, std::vector<std::string>* warnings) {
  VariantScaling variant;
  variant.variant = name;
  variant.configs = SummarizeConfigs(runs);
  std::vector<double> k;
  for (const RunObservation* run : runs) k.push_back(run->flops / (run->params * run->tokens));
  variant.flops_per_param_token = Median(k);

  std::set<std::pair<double, std::string>> envelope;
  for (const ConfigSummary& config : variant.configs) {
    if (config.on_envelope) envelope.emplace(config.budget, config.size);
  }
  std::vector<ComputePoint> compute_points;
  std::vector<ModelPoint> model_points;
  for (const RunObservation* run : runs) {
    if (envelope.count({run->budget, run->size})) compute_points.push_back({run->flops, run->loss});
    model_points.push_back({run->params, run->tokens, run->loss});
  }

  Result<PowerLawFit> power_law = FitPowerLaw(compute_points, options);
  if (power_law.ok()) {
    variant.power_law = std::move(*power_law);
  } else {
    variant.power_law_missing = power_law.status().message();
    warnings->push_back(fmt::format("{}: no L(C) fit: {}", name, variant.power_law_missing));
  }
  Result<ChinchillaFit> chinchilla = FitChinchilla(model_points, options);
  if (chinchilla.ok()) {
    variant.chinchilla = std::move(*chinchilla);
  } else {
    variant.chinchilla_missing = chinchilla.status().message();
    warnings->push_back(fmt::format("{}: no L(N, D) fit: {}", name, variant.chinchilla_missing));
  }
  FitBudgetOptima(runs, &variant, warnings);
  return variant;
}

double LargestEnvelopeFlops(const VariantScaling& variant) {
  double largest = 0;
  for (const ConfigSummary& config : variant.configs) {
    if (config.on_envelope) largest = std::max(largest, config.flops);
  }
  return largest;
}

// C_other(L) / C_baseline(L) at L = the higher of the two laws' losses at `flops`.
double Multiplier(const PowerLaw& baseline, const PowerLaw& other, double flops,
                  double* reference_loss = nullptr) {
  const double loss = std::max(baseline.Loss(flops), other.Loss(flops));
  if (reference_loss) *reference_loss = loss;
  return other.FlopsFor(loss) / baseline.FlopsFor(loss);
}

ComputeMultiplier CompareVariants(const VariantScaling& baseline, const VariantScaling& other,
                                  double confidence) {
  ComputeMultiplier m;
  m.baseline = baseline.variant;
  m.other = other.variant;
  m.reference_flops = std::min(LargestEnvelopeFlops(baseline), LargestEnvelopeFlops(other));
  m.multiplier = Multiplier(baseline.power_law->law, other.power_law->law, m.reference_flops,
                            &m.reference_loss);
  const std::vector<PowerLaw>& base_draws = baseline.power_law->draws;
  const std::vector<PowerLaw>& other_draws = other.power_law->draws;
  std::vector<double> draws;
  for (size_t r = 0; r < std::min(base_draws.size(), other_draws.size()); ++r) {
    const bool refitted = !std::isnan(base_draws[r].alpha) && !std::isnan(other_draws[r].alpha);
    draws.push_back(refitted ? Multiplier(base_draws[r], other_draws[r], m.reference_flops) : kNaN);
  }
  m.interval = RefitInterval(draws, confidence);
  return m;
}

}  // namespace

ScalingReport AnalyzeScaling(const std::vector<RunObservation>& runs, const FitOptions& options) {
  ScalingReport report;
  std::vector<std::string> order;
  std::map<std::string, std::vector<const RunObservation*>> by_variant;
  size_t unusable = 0;
  for (const RunObservation& run : runs) {
    if (!Usable(run)) {
      ++unusable;
      continue;
    }
    auto& list = by_variant[run.variant];
    if (list.empty()) order.push_back(run.variant);
    list.push_back(&run);
  }
  if (unusable > 0) {
    report.warnings.push_back(
        fmt::format("{} run(s) left out: loss, N, D or C not a positive finite number", unusable));
  }
  for (size_t i = 0; i < order.size(); ++i) {
    // Each variant resamples with its own stream: with one shared seed, variants on the same grid
    // would drop the same configurations in the same resample, their errors would move together,
    // and the multiplier's interval would come out too narrow.
    FitOptions variant_options = options;
    variant_options.bootstrap.seed = options.bootstrap.seed + 0x9E3779B97F4A7C15ull * (i + 1);
    report.variants.push_back(
        AnalyzeVariant(order[i], by_variant[order[i]], variant_options, &report.warnings));
  }
  for (size_t i = 0; i < report.variants.size(); ++i) {
    for (size_t j = i + 1; j < report.variants.size(); ++j) {
      if (report.variants[i].power_law && report.variants[j].power_law) {
        report.multipliers.push_back(
            CompareVariants(report.variants[i], report.variants[j], options.bootstrap.confidence));
      }
    }
  }
  return report;
}

}  // namespace isoflop
