// IsoflopParabola: at one compute budget, loss against model size (Hoffmann et al. 2022, approach
// 2; system.md section 9).
//
// Runs that spend the same compute on different sizes trace a valley in loss over ln N: too small
// a model underfits, too large a one sees too few tokens. A parabola in ln N through those runs
// (every seed a point, least squares) puts the bottom of the valley, the compute-optimal size,
// between the sizes that were trained. A bottom at the smallest or largest size tried is not a
// measurement but an extrapolation, and is flagged: the sweep needs sizes beyond that edge.
#pragma once

#include <optional>
#include <vector>

#include "common/fit/chinchilla_fit.h"
#include "common/status.h"

namespace isoflop {

struct SizePoint {
  double params = 0;  // N > 0
  double tokens = 0;  // D > 0: what this size trains on at the budget
  double loss = 0;
};

struct IsoflopParabola {
  // L(u) = curvature * u^2 + slope * u + offset, u = ln(N / reference_params).
  double curvature = 0;
  double slope = 0;
  double offset = 0;
  double reference_params = 1;  // geometric mean of the sizes
  double min_params = 0;        // the grid: smallest and largest size fitted
  double max_params = 0;
  double best_params = 0;  // the size with the lowest mean loss over its seeds
  // The bottom of the parabola, with D interpolated in ln N between the sizes' token counts
  // (linearly extrapolated beyond them). Absent when curvature <= 0: no valley, no minimum.
  std::optional<ComputeAllocation> minimum;
  // The size with the lowest mean loss is the smallest or the largest of the grid, or the
  // parabola's bottom lies outside the grid, or there is no bottom at all.
  bool minimum_on_edge = false;

  double Loss(double params) const;
};

// Needs 3 or more distinct sizes; InvalidArgument for a non-positive or non-finite value.
Result<IsoflopParabola> FitIsoflopParabola(const std::vector<SizePoint>& points);

}  // namespace isoflop
