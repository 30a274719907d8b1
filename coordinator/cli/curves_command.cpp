#include "coordinator/cli/curves_command.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "common/fit/scaling_analysis.h"
#include "common/fit/scaling_plot.h"
#include "common/store/results_format.h"
#include "common/store/run_store.h"

namespace isoflop {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

int Fail(const Status& status) {
  std::fprintf(stderr, "isoflop: %s\n", status.message().c_str());
  return 1;
}

struct Observations {
  std::vector<RunObservation> runs;
  int64_t total = 0;
  std::vector<std::pair<std::string, std::string>> left_out;  // (run name, why)
};

Observations Observe(const std::vector<RunOutcome>& outcomes, const CurvesFlags& flags) {
  Observations observed;
  for (const RunOutcome& run : outcomes) {
    ++observed.total;
    if (run.state != RunState::kCompleted) {
      observed.left_out.emplace_back(run.name, ToString(run.state));
      continue;
    }
    if (!run.final_value) {
      observed.left_out.emplace_back(run.name, "no final " + flags.metric);
      continue;
    }
    const double params =
        static_cast<double>(flags.params == "nonemb" ? run.params_nonemb : run.params);
    observed.runs.push_back({run.variant, run.size, run.budget, run.seed, params,
                             static_cast<double>(run.tokens), run.planned_flops, *run.final_value});
  }
  return observed;
}

// "1.734 [1.54, 1.881]": a value and its interval, each to `digits` significant digits.
std::string WithInterval(double value, const Interval& interval, int digits = 4) {
  if (!interval.known()) return fmt::format("{:.{}g}", value, digits);
  return fmt::format("{:.{}g} [{:.{}g}, {:.{}g}]", value, digits, interval.lo, digits, interval.hi,
                     digits);
}

json IntervalJson(const Interval& interval) {
  if (!interval.known()) return nullptr;
  auto end = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  return json::array({end(interval.lo), end(interval.hi)});
}

json FiniteOrNull(double v) {
  return std::isfinite(v) ? json(v) : json(nullptr);
}

ordered_json AllocationJson(const ComputeAllocation& a) {
  return {{"params", a.params}, {"tokens", a.tokens}, {"loss", a.loss}};
}

ordered_json VariantJson(const VariantScaling& v) {
  ordered_json out;
  out["variant"] = v.variant;
  out["flops_per_param_token"] = v.flops_per_param_token;
  ordered_json points = ordered_json::array();
  for (const ConfigSummary& c : v.configs) {
    points.push_back({{"size", c.size},
                      {"budget", c.budget},
                      {"params", c.params},
                      {"tokens", c.tokens},
                      {"flops", c.flops},
                      {"loss_mean", c.loss_mean},
                      {"loss_stddev", c.loss_stddev},
                      {"seeds", c.seeds},
                      {"on_envelope", c.on_envelope}});
  }
  out["points"] = points;
  if (v.power_law) {
    const PowerLawFit& f = *v.power_law;
    out["power_law"] = {{"E", f.law.E},         {"E_interval", IntervalJson(f.E)},
                        {"A", f.law.A},         {"A_interval", IntervalJson(f.A)},
                        {"alpha", f.law.alpha}, {"alpha_interval", IntervalJson(f.alpha)},
                        {"runs", f.points},     {"huber_cost", f.huber_cost}};
  } else {
    out["power_law"] = nullptr;
    out["power_law_missing"] = v.power_law_missing;
  }
  if (v.chinchilla) {
    const ChinchillaFit& f = *v.chinchilla;
    out["chinchilla"] = {{"E", f.law.E},
                         {"E_interval", IntervalJson(f.E)},
                         {"A", f.law.A},
                         {"A_interval", IntervalJson(f.A)},
                         {"B", f.law.B},
                         {"B_interval", IntervalJson(f.B)},
                         {"alpha", f.law.alpha},
                         {"alpha_interval", IntervalJson(f.alpha)},
                         {"beta", f.law.beta},
                         {"beta_interval", IntervalJson(f.beta)},
                         {"params_exponent", f.law.ParamsExponent()},
                         {"params_exponent_interval", IntervalJson(f.params_exponent)},
                         {"runs", f.points},
                         {"huber_cost", f.huber_cost}};
  } else {
    out["chinchilla"] = nullptr;
    out["chinchilla_missing"] = v.chinchilla_missing;
  }
  ordered_json optima = ordered_json::array();
  for (const BudgetOptimum& b : v.optima) {
    ordered_json optimum = {{"budget", b.budget}, {"isoflop", nullptr}, {"fitted", nullptr}};
    if (b.parabola && b.parabola->minimum) {
      optimum["isoflop"] = AllocationJson(*b.parabola->minimum);
      optimum["isoflop"]["on_edge"] = b.parabola->minimum_on_edge;
    } else if (b.parabola) {
      optimum["isoflop"] = {{"params", nullptr}, {"on_edge", true}};
    }
    if (b.fitted) optimum["fitted"] = AllocationJson(*b.fitted);
    optima.push_back(optimum);
  }
  out["optima"] = optima;
  out["isoflop_params_exponent"] =
      v.isoflop_params_exponent ? json(*v.isoflop_params_exponent) : json(nullptr);
  return out;
}

std::string ReportJson(const std::string& sweep, int64_t sweep_id, const CurvesFlags& flags,
                       const Observations& observed, const ScalingReport& report) {
  ordered_json out;
  out["sweep"] = sweep;
  out["sweep_id"] = sweep_id;
  out["metric"] = flags.metric;
  out["params"] = flags.params;
  out["confidence"] = flags.confidence;
  out["bootstrap_resamples"] = flags.bootstrap;
  out["runs"] = observed.total;
  out["runs_used"] = observed.runs.size();
  ordered_json left_out = ordered_json::array();
  for (const auto& [name, why] : observed.left_out)
    left_out.push_back({{"run", name}, {"why", why}});
  out["runs_left_out"] = left_out;
  ordered_json variants = ordered_json::array();
  for (const VariantScaling& v : report.variants) variants.push_back(VariantJson(v));
  out["variants"] = variants;
  ordered_json multipliers = ordered_json::array();
  for (const ComputeMultiplier& m : report.multipliers) {
    // An infinite multiplier (the other variant never reaches the loss) is null, as JSON has no
    // infinity.
    multipliers.push_back({{"baseline", m.baseline},
                           {"other", m.other},
                           {"reference_flops", m.reference_flops},
                           {"reference_loss", m.reference_loss},
                           {"multiplier", FiniteOrNull(m.multiplier)},
                           {"multiplier_interval", IntervalJson(m.interval)}});
  }
  out["multipliers"] = multipliers;
  out["warnings"] = report.warnings;
  return out.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

// One table: a header row and string cells, rendered as `isoflop results` renders its tables.
struct Table {
  QueryResult result;
  explicit Table(std::vector<std::string> columns) { result.columns = std::move(columns); }
  void Row(std::vector<json> cells) { result.rows.push_back(std::move(cells)); }
};

std::string ReportTable(const std::string& sweep, int64_t sweep_id, const CurvesFlags& flags,
                        const Observations& observed, const ScalingReport& report) {
  std::string out = fmt::format(
      "sweep {} (#{}): {} of {} runs completed with a final {}; N = {} parameters; intervals: "
      "{:g}% over {} bootstrap resamples\n",
      sweep, sweep_id, observed.runs.size(), observed.total, flags.metric,
      flags.params == "nonemb" ? "non-embedding" : "total", 100 * flags.confidence,
      flags.bootstrap);

  Table power({"variant", "runs", "E", "A", "alpha"});
  for (const VariantScaling& v : report.variants) {
    if (!v.power_law) {
      power.Row({v.variant, nullptr, "-", "-", "-"});
      continue;
    }
    const PowerLawFit& f = *v.power_law;
    power.Row({v.variant, f.points, WithInterval(f.law.E, f.E), WithInterval(f.law.A, f.A),
               WithInterval(f.law.alpha, f.alpha)});
  }
  out += "\nL(C) = E + A * C^-alpha, fitted to the best size at each budget (all its seeds)\n";
  out += FormatTable(power.result);

  Table chinchilla({"variant", "runs", "E", "A", "B", "alpha", "beta", "N_opt ~ C^a"});
  for (const VariantScaling& v : report.variants) {
    if (!v.chinchilla) {
      chinchilla.Row({v.variant, nullptr, "-", "-", "-", "-", "-", "-"});
      continue;
    }
    const ChinchillaFit& f = *v.chinchilla;
    chinchilla.Row({v.variant, f.points, WithInterval(f.law.E, f.E), WithInterval(f.law.A, f.A),
                    WithInterval(f.law.B, f.B), WithInterval(f.law.alpha, f.alpha),
                    WithInterval(f.law.beta, f.beta),
                    WithInterval(f.law.ParamsExponent(), f.params_exponent, 3)});
  }
  out +=
      "\nL(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. approach 3), fitted to every "
      "run\n";
  out += FormatTable(chinchilla.result);

  Table optima({"variant", "C", "N_opt isoflop", "D_opt isoflop", "L isoflop", "N_opt L(N,D)",
                "D_opt L(N,D)", "L L(N,D)"});
  auto number = [](double v) -> json { return fmt::format("{:.3g}", v); };
  for (const VariantScaling& v : report.variants) {
    for (const BudgetOptimum& b : v.optima) {
      std::vector<json> row = {v.variant, number(b.budget)};
      if (b.parabola && b.parabola->minimum) {
        const ComputeAllocation& m = *b.parabola->minimum;
        const char* edge = b.parabola->minimum_on_edge ? " (edge)" : "";
        row.push_back(fmt::format("{:.3g}{}", m.params, edge));
        row.push_back(number(m.tokens));
        row.push_back(fmt::format("{:.4g}", m.loss));
      } else {
        const char* why = b.parabola ? "no minimum" : "";
        row.insert(row.end(), {why, "", ""});
      }
      if (b.fitted) {
        row.insert(row.end(), {number(b.fitted->params), number(b.fitted->tokens),
                               fmt::format("{:.4g}", b.fitted->loss)});
      } else {
        row.insert(row.end(), {"", "", ""});
      }
      optima.Row(std::move(row));
    }
  }
  out += "\nCompute-optimal N and D per budget: IsoFLOP parabola (3+ sizes), and from L(N, D)\n";
  out += FormatTable(optima.result);
  bool any_exponent = false;
  for (const VariantScaling& v : report.variants) {
    if (v.isoflop_params_exponent) {
      if (!any_exponent) out += "\nIsoFLOP frontier N_opt ~ C^a:";
      out += fmt::format("{} {} a = {:.3f}", any_exponent ? "," : "", v.variant,
                         *v.isoflop_params_exponent);
      any_exponent = true;
    }
  }
  if (any_exponent) out += "\n";

  if (!report.multipliers.empty()) {
    Table multipliers({"baseline", "other", "C", "loss", "compute multiplier"});
    for (const ComputeMultiplier& m : report.multipliers) {
      multipliers.Row({m.baseline, m.other, number(m.reference_flops),
                       fmt::format("{:.4g}", m.reference_loss),
                       std::isfinite(m.multiplier) ? WithInterval(m.multiplier, m.interval, 3)
                                                   : std::string("never reaches it")});
    }
    out +=
        "\nCompute multiplier: C_other / C_baseline at equal loss, read at the loss the weaker "
        "of the two reaches with the largest C both ran (> 1: other needs more compute)\n";
    out += FormatTable(multipliers.result);
  }
  return out;
}

}  // namespace

CLI::App* AddCurvesCommand(CLI::App* app, CurvesFlags* f) {
  CLI::App* curves = app->add_subcommand(
      "curves", "fit scaling laws to a sweep's runs, compare its variants, and plot them");
  curves->add_option("sweep", f->sweep, "sweep name or id")->required();
  curves->add_option("--metric", f->metric, "eval metric to fit (its last value per run)")
      ->capture_default_str();
  curves->add_option("--params", f->params, "N: total or nonemb (non-embedding) parameters")
      ->check(CLI::IsMember({"total", "nonemb"}))
      ->capture_default_str();
  curves->add_option("--plot", f->plots, "write the figure to FILE.png or FILE.svg (repeatable)");
  curves->add_option("--format", f->format, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  curves->add_option("--bootstrap", f->bootstrap, "bootstrap resamples per fit (0: no intervals)")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  curves->add_option("--confidence", f->confidence, "coverage of each interval")
      ->check(CLI::Range(0.5, 0.999))
      ->capture_default_str();
  curves->add_option("--seed", f->seed, "bootstrap seed")->capture_default_str();
  return curves;
}

int RunCurves(const StateDir& state, const CurvesFlags& flags) {
  for (const std::string& plot : flags.plots) {
    const std::string extension = fs::path(plot).extension().string();
    if (extension != ".png" && extension != ".svg") {
      return Fail(Status::InvalidArgument(fmt::format("--plot {}: expected a .png or .svg", plot)));
    }
  }
  std::error_code error;
  if (!fs::exists(state.database(), error)) {
    return Fail(Status::NotFound(
        fmt::format("no results database in {} (nothing submitted yet)", state.root)));
  }
  auto store = RunStore::OpenReadOnly(state.database());
  if (!store.ok()) return Fail(store.status());
  auto sweep_id = (*store)->FindSweep(flags.sweep);
  if (!sweep_id.ok()) return Fail(sweep_id.status());
  auto outcomes = (*store)->RunOutcomes(*sweep_id, flags.metric);
  if (!outcomes.ok()) return Fail(outcomes.status());

  const Observations observed = Observe(*outcomes, flags);
  if (observed.runs.empty()) {
    return Fail(Status::FailedPrecondition(
        fmt::format("sweep {} has no completed run with a final {} ({} runs)", flags.sweep,
                    flags.metric, observed.total)));
  }
  FitOptions options;
  options.bootstrap.resamples = flags.bootstrap;
  options.bootstrap.confidence = flags.confidence;
  options.bootstrap.seed = flags.seed;
  const ScalingReport report = AnalyzeScaling(observed.runs, options);

  std::cout << (flags.format == "json"
                    ? ReportJson(flags.sweep, *sweep_id, flags, observed, report)
                    : ReportTable(flags.sweep, *sweep_id, flags, observed, report));
  std::cout.flush();
  for (const std::string& warning : report.warnings) {
    std::fprintf(stderr, "warning: %s\n", warning.c_str());
  }

  PlotOptions plot_options;
  plot_options.metric = flags.metric;
  plot_options.params_label =
      flags.params == "nonemb" ? "non-embedding parameters N" : "parameters N";
  plot_options.title = flags.sweep;
  for (const std::string& plot : flags.plots) {
    if (Status plotted = PlotScaling(report, plot, plot_options); !plotted.ok()) {
      return Fail(plotted);
    }
    std::fprintf(stderr, "wrote %s\n", plot.c_str());
  }
  return 0;
}

}  // namespace isoflop
