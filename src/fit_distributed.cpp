#include "src/fit_distributed.h"

#include <cmath>
#include <numeric>

namespace onnxtrain {

DatasetPtr validation_shard(DatasetPtr val, const Distributed& world) {
  if (!val || world.size() == 1) return val;
  const int64_t v = val->size(), r = world.rank(), n = world.size();
  if (v < n)
    throw DataError(val->source() + ": " + std::to_string(v) + " validation samples cannot be shared by " +
                    std::to_string(n) + " ranks");
  std::vector<int64_t> indices(static_cast<size_t>(v * (r + 1) / n - v * r / n));
  std::iota(indices.begin(), indices.end(), v * r / n);
  return subset(std::move(val), std::move(indices));
}

Evaluation combine_evaluations(Distributed& world, Evaluation part) {
  if (world.size() == 1) return part;
  // [loss sum, loss count, batches, then sum and count per metric (in name order, the same
  // on every rank), then the confusion counts].
  auto weighted = [](double mean, int64_t count) { return count ? mean * static_cast<double>(count) : 0.0; };
  std::vector<double> sums = {weighted(part.loss, part.loss_count), static_cast<double>(part.loss_count),
                              static_cast<double>(part.batches)};
  for (const auto& [name, value] : part.metrics) {
    const int64_t count = part.metric_counts.at(name);
    sums.push_back(weighted(value, count));
    sums.push_back(static_cast<double>(count));
  }
  const int64_t classes = part.confusion ? part.confusion->classes() : 0;
  for (int64_t t = 0; t < classes; ++t)
    for (int64_t p = 0; p < classes; ++p) sums.push_back(static_cast<double>(part.confusion->count(t, p)));
  world.allreduce_sum(sums.data(), static_cast<int64_t>(sums.size()));

  Evaluation whole;
  const auto nan = std::numeric_limits<double>::quiet_NaN();
  whole.loss_count = static_cast<int64_t>(sums[1]);
  whole.loss = whole.loss_count ? sums[0] / sums[1] : nan;
  whole.batches = static_cast<int64_t>(sums[2]);
  size_t i = 3;
  for (const auto& [name, value] : part.metrics) {
    const auto count = static_cast<int64_t>(sums[i + 1]);
    whole.metrics[name] = count ? sums[i] / sums[i + 1] : nan;
    whole.metric_counts[name] = count;
    i += 2;
  }
  if (part.confusion) {
    ConfusionMatrix matrix(classes, part.confusion->class_names());
    for (int64_t t = 0; t < classes; ++t)
      for (int64_t p = 0; p < classes; ++p, ++i)
        if (sums[i] > 0) matrix.add(t, p, static_cast<int64_t>(sums[i]));
    // mIoU is no mean of the ranks' mIoUs: it comes from the combined counts.
    if (whole.metrics.count("miou")) whole.metrics["miou"] = SegmentationMetric::mean_iou(matrix);
    whole.confusion = std::move(matrix);
  }
  return whole;
}

}  // namespace onnxtrain
