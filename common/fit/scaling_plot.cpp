#include "common/fit/scaling_plot.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern char** environ;

namespace isoflop {
namespace {

namespace fs = std::filesystem;

// Okabe and Ito's palette: its colours stay apart under the common colour-vision deficiencies.
constexpr const char* kVariantColours[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                           "#E69F00", "#56B4E9", "#000000", "#999999"};

// Budgets from small to large along viridis (dark purple to yellow-green): order reads as order,
// in colour and in greyscale. The last stop stops short of viridis's pale yellow, which vanishes
// on white.
std::string BudgetColour(size_t index, size_t count) {
  static constexpr double kStops[][3] = {
      {68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {170, 220, 50}};
  constexpr size_t kLast = std::size(kStops) - 1;
  const double t = count > 1 ? static_cast<double>(index) / static_cast<double>(count - 1) : 0;
  const size_t below = std::min(static_cast<size_t>(t * kLast), kLast - 1);
  const double w = t * kLast - static_cast<double>(below);
  int rgb[3];
  for (int c = 0; c < 3; ++c) {
    rgb[c] = static_cast<int>(std::lround(kStops[below][c] * (1 - w) + kStops[below + 1][c] * w));
  }
  return fmt::format("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
}

// A gnuplot single-quoted string: no escapes are processed inside, a quote is written twice.
std::string Quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("''") : std::string(1, c);
  return quoted + "'";
}

std::string Number(double value) {
  return fmt::format("{:.9g}", value);
}

// 3e15 as "3×10^{15}" and 1e15 as "10^{15}" (gnuplot enhanced text).
std::string PowerOfTen(double value) {
  const int exponent = static_cast<int>(std::floor(std::log10(value) + 1e-9));
  const double mantissa = value / std::pow(10.0, exponent);
  if (std::abs(mantissa - 1) < 1e-6) return fmt::format("10^{{{}}}", exponent);
  return fmt::format("{:g}×10^{{{}}}", std::round(mantissa * 10) / 10, exponent);
}

struct Tick {
  double value;
  std::string label;  // empty for a minor tick
};

// Labels at 1, then 1 and 3, then 1, 2 and 5 times powers of ten, whichever first gives three or
// more inside [lo, hi]; unlabelled minor ticks at the other integer multiples.
std::vector<Tick> LogTicks(double lo, double hi) {
  const int first = static_cast<int>(std::floor(std::log10(lo)));
  const int last = static_cast<int>(std::ceil(std::log10(hi)));
  const std::vector<std::vector<int>> mantissas = {{1}, {1, 3}, {1, 2, 5}, {1, 2, 3, 5, 7}};
  std::vector<int> labelled = mantissas.back();
  for (const std::vector<int>& candidate : mantissas) {
    int inside = 0;
    for (int e = first; e <= last; ++e) {
      for (int m : candidate) inside += m * std::pow(10.0, e) >= lo && m * std::pow(10.0, e) <= hi;
    }
    if (inside >= 3) {
      labelled = candidate;
      break;
    }
  }
  std::vector<Tick> ticks;
  for (int e = first; e <= last; ++e) {
    for (int m = 1; m <= 9; ++m) {
      const double value = m * std::pow(10.0, e);
      if (value < lo || value > hi) continue;
      const bool label = std::find(labelled.begin(), labelled.end(), m) != labelled.end();
      ticks.push_back({value, label ? PowerOfTen(value) : ""});
    }
  }
  return ticks;
}

// Four to eight labelled values at a step of 1, 2 or 5 times a power of ten.
std::vector<Tick> LinearTicks(double lo, double hi) {
  const double span = hi - lo;
  double step = std::pow(10.0, std::floor(std::log10(span / 4)));
  for (double factor : {1.0, 2.0, 5.0, 10.0}) {
    if (span / (step * factor) <= 8) {
      step *= factor;
      break;
    }
  }
  std::vector<Tick> ticks;
  for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) {
    const double rounded = std::round(v / step) * step;
    ticks.push_back({rounded, fmt::format("{:g}", rounded)});
  }
  return ticks;
}

std::string TicsCommand(const char* axis, const std::vector<Tick>& ticks) {
  std::string command = fmt::format("set {}tics (", axis);
  for (size_t i = 0; i < ticks.size(); ++i) {
    const Tick& t = ticks[i];
    command += fmt::format("{}\"{}\" {}{}", i ? ", " : "", t.label, Number(t.value),
                           t.label.empty() ? " 1" : "");
  }
  return command + ")\n";
}

// A datablock: `$name << EOD`, one row per line, then EOD.
std::string Datablock(const std::string& name, const std::vector<std::vector<double>>& rows) {
  std::string block = fmt::format("${} << EOD\n", name);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) block += (i ? " " : "") + Number(row[i]);
    block += "\n";
  }
  return block + "EOD\n";
}

std::string Interval3(const Interval& interval) {
  return interval.known() ? fmt::format(" [{:.3f}, {:.3f}]", interval.lo, interval.hi) : "";
}

struct Range {
  double lo = INFINITY;
  double hi = -INFINITY;
  void Add(double v) {
    if (std::isfinite(v)) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  // A single value (one run, one size) still needs an axis of some length.
  void WidenIfFlat() {
    if (hi - lo <= 1e-9 * std::abs(hi)) {
      const double half = hi != 0 ? 0.02 * std::abs(hi) : 1;
      lo -= half;
      hi += half;
    }
  }
};

// n points spaced evenly in ln x over [lo, hi].
std::vector<double> LogSpaced(double lo, double hi, int n) {
  std::vector<double> xs;
  for (int i = 0; i < n; ++i) xs.push_back(lo * std::pow(hi / lo, i / (n - 1.0)));
  return xs;
}

// Sets the panel's common frame: thin grey grid, ticks outside, no top and right border.
constexpr char kPanelStyle[] =
    "set border 3 lw 1 lc rgb '#333333'\n"
    "set tics nomirror out scale 0.6,0.3\n"
    "set grid xtics ytics lw 0.8 lc rgb '#e6e6e6'\n"
    "set lmargin 10\nset rmargin 3\nset tmargin 3\nset bmargin 4\n";

std::string ComputePanel(const ScalingReport& report, const PlotOptions& options) {
  std::string script;
  Range x, y;
  for (const VariantScaling& v : report.variants) {
    for (const ConfigSummary& c : v.configs) {
      x.Add(c.flops);
      y.Add(c.loss_mean - c.loss_stddev);
      y.Add(c.loss_mean + c.loss_stddev);
    }
  }
  y.WidenIfFlat();
  const double x_lo = x.lo / 1.6, x_hi = x.hi * 1.6;
  std::vector<std::string> plots;
  for (size_t i = 0; i < report.variants.size(); ++i) {
    const VariantScaling& v = report.variants[i];
    const std::string colour = kVariantColours[i % std::size(kVariantColours)];
    std::vector<std::vector<double>> envelope, other;
    Range fitted_range;
    for (const ConfigSummary& c : v.configs) {
      (c.on_envelope ? envelope : other).push_back({c.flops, c.loss_mean, c.loss_stddev});
      if (c.on_envelope) fitted_range.Add(c.flops);
    }
    std::string fit_title = v.variant;
    if (v.power_law) {
      // The curve spans the envelope it was fitted to, a little beyond at each end. Only its part
      // over the data sets the y range: an extrapolated end of a poor fit can run off by orders of
      // magnitude and would squash the points; gnuplot clips it at the panel's edge instead.
      std::vector<std::vector<double>> curve;
      for (double c : LogSpaced(fitted_range.lo / 1.4, fitted_range.hi * 1.4, 120)) {
        curve.push_back({c, v.power_law->law.Loss(c)});
        if (c >= fitted_range.lo && c <= fitted_range.hi) y.Add(curve.back()[1]);
      }
      script += Datablock(fmt::format("fit{}", i), curve);
      plots.push_back(
          fmt::format("$fit{} using 1:2 with lines lw 2 lc rgb '{}' title {} noenhanced", i, colour,
                      Quote(fmt::format("{}:  α = {:.3f}{}", v.variant, v.power_law->law.alpha,
                                        Interval3(v.power_law->alpha)))));
    }
    if (!other.empty()) {
      script += Datablock(fmt::format("off{}", i), other);
      plots.push_back(fmt::format(
          "$off{} using 1:2:3 with yerrorbars pt 6 ps 0.8 lw 1 lc rgb '{}' notitle", i, colour));
    }
    script += Datablock(fmt::format("env{}", i), envelope);
    plots.push_back(fmt::format(
        "$env{} using 1:2:3 with yerrorbars pt 7 ps 0.9 lw 1 lc rgb '{}' {}", i, colour,
        v.power_law ? "notitle" : "title " + Quote(v.variant + " (no fit)") + " noenhanced"));
  }
  plots.push_back(
      "keyentry with points pt 7 ps 0.9 lc rgb '#555555' title 'best size per budget (fitted)'");
  plots.push_back("keyentry with points pt 6 ps 0.9 lc rgb '#555555' title 'other sizes'");
  const double pad = std::pow(y.hi / y.lo, 0.06);
  const double y_lo = y.lo / pad, y_hi = y.hi * pad;
  script += kPanelStyle;
  script += "set logscale xy\n";
  script += fmt::format("set xrange [{}:{}]\nset yrange [{}:{}]\n", Number(x_lo), Number(x_hi),
                        Number(y_lo), Number(y_hi));
  script += TicsCommand("x", LogTicks(x_lo, x_hi));
  script += TicsCommand("y", LinearTicks(y_lo, y_hi));
  script += "set xlabel 'training FLOPs C'\n";
  script += fmt::format("set ylabel {} noenhanced\n", Quote(options.metric));
  script += "set title 'Loss against training compute'\n";
  // Loss falls from the top left to the bottom right, leaving the bottom left corner empty.
  script += "set key bottom left Left reverse samplen 2 spacing 1.15\n";
  script += "plot ";
  for (size_t i = 0; i < plots.size(); ++i) script += (i ? ", \\\n     " : "") + plots[i];
  return script + "\nunset logscale\n";
}

std::string IsoflopPanel(const VariantScaling& v, size_t index, const PlotOptions& options) {
  std::vector<const BudgetOptimum*> budgets;
  for (const BudgetOptimum& optimum : v.optima) {
    if (optimum.parabola) budgets.push_back(&optimum);
  }
  std::string script;
  std::vector<std::string> plots;
  Range x, y;
  for (size_t j = 0; j < budgets.size(); ++j) {
    const BudgetOptimum& b = *budgets[j];
    const IsoflopParabola& parabola = *b.parabola;
    const std::string colour = BudgetColour(j, budgets.size());
    const std::string name = fmt::format("iso{}_{}", index, j);
    const double curve_lo = parabola.min_params / 1.25, curve_hi = parabola.max_params * 1.25;
    std::vector<std::vector<double>> points, curve;
    for (const ConfigSummary& c : v.configs) {
      if (c.budget != b.budget) continue;
      points.push_back({c.params, c.loss_mean, c.loss_stddev});
      x.Add(c.params);
      y.Add(c.loss_mean - c.loss_stddev);
      y.Add(c.loss_mean + c.loss_stddev);
    }
    for (double n : LogSpaced(curve_lo, curve_hi, 100)) {
      curve.push_back({n, parabola.Loss(n)});
    }
    script += Datablock(name + "_pts", points) + Datablock(name + "_fit", curve);
    plots.push_back(fmt::format("${}_fit using 1:2 with lines lw 1.5 lc rgb '{}' title \"C = {}\"",
                                name, colour, PowerOfTen(b.budget)));
    plots.push_back(fmt::format(
        "${}_pts using 1:2:3 with yerrorbars pt 7 ps 0.8 lw 1 lc rgb '{}' notitle", name, colour));
    // A minimum far outside the grid (a nearly flat valley) would stretch the axis to nowhere:
    // it is drawn only near the sizes tried; the table and the warnings carry it either way.
    if (parabola.minimum && parabola.minimum->params >= curve_lo &&
        parabola.minimum->params <= curve_hi) {
      const ComputeAllocation& m = *parabola.minimum;
      script += Datablock(name + "_min", {{m.params, m.loss}});
      // A filled diamond marks a measured minimum; an open one a minimum on the grid's edge.
      plots.push_back(
          fmt::format("${}_min using 1:2 with points pt {} ps 1.7 lw 1.5 lc rgb '{}' "
                      "notitle",
                      name, parabola.minimum_on_edge ? 12 : 13, colour));
      x.Add(m.params);
      y.Add(m.loss);
    }
  }
  plots.push_back("keyentry with points pt 13 ps 1.5 lc rgb '#555555' title 'minimum'");
  plots.push_back("keyentry with points pt 12 ps 1.5 lc rgb '#555555' title 'on the grid edge'");
  y.WidenIfFlat();
  const double x_lo = x.lo / 1.35, x_hi = x.hi * 1.35;
  const double pad = 0.06 * (y.hi - y.lo);
  const double y_lo = y.lo - pad, y_hi = y.hi + pad;
  script += kPanelStyle;
  script += "set logscale x\n";
  script += fmt::format("set xrange [{}:{}]\nset yrange [{}:{}]\n", Number(x_lo), Number(x_hi),
                        Number(y_lo), Number(y_hi));
  script += TicsCommand("x", LogTicks(x_lo, x_hi));
  script += TicsCommand("y", LinearTicks(y_lo, y_hi));
  script += fmt::format("set xlabel {} noenhanced\n", Quote(options.params_label));
  script += fmt::format("set ylabel {} noenhanced\n", Quote(options.metric));
  script += fmt::format("set title {} noenhanced\n", Quote("IsoFLOP profiles: " + v.variant));
  // Valleys leave no corner free for certain: the key goes beside the panel, in a right margin
  // sized to it.
  script += "unset rmargin\nset key outside right top Left reverse samplen 1.5 spacing 1.1\n";
  script += "plot ";
  for (size_t i = 0; i < plots.size(); ++i) script += (i ? ", \\\n     " : "") + plots[i];
  return script + "\nunset logscale\n";
}

bool HasIsoflopPanel(const VariantScaling& v) {
  return std::any_of(v.optima.begin(), v.optima.end(),
                     [](const BudgetOptimum& b) { return b.parabola.has_value(); });
}

}  // namespace

std::string ScalingPlotScript(const ScalingReport& report, const std::string& terminal,
                              const std::string& output_path, const PlotOptions& options) {
  std::vector<size_t> isoflop_variants;
  for (size_t i = 0; i < report.variants.size(); ++i) {
    if (HasIsoflopPanel(report.variants[i])) isoflop_variants.push_back(i);
  }
  // Equal panels, row by row: the compute panel first, then one IsoFLOP panel per variant.
  const size_t panels = 1 + isoflop_variants.size();
  const size_t columns = panels <= 3 ? panels : panels == 4 ? 2 : 3;
  const size_t rows = (panels + columns - 1) / columns;
  constexpr int kPanelWidth = 620, kPanelHeight = 470;
  const int title_height = options.title.empty() ? 0 : 40;
  const int width = static_cast<int>(columns) * kPanelWidth;
  const int height = static_cast<int>(rows) * kPanelHeight + title_height;

  std::string script = "set encoding utf8\n";
  if (terminal == "svg") {
    script += fmt::format(
        "set terminal svg size {},{} dynamic enhanced font 'Helvetica,13' "
        "background rgb 'white'\n",
        width, height);
  } else {
    script += fmt::format(
        "set terminal pngcairo size {},{} enhanced font 'DejaVu Sans,11' "
        "background rgb 'white'\n",
        width, height);
  }
  script += fmt::format("set output {}\n", Quote(output_path));
  script += "set errorbars small\n";
  if (options.title.empty()) {
    script += "set multiplot\n";
  } else {
    script += fmt::format("set multiplot title {} noenhanced font ',14'\n", Quote(options.title));
  }
  const double panel_w = 1.0 / static_cast<double>(columns);
  const double panel_h = (1.0 - static_cast<double>(title_height) / height) / rows;
  for (size_t p = 0; p < panels; ++p) {
    const size_t row = p / columns, column = p % columns;
    script +=
        fmt::format("set origin {},{}\nset size {},{}\n", Number(column * panel_w),
                    Number(1.0 - static_cast<double>(title_height) / height - (row + 1) * panel_h),
                    Number(panel_w), Number(panel_h));
    script += p == 0 ? ComputePanel(report, options)
                     : IsoflopPanel(report.variants[isoflop_variants[p - 1]], p, options);
  }
  return script + "unset multiplot\nset output\n";
}

Status PlotScaling(const ScalingReport& report, const std::string& path,
                   const PlotOptions& options) {
  const std::string extension = fs::path(path).extension().string();
  std::string terminal;
  if (extension == ".png" || extension == ".PNG") terminal = "png";
  if (extension == ".svg" || extension == ".SVG") terminal = "svg";
  if (terminal.empty()) {
    return Status::InvalidArgument(fmt::format("{}: a plot is written as .png or .svg", path));
  }
  const bool has_points = std::any_of(report.variants.begin(), report.variants.end(),
                                      [](const VariantScaling& v) { return !v.configs.empty(); });
  if (!has_points) return Status::InvalidArgument("nothing to plot: no finished runs");

  std::error_code error;
  const fs::path output = fs::absolute(path, error);
  std::string pattern = (fs::temp_directory_path() / "isoflop-plot.XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    return Status::IOError(fmt::format("{}: {}", pattern, std::strerror(errno)));
  }
  const fs::path scratch = pattern;
  struct RemoveScratch {
    fs::path dir;
    ~RemoveScratch() {
      std::error_code ignored;
      fs::remove_all(dir, ignored);
    }
  } remove_scratch{scratch};

  const fs::path script_path = scratch / "figure.gp", log_path = scratch / "gnuplot.log";
  {
    std::ofstream script(script_path);
    script << ScalingPlotScript(report, terminal, output.string(), options);
    if (!script) return Status::IOError(fmt::format("{}: cannot write", script_path.string()));
  }
  fs::remove(output, error);  // so that a stale figure cannot pass for a new one

  const char* override_program = std::getenv("ISOFLOP_GNUPLOT");
  const std::string program = override_program && *override_program ? override_program : "gnuplot";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::string arg0 = program, arg1 = script_path.string();
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, program.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned == ENOENT) {
    return Status::NotFound(fmt::format(
        "{} not found: plots need gnuplot (Debian/Ubuntu: apt-get install gnuplot-nox)", program));
  }
  if (spawned != 0) {
    return Status::IOError(fmt::format("cannot run {}: {}", program, std::strerror(spawned)));
  }
  int wait_status = 0;
  while (::waitpid(pid, &wait_status, 0) < 0) {
    if (errno != EINTR) return Status::IOError(fmt::format("waitpid: {}", std::strerror(errno)));
  }
  std::ifstream log_file(log_path);
  std::string log((std::istreambuf_iterator<char>(log_file)), std::istreambuf_iterator<char>());
  while (!log.empty() && std::isspace(static_cast<unsigned char>(log.back()))) log.pop_back();
  if (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0) {
    return Status::IOError(
        fmt::format("{} failed drawing {}: {}", program, path, log.empty() ? "no message" : log));
  }
  if (fs::file_size(output, error) == 0 || error) {
    return Status::IOError(
        fmt::format("{} wrote nothing to {}{}", program, path, log.empty() ? "" : ": " + log));
  }
  return Status::OK();
}

}  // namespace isoflop
