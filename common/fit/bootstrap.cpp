#include "common/fit/bootstrap.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace isoflop {

std::vector<size_t> ResampleIndices(size_t points, uint64_t seed, int resample) {
  // seed_seq spreads (seed, resample) over the whole generator state, so neighbouring resamples
  // are unrelated streams. Indices come from the raw 64-bit output modulo `points` rather than
  // from std::uniform_int_distribution, whose algorithm differs between standard libraries: the
  // same seed gives the same interval on every platform (the modulo bias is below 2^-50).
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                    static_cast<uint32_t>(resample)};
  std::mt19937_64 generator(seq);
  std::vector<size_t> indices(points);
  for (size_t& index : indices) index = static_cast<size_t>(generator() % points);
  std::sort(indices.begin(), indices.end());
  return indices;
}

Interval PercentileInterval(std::vector<double> values, double confidence) {
  std::erase_if(values, [](double v) { return std::isnan(v); });
  if (values.size() < 2 || !(confidence > 0 && confidence < 1)) return {};
  std::sort(values.begin(), values.end());
  // Linear interpolation between order statistics (type 7 of Hyndman and Fan, numpy's default).
  auto quantile = [&](double q) {
    const double position = q * static_cast<double>(values.size() - 1);
    const size_t below = static_cast<size_t>(std::floor(position));
    const size_t above = std::min(below + 1, values.size() - 1);
    const double weight = position - static_cast<double>(below);
    if (weight == 0 || values[below] == values[above]) return values[below];
    return values[below] + weight * (values[above] - values[below]);
  };
  const double tail = (1 - confidence) / 2;
  return {quantile(tail), quantile(1 - tail)};
}

Interval RefitInterval(const std::vector<double>& refits, double confidence) {
  const auto usable =
      std::count_if(refits.begin(), refits.end(), [](double v) { return !std::isnan(v); });
  if (2 * static_cast<size_t>(usable) < refits.size()) return {};
  return PercentileInterval(refits, confidence);
}

}  // namespace isoflop
