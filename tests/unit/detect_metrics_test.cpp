// Detection metrics: IoU and NMS on hand-made boxes, and mAP, precision and recall against
// the golden of tests/scripts/detection_map_reference.py (a numpy transcription of
// pycocotools' COCOeval and Ultralytics' ap_per_class) on a fixed random set.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "onnxtrain/detection.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

Box box(int64_t cls, float x1, float y1, float x2, float y2) { return {cls, x1, y1, x2, y2}; }

TEST(DetectMetrics, BoxIou) {
  EXPECT_DOUBLE_EQ(box_iou(box(0, 0, 0, 10, 10), box(0, 0, 0, 10, 10)), 1.0);
  EXPECT_DOUBLE_EQ(box_iou(box(0, 0, 0, 10, 10), box(0, 5, 0, 15, 10)), 50.0 / 150.0);
  EXPECT_DOUBLE_EQ(box_iou(box(0, 0, 0, 10, 10), box(0, 2, 2, 4, 4)), 4.0 / 100.0);
  EXPECT_DOUBLE_EQ(box_iou(box(0, 0, 0, 10, 10), box(0, 10, 0, 20, 10)), 0.0);  // touching
  EXPECT_DOUBLE_EQ(box_iou(box(0, 0, 0, 0, 0), box(0, 0, 0, 0, 0)), 0.0);      // empty
}

TEST(DetectMetrics, NmsIsClassAwareWithThresholds) {
  const std::vector<Detection> dets = {
      {0, box(0, 0, 0, 10, 10), 0.9f},   // kept
      {0, box(0, 1, 0, 11, 10), 0.8f},   // IoU 0.82 with the first: suppressed
      {0, box(1, 1, 0, 11, 10), 0.7f},   // same place, other class: kept
      {0, box(0, 5, 0, 15, 10), 0.6f},   // IoU 0.33: kept
      {0, box(0, 40, 40, 50, 50), 0.2f}, // below the confidence threshold
  };
  const auto kept = nms(dets, {0.5, 0.25, 300});
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_FLOAT_EQ(kept[0].score, 0.9f);
  EXPECT_FLOAT_EQ(kept[1].score, 0.7f);
  EXPECT_EQ(kept[1].box.cls, 1);
  EXPECT_FLOAT_EQ(kept[2].score, 0.6f);
  // A stricter IoU threshold also suppresses the 0.33 overlap; max_detections cuts the rest.
  EXPECT_EQ(nms(dets, {0.3, 0.25, 300}).size(), 2u);
  EXPECT_EQ(nms(dets, {0.5, 0.0, 2}).size(), 2u);
  EXPECT_EQ(nms(dets, {0.5, 0.0, 300}).size(), 4u);
}

TEST(DetectMetrics, PerfectAndEmptyPredictions) {
  const std::vector<GroundTruth> gts = {{0, box(0, 0, 0, 10, 10)}, {1, box(1, 5, 5, 30, 30)}};
  const std::vector<Detection> perfect = {{0, box(0, 0, 0, 10, 10), 0.9f}, {1, box(1, 5, 5, 30, 30), 0.8f}};
  const DetectionMetrics m = evaluate_detections(perfect, gts);
  ASSERT_EQ(m.classes.size(), 2u);
  EXPECT_DOUBLE_EQ(m.map50, 1.0);
  EXPECT_DOUBLE_EQ(m.map50_95, 1.0);
  EXPECT_DOUBLE_EQ(m.precision, 1.0);
  EXPECT_NEAR(m.recall, 1.0, 1e-12);
  const DetectionMetrics none = evaluate_detections({}, gts);
  EXPECT_DOUBLE_EQ(none.map50, 0.0);
  EXPECT_DOUBLE_EQ(none.recall, 0.0);
}

TEST(DetectMetrics, MatchesTheCocoEvalReference) {
  std::ifstream in(test::source_dir() + "/tests/data/detect/map_golden.json");
  ASSERT_TRUE(in) << "tests/data/detect/map_golden.json (tests/scripts/detection_map_reference.py writes it)";
  const auto golden = nlohmann::json::parse(in);
  auto box_of = [](const nlohmann::json& j) {
    const auto& b = j.at("box");
    return Box{j.at("cls").get<int64_t>(), b[0].get<float>(), b[1].get<float>(), b[2].get<float>(), b[3].get<float>()};
  };
  std::vector<Detection> dets;
  std::vector<GroundTruth> gts;
  for (const auto& d : golden.at("detections")) dets.push_back({d.at("image").get<int64_t>(), box_of(d), d.at("score").get<float>()});
  for (const auto& g : golden.at("truths")) gts.push_back({g.at("image").get<int64_t>(), box_of(g), g.at("crowd").get<bool>()});
  const DetectionMetrics m = evaluate_detections(dets, gts, {golden.at("max_detections").get<int64_t>()});

  constexpr double kTol = 1e-6;
  const auto& classes = golden.at("classes");
  ASSERT_EQ(m.classes.size(), classes.size());
  for (size_t k = 0; k < classes.size(); ++k) {
    const ClassMetrics& c = m.classes[k];
    const auto& e = classes[k];
    SCOPED_TRACE("class " + std::to_string(c.cls));
    EXPECT_EQ(c.cls, e.at("cls").get<int64_t>());
    EXPECT_EQ(c.ground_truths, e.at("ground_truths").get<int64_t>());
    for (size_t t = 0; t < c.ap.size(); ++t) EXPECT_NEAR(c.ap[t], e.at("ap")[t].get<double>(), kTol) << "IoU index " << t;
    for (size_t r = 0; r < c.pr_curve.size(); ++r) EXPECT_NEAR(c.pr_curve[r], e.at("pr_curve")[r].get<double>(), kTol) << "recall index " << r;
    EXPECT_NEAR(c.ap50, e.at("ap50").get<double>(), kTol);
    EXPECT_NEAR(c.ap50_95, e.at("ap50_95").get<double>(), kTol);
    EXPECT_NEAR(c.precision, e.at("precision").get<double>(), kTol);
    EXPECT_NEAR(c.recall, e.at("recall").get<double>(), kTol);
  }
  EXPECT_NEAR(m.map50, golden.at("map50").get<double>(), kTol);
  EXPECT_NEAR(m.map50_95, golden.at("map50_95").get<double>(), kTol);
  EXPECT_NEAR(m.precision, golden.at("precision").get<double>(), kTol);
  EXPECT_NEAR(m.recall, golden.at("recall").get<double>(), kTol);
  EXPECT_NEAR(m.confidence, golden.at("confidence").get<double>(), kTol);
  // The set exercises what the algorithm distinguishes.
  EXPECT_GT(m.map50, m.map50_95);
  EXPECT_TRUE(std::any_of(gts.begin(), gts.end(), [](const GroundTruth& g) { return g.crowd; }));
}

}  // namespace
