#include "common/fit/isoflop_parabola.h"

#include <fmt/format.h>

#include <Eigen/Dense>
#include <cmath>
#include <iterator>
#include <map>

namespace isoflop {

double IsoflopParabola::Loss(double params) const {
  const double u = std::log(params / reference_params);
  return (curvature * u + slope) * u + offset;
}

Result<IsoflopParabola> FitIsoflopParabola(const std::vector<SizePoint>& points) {
  struct SizeMeans {
    double log_tokens = 0;
    double loss = 0;
    int count = 0;
  };
  std::map<double, SizeMeans> sizes;  // by N, ascending
  double log_reference = 0;
  for (const SizePoint& p : points) {
    if (!(p.params > 0 && p.tokens > 0 && std::isfinite(p.params) && std::isfinite(p.tokens) &&
          std::isfinite(p.loss))) {
      return Status::InvalidArgument(
          fmt::format("IsoFLOP parabola: N {} and D {} must be positive, loss {} finite", p.params,
                      p.tokens, p.loss));
    }
    SizeMeans& size = sizes[p.params];
    size.log_tokens += std::log(p.tokens);
    size.loss += p.loss;
    ++size.count;
    log_reference += std::log(p.params) / static_cast<double>(points.size());
  }
  if (sizes.size() < 3) {
    return Status::FailedPrecondition(
        fmt::format("IsoFLOP parabola needs 3 or more sizes at one budget, got {}", sizes.size()));
  }
  for (auto& [params, size] : sizes) {
    size.log_tokens /= size.count;
    size.loss /= size.count;
  }

  // Least squares on [u^2, u, 1]; column-pivoting QR stays accurate when the sizes are close.
  Eigen::MatrixXd design(points.size(), 3);
  Eigen::VectorXd loss(points.size());
  for (size_t i = 0; i < points.size(); ++i) {
    const double u = std::log(points[i].params) - log_reference;
    design.row(i) << u * u, u, 1;
    loss(i) = points[i].loss;
  }
  const Eigen::Vector3d c = design.colPivHouseholderQr().solve(loss);

  IsoflopParabola parabola;
  parabola.curvature = c(0);
  parabola.slope = c(1);
  parabola.offset = c(2);
  parabola.reference_params = std::exp(log_reference);
  parabola.min_params = sizes.begin()->first;
  parabola.max_params = sizes.rbegin()->first;

  auto best = sizes.begin();
  for (auto it = sizes.begin(); it != sizes.end(); ++it) {
    if (it->second.loss < best->second.loss) best = it;
  }
  parabola.best_params = best->first;
  const bool best_on_edge = best == sizes.begin() || std::next(best) == sizes.end();
  if (parabola.curvature <= 0) {
    parabola.minimum_on_edge = true;
    return parabola;
  }
  const double log_optimum = log_reference - parabola.slope / (2 * parabola.curvature);
  const double optimal_params = std::exp(log_optimum);

  // ln D against ln N is linear at a fixed budget (D = C / (k N)) up to the attention share of k:
  // interpolate on the segment that holds N_opt, or extend the nearest one.
  auto upper = sizes.upper_bound(optimal_params);
  if (upper == sizes.begin()) ++upper;
  if (upper == sizes.end()) --upper;
  const auto lower = std::prev(upper);
  const double x0 = std::log(lower->first), x1 = std::log(upper->first);
  const double y0 = lower->second.log_tokens, y1 = upper->second.log_tokens;
  const double log_tokens = y0 + (y1 - y0) * (log_optimum - x0) / (x1 - x0);

  parabola.minimum =
      ComputeAllocation{optimal_params, std::exp(log_tokens), parabola.Loss(optimal_params)};
  parabola.minimum_on_edge =
      best_on_edge || optimal_params < parabola.min_params || optimal_params > parabola.max_params;
  return parabola;
}

}  // namespace isoflop
