// mIoU and pixel accuracy against numpy on fixed predictions:
//   k = t != 255; cm = bincount(t[k] * C + p[k], minlength=C*C).reshape(C, C)
//   iou = diag(cm) / (cm.sum(0) + cm.sum(1) - diag(cm)) (NaN where 0/0); miou = nanmean(iou)
// gives iou = [0.8, 0.4, 1/3, nan], miou = 0.511111..., pixel accuracy 0.7.
#include <gtest/gtest.h>

#include <cmath>

#include "onnxtrain/metrics.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

constexpr int64_t kClasses = 4;
const std::vector<int64_t> kPredicted = {0, 1, 1, 2, 0, 0, 1, 1, 0, 0, 0, 2};
const std::vector<int64_t> kTruth = {0, 1, 2, 2, 255, 0, 1, 0, 0, 255, 0, 1};

// Scores [2, C, 2, 3] whose argmax at each pixel is kPredicted.
Tensor scores() {
  Tensor s(DType::Float, {2, kClasses, 2, 3});
  for (size_t i = 0; i < kPredicted.size(); ++i) {
    const size_t n = i / 6, pixel = i % 6;
    for (int64_t c = 0; c < kClasses; ++c)
      s.data<float>()[(n * kClasses + c) * 6 + pixel] = c == kPredicted[i] ? 2.0f : -0.5f * static_cast<float>(c);
  }
  return s;
}
Tensor truth() { return Tensor::from_vector<int64_t>({2, 2, 3}, kTruth); }

TEST(SegmentMetrics, MeanIouAndPixelAccuracyMatchNumpy) {
  auto miou = make_metric("miou", 255);
  auto accuracy = make_metric("pixel_accuracy", 255);
  // Two batches (one image each) count like one.
  Tensor s = scores(), t = truth();
  for (int64_t n = 0; n < 2; ++n) {
    Tensor sn(DType::Float, {1, kClasses, 2, 3});
    std::copy_n(s.data<float>() + n * kClasses * 6, kClasses * 6, sn.data<float>());
    Tensor tn = Tensor::from_vector<int64_t>({1, 2, 3}, {kTruth.begin() + n * 6, kTruth.begin() + n * 6 + 6});
    miou->update(sn, tn);
    accuracy->update(sn, tn);
  }
  EXPECT_NEAR(miou->value(), 0.5111111111111112, 1e-12);
  EXPECT_NEAR(accuracy->value(), 0.7, 1e-12);
  EXPECT_EQ(miou->count(), 10);  // ignored pixels are not counted
  EXPECT_EQ(miou->name(), "miou");
  EXPECT_TRUE(miou->higher_is_better());
  const auto& m = dynamic_cast<const SegmentationMetric&>(*miou);
  EXPECT_NEAR(m.iou(0), 0.8, 1e-12);
  EXPECT_NEAR(m.iou(1), 0.4, 1e-12);
  EXPECT_NEAR(m.iou(2), 1.0 / 3, 1e-12);
  EXPECT_TRUE(std::isnan(m.iou(3)));  // in neither truth nor prediction: out of the mean
  miou->reset();
  EXPECT_TRUE(std::isnan(miou->value()));
}

TEST(SegmentMetrics, AClassOnlyPredictedCountsAsZero) {
  SegmentationMetric miou(SegmentationMetric::Kind::MeanIoU);
  // Truth all class 0; class 1 predicted at one of two pixels: IoU0 = 1/2, IoU1 = 0.
  miou.update(Tensor::from_vector<float>({1, 2, 2}, {1, 0, 0, 1}), Tensor::from_vector<int64_t>({1, 2}, {0, 0}));
  EXPECT_NEAR(miou.value(), 0.25, 1e-12);
}

TEST(SegmentMetrics, TargetsOutsideTheClassesAreRefused) {
  auto miou = make_metric("miou");  // ignore_index -100: 255 is a bad target
  const std::string message = test::error_of([&] { miou->update(scores(), truth()); });
  EXPECT_NE(message.find("target 255"), std::string::npos) << message;
  EXPECT_EQ(miou->count(), 0);
}

}  // namespace
