// Detection heads: recognising models/families/yolo.onnx (our YOLOv5-style detector, flat
// [N, 24, H, W] at strides 8, 16, 32) and a tiny YOLOv8-style graph made here, the errors
// when nothing fits, and decoding hand-set raw outputs into boxes.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/node_case.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

Model yolo() { return Model::load(test::source_dir() + "/models/families/yolo.f32.onnx"); }

double logit(double p) { return std::log(p / (1 - p)); }

// Three 1x1 convolutions with strides 8, 16, 32 from a 3x64x64 input to `channels` each.
Model tiny_head(int channels) {
  std::ostringstream init, body;
  for (int l = 0; l < 3; ++l) {
    const int s = 8 << l;
    init << (l ? ", " : "") << "float[" << channels << ", 3, 1, 1] w" << l << " = {";
    for (int i = 0; i < channels * 3; ++i) init << (i ? ", " : "") << (i % 7) * 0.01;
    init << "}";
    body << "p" << l << " = Conv <strides = [" << s << ", " << s << "]> (x, w" << l << ")\n";
  }
  std::string text = test::model_header(17) + "g (float[1, 3, 64, 64] x) => (float[1, " + std::to_string(channels) +
                     ", 8, 8] p0, float[1, " + std::to_string(channels) + ", 4, 4] p1, float[1, " +
                     std::to_string(channels) + ", 2, 2] p2) <" + init.str() + "> {\n" + body.str() + "}";
  return Model::from_text(text);
}

TEST(DetectHead, RecognisesOurYoloV5) {
  const Model m = yolo();
  DetectionHead h = detect_head(m);
  EXPECT_EQ(h.kind, "yolov5");
  EXPECT_EQ(h.layout, "flat");
  EXPECT_EQ(h.outputs, (std::vector<std::string>{"output0", "output1", "output2"}));
  EXPECT_EQ(h.strides, (std::vector<int64_t>{8, 16, 32}));
  EXPECT_EQ(h.num_classes, 3);
  EXPECT_EQ(h.anchors_per_level, 3);
  EXPECT_TRUE(h.anchors.empty());
  EXPECT_EQ(h.input_height, 64);
  EXPECT_EQ(h.input_width, 64);
  EXPECT_EQ(h.describe(), "yolov5 flat, 3 levels (output0, output1, output2) at strides 8, 16, 32, 3 classes, input "
                          "64x64, 3 anchors per level (values unknown: pass --anchors)");
  DetectionHeadHints hints;
  hints.anchors = {10, 13, 16, 30, 33, 23, 30, 61, 62, 45, 59, 119, 116, 90, 156, 198, 373, 326};
  h = detect_head(m, hints);
  EXPECT_EQ(h.anchors.size(), 18u);
  EXPECT_EQ(h.anchors[2], 16.f);
  hints.num_classes = 5;  // 24 channels are not 3 * (5 + 5)
  test::expect_error([&] { detect_head(m, hints); }, "with C = 5 classes");
  hints = {};
  hints.kind = "yolov8";  // 24 < 4 * 16
  test::expect_error([&] { detect_head(m, hints); }, "output0 float32[N,24,8,8]");
}

TEST(DetectHead, RecognisesAYoloV8Graph) {
  const Model m = tiny_head(4 * 16 + 2);  // 66 channels: not 3 * (5 + C) either
  const DetectionHead h = detect_head(m);
  EXPECT_EQ(h.kind, "yolov8");
  EXPECT_EQ(h.num_classes, 2);
  EXPECT_EQ(h.reg_max, 16);
  EXPECT_EQ(h.strides, (std::vector<int64_t>{8, 16, 32}));
  EXPECT_EQ(h.outputs, (std::vector<std::string>{"p0", "p1", "p2"}));
  // 72 channels fit both (3 * (5 + 19) and 64 + 8): anchors choose yolov5, else yolov8.
  const Model both = tiny_head(72);
  EXPECT_EQ(detect_head(both).kind, "yolov8");
  DetectionHeadHints hints;
  hints.anchors = std::vector<double>(18, 4.0);
  EXPECT_EQ(detect_head(both, hints).kind, "yolov5");
  EXPECT_EQ(detect_head(both, hints).num_classes, 19);
  hints = {};
  hints.num_classes = 19;
  EXPECT_EQ(detect_head(both, hints).kind, "yolov5");
}

TEST(DetectHead, SaysWhyNoneFits) {
  test::expect_error([] { detect_head(tiny_head(4)); }, "p0 float32[batch,4,8,8], p1 float32[batch,4,4,4], p2 float32[batch,4,2,2] fit neither");
  const Model linear = Model::from_text(test::kLinearModel);
  test::expect_error([&] { detect_head(linear); }, "no image input");
}

TEST(DetectHead, DecodesYoloV5Boxes) {
  DetectionHead h = detect_head(yolo());
  h.anchors = {10, 13, 16, 30, 33, 23, 30, 61, 62, 45, 59, 119, 116, 90, 156, 198, 373, 326};
  std::vector<Tensor> outs;
  for (int64_t s : {8, 4, 2}) {
    Tensor t = Tensor::from_vector<float>({1, 24, s, s}, std::vector<float>(static_cast<size_t>(24 * s * s), -10.f));
    outs.push_back(t);
  }
  // Level 1 (stride 16), anchor 2 (59 x 119), cell (y 1, x 2): tx = ty = 0 (centre offset 0.5),
  // tw = th = 0 (sigmoid 0.5: wh = anchor), obj 0.9, class 1 at 0.8, class 2 at 0.5.
  float* p = outs[1].data<float>();
  auto set = [&](int k, double v) { p[((2 * 8 + k) * 4 + 1) * 4 + 2] = static_cast<float>(v); };
  for (int k = 0; k < 4; ++k) set(k, 0);
  set(4, logit(0.9));
  set(6, logit(0.8));
  set(7, logit(0.5));
  const auto dets = decode_detections(h, outs, 0.25);
  ASSERT_EQ(dets.size(), 1u);
  ASSERT_EQ(dets[0].size(), 2u);  // 0.72 and 0.45 above 0.25; class 0 (0.9 * 4.5e-5) below
  const Detection& d = dets[0][0];
  EXPECT_EQ(d.box.cls, 1);
  EXPECT_NEAR(d.score, 0.72, 1e-5);
  const double cx = (0.5 + 2) * 16, cy = (0.5 + 1) * 16;
  EXPECT_NEAR(d.box.x1, (cx - 59 / 2.0) / 64, 1e-6);
  EXPECT_NEAR(d.box.x2, (cx + 59 / 2.0) / 64, 1e-6);
  EXPECT_NEAR(d.box.y1, (cy - 119 / 2.0) / 64, 1e-6);
  EXPECT_NEAR(d.box.y2, (cy + 119 / 2.0) / 64, 1e-6);
  EXPECT_EQ(dets[0][1].box.cls, 2);
  EXPECT_NEAR(dets[0][1].score, 0.45, 1e-5);
}

TEST(DetectHead, DecodesYoloV8Boxes) {
  const DetectionHead h = detect_head(tiny_head(66));
  std::vector<Tensor> outs;
  for (int64_t s : {8, 4, 2})
    outs.push_back(Tensor::from_vector<float>({1, 66, s, s}, std::vector<float>(static_cast<size_t>(66 * s * s), -10.f)));
  // Level 0 (stride 8), cell (y 3, x 5): distances l 2, t 1, r 3, b 4.5 (one-hot bins, and
  // an even split between bins 4 and 5 for b), class 0 at 0.6.
  float* p = outs[0].data<float>();
  auto at = [&](int k) -> float& { return p[(k * 8 + 3) * 8 + 5]; };
  at(0 * 16 + 2) = 30;
  at(1 * 16 + 1) = 30;
  at(2 * 16 + 3) = 30;
  at(3 * 16 + 4) = 30;
  at(3 * 16 + 5) = 30;
  at(64) = static_cast<float>(logit(0.6));
  const auto dets = decode_detections(h, outs, 0.25);
  ASSERT_EQ(dets[0].size(), 1u);
  const Detection& d = dets[0][0];
  EXPECT_EQ(d.box.cls, 0);
  EXPECT_NEAR(d.score, 0.6, 1e-5);
  EXPECT_NEAR(d.box.x1, (5.5 - 2) * 8 / 64, 1e-4);
  EXPECT_NEAR(d.box.y1, (3.5 - 1) * 8 / 64, 1e-4);
  EXPECT_NEAR(d.box.x2, (5.5 + 3) * 8 / 64, 1e-4);
  EXPECT_NEAR(d.box.y2, (3.5 + 4.5) * 8 / 64, 1e-4);
}

}  // namespace

TEST(DetectHead, ClassNamesFromTheMetadataInEachWrittenForm) {
  Model m = Model::from_text(test::kLinearModel);
  EXPECT_TRUE(detection_class_names(m).empty());
  m.set_metadata("names", R"(["cat", "dog"])");  // what onnxtrain writes
  EXPECT_EQ(detection_class_names(m), (std::vector<std::string>{"cat", "dog"}));
  m.set_metadata("names", R"({"1": "dog", "0": "cat"})");
  EXPECT_EQ(detection_class_names(m), (std::vector<std::string>{"cat", "dog"}));
  m.set_metadata("names", R"({0: 'person', 1: "traffic 'light'", 2: 'bus'})");  // Ultralytics: str() of a dict
  EXPECT_EQ(detection_class_names(m), (std::vector<std::string>{"person", "traffic 'light'", "bus"}));
}
