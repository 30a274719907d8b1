// Bootstrap confidence intervals for the scaling-law fits (system.md section 9).
//
// A fit is repeated on resamples of its data points drawn with replacement (the case, or pairs,
// bootstrap: it needs no model of the noise and stays honest when the law is only approximately
// right), and a parameter's interval is the central `confidence` share of its refitted values (the
// percentile interval, which follows the parameter through monotone maps such as E = exp(e)).
// Resamples are a pure function of (seed, resample index, point count), so a report is
// reproducible run to run and does not depend on how resamples are spread over threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace isoflop {

struct BootstrapOptions {
  int resamples = 300;       // 0: point estimates only, every interval is unknown
  double confidence = 0.95;  // central coverage of each interval, in (0, 1)
  uint64_t seed = 0;
};

// A confidence interval; both ends NaN when unknown (no resamples, or too few points to refit).
struct Interval {
  double lo = std::numeric_limits<double>::quiet_NaN();
  double hi = std::numeric_limits<double>::quiet_NaN();
  bool known() const { return lo == lo && hi == hi; }
  bool contains(double x) const { return known() && lo <= x && x <= hi; }
};

// Indices of resample `resample` of `points` points: `points` draws with replacement from
// [0, points), in ascending order.
std::vector<size_t> ResampleIndices(size_t points, uint64_t seed, int resample);

// The central `confidence` share of `values` (NaNs ignored; infinities count, so an interval can be
// unbounded on one side). Unknown when fewer than two finite-or-infinite values remain.
Interval PercentileInterval(std::vector<double> values, double confidence);

// The PercentileInterval of a parameter over bootstrap refits, NaN where a resample gave none;
// unknown when fewer than half the resamples gave one, since an interval from the few resamples
// that happened to pin the law down would describe them, not the data.
Interval RefitInterval(const std::vector<double>& refits, double confidence);

}  // namespace isoflop
