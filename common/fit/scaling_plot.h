// PlotScaling: a ScalingReport as a figure for a paper (system.md section 9), drawn by gnuplot.
//
// Equal panels, row by row (up to three to a row):
//   first:  loss against training FLOPs, log-log, one colour per variant; a point per (size,
//           budget) with its error bar over seeds (filled on the lower envelope, open off it) and
//           the fitted L(C) = E + A * C^(-alpha), its exponent and interval in the legend;
//   then:   for each variant with budgets of 3 or more sizes, its IsoFLOP panel: loss against N,
//           one colour per budget, the parabolas and their minima (open where on the grid edge).
//
// The format follows the file name: .png (cairo, anti-aliased) or .svg. gnuplot is a separate
// program ($ISOFLOP_GNUPLOT, else `gnuplot` on PATH; Debian: gnuplot-nox); it runs without a
// shell on a script written to a temporary directory, which is removed afterwards.
#pragma once

#include <string>

#include "common/fit/scaling_analysis.h"
#include "common/status.h"

namespace isoflop {

struct PlotOptions {
  std::string metric = "val_loss";            // the loss axis label
  std::string params_label = "parameters N";  // the IsoFLOP panels' axis label
  std::string title;                          // above the figure; empty: none
};

// InvalidArgument for a path that ends in neither .png nor .svg, or a report with no runs; NotFound
// when gnuplot is missing; IOError with gnuplot's own message when it fails or writes nothing.
Status PlotScaling(const ScalingReport& report, const std::string& path,
                   const PlotOptions& options = {});

// The gnuplot script PlotScaling runs, for a terminal "png" or "svg" (exposed for tests).
std::string ScalingPlotScript(const ScalingReport& report, const std::string& terminal,
                              const std::string& output_path, const PlotOptions& options);

}  // namespace isoflop
