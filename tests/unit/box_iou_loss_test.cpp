// ops/box_iou_loss.h against torch autograd: tests/scripts/box_iou_reference.py runs
// Ultralytics' bbox_iou(..., CIoU=True) in float64 on 640 box pairs (random, disjoint,
// nested, identical, sharing an edge, degenerate thin) and stores the CIoU, the IoU and the
// gradient with respect to the predicted box for a random upstream gradient.
#include <gtest/gtest.h>

#include <cmath>

#include "onnxtrain/npy.h"
#include "ops/box_iou_loss.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;
using onnxtrain::test::source_dir;

namespace {

// Relative to the magnitude above 1 (thin boxes have gradients of order 1/width). Float
// storage rounds the inputs (relative 6e-8), which moves results of thin boxes by ~1e-5.
template <typename T>
double tolerance(double expected) {
  return (std::is_same_v<T, float> ? 1e-4 : 1e-6) * std::max(1.0, std::abs(expected));
}

template <typename T>
void check_golden(const std::string& name, ops::BoxFormat format) {
  const auto golden = read_npz(source_dir() + "/tests/data/detect/ciou_golden.npz");
  const auto pred = golden.at(name + "_pred").as_double(), target = golden.at(name + "_target").as_double();
  const auto upstream = golden.at(name + "_upstream").as_double();
  const auto ciou = golden.at(name + "_ciou").as_double(), iou = golden.at(name + "_iou").as_double();
  const auto grad = golden.at(name + "_grad").as_double();
  ASSERT_GT(upstream.size(), 250u);
  int failures = 0;
  for (size_t i = 0; i < upstream.size() && failures < 10; ++i) {
    T p[4], t[4];
    for (int k = 0; k < 4; ++k) p[k] = static_cast<T>(pred[4 * i + k]), t[k] = static_cast<T>(target[4 * i + k]);
    const ops::CiouResult r = ops::ciou(p, t, format, upstream[i]);
    bool ok = std::abs(r.ciou - ciou[i]) <= tolerance<T>(ciou[i]) && std::abs(r.iou - iou[i]) <= tolerance<T>(iou[i]);
    for (int k = 0; k < 4; ++k) ok = ok && std::abs(r.grad[k] - grad[4 * i + k]) <= tolerance<T>(grad[4 * i + k]);
    if (!ok) {
      ++failures;
      ADD_FAILURE() << name << " pair " << i << ": pred (" << pred[4 * i] << ", " << pred[4 * i + 1] << ", "
                    << pred[4 * i + 2] << ", " << pred[4 * i + 3] << ") target (" << target[4 * i] << ", "
                    << target[4 * i + 1] << ", " << target[4 * i + 2] << ", " << target[4 * i + 3] << "): ciou "
                    << r.ciou << " vs " << ciou[i] << ", iou " << r.iou << " vs " << iou[i] << ", grad (" << r.grad[0]
                    << ", " << r.grad[1] << ", " << r.grad[2] << ", " << r.grad[3] << ") vs (" << grad[4 * i] << ", "
                    << grad[4 * i + 1] << ", " << grad[4 * i + 2] << ", " << grad[4 * i + 3] << ")";
    }
  }
}

TEST(BoxIouLoss, CenterBoxesMatchTorchAutograd) { check_golden<double>("xywh", ops::BoxFormat::kCenter); }
TEST(BoxIouLoss, CornerBoxesMatchTorchAutograd) { check_golden<double>("xyxy", ops::BoxFormat::kCorners); }

TEST(BoxIouLoss, IdenticalBoxesHaveCiouOneAndNoPull) {
  const double box[4] = {3, 4, 2, 1};
  const auto r = ops::ciou(box, box, ops::BoxFormat::kCenter);
  EXPECT_NEAR(r.ciou, 1.0, 1e-6);
  // Moving the centre of identical boxes does not change the CIoU to first order.
  EXPECT_NEAR(r.grad[0], 0.0, 1e-12);
  EXPECT_NEAR(r.grad[1], 0.0, 1e-12);
}

TEST(BoxIouLoss, FloatStorageAgreesWithDoubleToFloatRounding) {
  check_golden<float>("xywh", ops::BoxFormat::kCenter);
}

}  // namespace
