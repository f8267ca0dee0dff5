// Segmentation metrics (mIoU, pixel accuracy) on the classification confusion matrix.
#include <cmath>
#include <limits>

#include "onnxtrain/metrics.h"

namespace onnxtrain {

SegmentationMetric::SegmentationMetric(Kind kind, int64_t ignore_index)
    : kind_(kind), ignore_index_(ignore_index), matrix_(0, {}, ignore_index) {}

void SegmentationMetric::update(const Tensor& output, const Tensor& target) {
  matrix_.update(output, target);  // checks the whole batch before counting it
}

double SegmentationMetric::class_iou(const ConfusionMatrix& m, int64_t cls) {
  const int64_t tp = m.count(cls, cls);
  const int64_t union_ = m.support(cls) + m.predicted_count(cls) - tp;
  return union_ ? static_cast<double>(tp) / static_cast<double>(union_) : std::numeric_limits<double>::quiet_NaN();
}

double SegmentationMetric::mean_iou(const ConfusionMatrix& m) {
  double sum = 0;
  int64_t present = 0;
  for (int64_t c = 0; c < m.classes(); ++c)
    if (const double iou = class_iou(m, c); !std::isnan(iou)) sum += iou, ++present;
  return present ? sum / static_cast<double>(present) : std::numeric_limits<double>::quiet_NaN();
}

double SegmentationMetric::value() const {
  return kind_ == Kind::MeanIoU ? mean_iou(matrix_) : matrix_.accuracy();
}

}  // namespace onnxtrain
