// The detection loss kinds wired into TrainingSession: models/families/yolo.onnx (our
// YOLOv5-style detector, flat heads [N, 24, H, W] at strides 8, 16, 32 on 64x64 inputs)
// trained with loss yolov5; the parts reported from the same run; anchors from the options
// or the model's metadata; the yolov8 node; and the errors for what cannot work. The loss
// values themselves are checked against PyTorch in tests/ops/yolo_v5_loss_test.cpp.
#include <gtest/gtest.h>

#include <onnx/onnx_pb.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "graph/loss.h"
#include "onnxtrain/onnxtrain.h"
#include "tests/support/node_case.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;
namespace fs = std::filesystem;

namespace {

// The YOLOv5 P3-P5 anchors scaled to a 64-pixel input.
const std::vector<double> kAnchors = {2.5, 3.25, 4, 7.5, 8.25, 5.75, 7.5, 15.25, 15.5, 11.25, 14.75, 29.75,
                                      29, 22.5, 39, 49.5, 93.25, 81.5};

std::string yolo_path(bool f32) {
  return test::source_dir() + "/models/families/yolo" + (f32 ? ".f32" : "") + ".onnx";
}

TrainingOptions yolo_options() {
  TrainingOptions o;
  o.loss.kind = "yolov5";
  o.loss.detection.anchors = kAnchors;
  o.optimizer.kind = "sgd";
  o.optimizer.lr = 0.01;
  o.optimizer.momentum = 0.9;
  return o;
}

// Images (of the model's input name) and boxes for the yolo model.
std::map<std::string, Tensor> yolo_batch(const Model& model, DType dtype) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  const int64_t n = 4;
  std::vector<float> pixels(static_cast<size_t>(n * 3 * 64 * 64));
  for (float& p : pixels) p = u(rng);
  // Up to three boxes per image, the last image without any.
  std::vector<float> boxes(static_cast<size_t>(n * 3 * 6), 0.f);
  for (int64_t i = 0; i < n - 1; ++i)
    for (int64_t b = 0; b <= i; ++b) {
      float* row = &boxes[static_cast<size_t>((i * 3 + b) * 6)];
      const float w = 0.1f + 0.5f * u(rng), h = 0.1f + 0.5f * u(rng);
      row[0] = 1, row[1] = static_cast<float>(b % 3), row[2] = w / 2 + (1 - w) * u(rng), row[3] = h / 2 + (1 - h) * u(rng);
      row[4] = w, row[5] = h;
    }
  Tensor images = Tensor::from_vector<float>({n, 3, 64, 64}, pixels);
  if (dtype == DType::Double) {
    std::vector<double> d(pixels.begin(), pixels.end());
    images = Tensor::from_vector<double>({n, 3, 64, 64}, d);
  }
  return {{model.inputs().front().name, images}, {"boxes", Tensor::from_vector<float>({n, 3, 6}, boxes)}};
}

// Expects `fn` to throw an E whose message contains `fragment`.
template <typename E, typename Fn>
void expect_thrown(Fn&& fn, const std::string& fragment) {
  const std::string message = test::error_of<E>(fn);
  EXPECT_NE(message.find(fragment), std::string::npos) << "message: " << message;
}

void expect_parts_sum_to_loss(const std::vector<std::pair<std::string, double>>& parts, double loss) {
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].first, "box");
  EXPECT_EQ(parts[1].first, "obj");
  EXPECT_EQ(parts[2].first, "cls");
  double sum = 0;
  for (const auto& [name, value] : parts) {
    EXPECT_GT(value, 0) << name;
    sum += value;
  }
  EXPECT_NEAR(sum, loss, 1e-5 * std::abs(loss));
}

class YoloTraining : public ::testing::TestWithParam<bool> {};

TEST_P(YoloTraining, LossFallsAndReportsItsParts) {
  Model model = Model::load(yolo_path(GetParam()));
  const auto batch = yolo_batch(model, GetParam() ? DType::Float : DType::Double);
  TrainingSession session(model, yolo_options());
  StepResult first = session.train_step(batch);
  expect_parts_sum_to_loss(first.loss_parts, first.loss);
  double last = first.loss;
  for (int i = 0; i < 15; ++i) last = session.train_step(batch).loss;
  EXPECT_LT(last, 0.8 * first.loss) << "first " << first.loss;
  const EvalResult e = session.eval_step(batch);
  expect_parts_sum_to_loss(e.loss_parts, e.loss);
}

INSTANTIATE_TEST_SUITE_P(Float32AndFloat64, YoloTraining, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "float32" : "float64"; });

TEST(DetectionLoss, AnchorsFromMetadataEqualTheOption) {
  Model model = Model::load(yolo_path(true));
  auto anchors_of = [&](const LossOptions& o, const std::map<std::string, std::string>& metadata) {
    auto g = model.graph().clone();
    return graph::attach_loss(*g, o, metadata)->producer->attr_floats("anchors");
  };
  const std::vector<float> want(kAnchors.begin(), kAnchors.end());
  EXPECT_EQ(anchors_of(yolo_options().loss, {}), want);
  LossOptions from_metadata = yolo_options().loss;
  from_metadata.detection.anchors.clear();
  const std::string per_level =
      "[[2.5, 3.25, 4, 7.5, 8.25, 5.75], [7.5, 15.25, 15.5, 11.25, 14.75, 29.75], [29, 22.5, 39, 49.5, 93.25, 81.5]]";
  EXPECT_EQ(anchors_of(from_metadata, {{"anchors", per_level}}), want);
  std::string flat = per_level;
  std::erase_if(flat, [](char c) { return c == '[' || c == ']'; });
  EXPECT_EQ(anchors_of(from_metadata, {{"anchors", "[" + flat + "]"}}), want);
  expect_thrown<DataError>([&] { anchors_of(from_metadata, {}); }, "--anchors");
  expect_thrown<ModelError>([&] { anchors_of(from_metadata, {{"anchors", "[[1, 2], oops"}}); }, "metadata \"anchors\"");
  // Model::metadata reaches the session: the loss node there has the same anchors.
  onnx::ModelProto proto;
  std::ifstream in(yolo_path(true), std::ios::binary);
  ASSERT_TRUE(proto.ParseFromIstream(&in));
  auto* entry = proto.add_metadata_props();
  entry->set_key("anchors");
  entry->set_value(per_level);
  const std::string bytes = proto.SerializeAsString();
  Model with_metadata = Model::from_bytes(bytes.data(), bytes.size());
  TrainingOptions options = yolo_options();
  options.loss.detection.anchors.clear();
  TrainingSession session(with_metadata, options);
  const std::string path = (fs::temp_directory_path() / "onnxtrain_yolov5_graph.onnx").string();
  session.export_training_graph(path);
  onnx::ModelProto exported;
  std::ifstream graph_file(path, std::ios::binary);
  ASSERT_TRUE(exported.ParseFromIstream(&graph_file));
  bool found = false;
  for (const auto& node : exported.graph().node())
    if (node.op_type() == "YoloV5Loss")
      for (const auto& attr : node.attribute())
        if (attr.name() == "anchors") found = std::vector<float>(attr.floats().begin(), attr.floats().end()) == want;
  EXPECT_TRUE(found);
  fs::remove(path);
}

TEST(DetectionLoss, TrainingModelExportKeepsTheLossNode) {
  Model model = Model::load(yolo_path(true));
  const auto batch = yolo_batch(model, DType::Float);
  TrainingOptions options = yolo_options();
  options.loss.detection.balance = {4.0, 1.0, 0.5};
  TrainingSession session(model, options);
  session.train_step(batch);
  const std::string path = (fs::temp_directory_path() / "onnxtrain_yolov5_training.onnx").string();
  session.export_training_model(path);
  Model reloaded = Model::load(path);
  const auto stored = training_options_of(reloaded);
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->loss.kind, "yolov5");
  EXPECT_EQ(stored->loss.detection.anchors, kAnchors);
  EXPECT_EQ(stored->loss.detection.balance, options.loss.detection.balance);
  // Continuing from the exported model gives the same next step as the session itself.
  TrainingSession resumed(reloaded, *stored);
  EXPECT_EQ(resumed.train_step(batch).loss, session.train_step(batch).loss);
  fs::remove(path);
}

TEST(DetectionLoss, AccumulatesAndResumesFromACheckpoint) {
  Model model = Model::load(yolo_path(true));
  const auto batch = yolo_batch(model, DType::Float);
  TrainingOptions options = yolo_options();
  options.accumulate = 2;
  TrainingSession session(model, options);
  const StepResult pending = session.train_step(batch);
  EXPECT_FALSE(pending.updated);
  expect_parts_sum_to_loss(pending.loss_parts, pending.loss);
  const StepResult stepped = session.train_step(batch);
  EXPECT_TRUE(stepped.updated);
  expect_parts_sum_to_loss(stepped.loss_parts, stepped.loss);
  EXPECT_EQ(stepped.loss, pending.loss);  // the same batch, no update in between

  const std::string path = (fs::temp_directory_path() / "onnxtrain_yolov5.ckpt").string();
  session.save_checkpoint(path);
  Model other = Model::load(yolo_path(true));
  TrainingSession resumed(other, options);
  resumed.load_checkpoint(path);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(resumed.train_step(batch).loss, session.train_step(batch).loss) << i;
  fs::remove(path);
}

TEST(DetectionLoss, YoloV8KindEmitsItsNode) {
  Model model = Model::load(yolo_path(true));
  auto g = model.graph().clone();
  LossOptions o;
  o.kind = "yolov8";
  o.detection.reg_max = 4;  // 24 channels = 4 * 4 + 8 classes
  graph::Value* loss = graph::attach_loss(*g, o);
  const graph::Node* n = loss->producer;
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->domain, "ai.onnxtrain");
  EXPECT_EQ(n->op_type, "YoloV8Loss");
  ASSERT_EQ(n->inputs.size(), 4u);
  EXPECT_EQ(n->inputs[0]->name, "boxes");
  EXPECT_EQ(n->inputs[1]->dims->at(2).value, 8);  // stride 8 first
  EXPECT_EQ(n->inputs[3]->dims->at(2).value, 2);
  EXPECT_EQ(n->attr_int("num_classes"), 8);
  EXPECT_EQ(n->attr_int("reg_max"), 4);
  EXPECT_EQ(n->attr_int("topk"), 10);
  EXPECT_FLOAT_EQ(n->attr_float("box", 0), 7.5f);
  EXPECT_FLOAT_EQ(n->attr_float("cls", 0), 0.5f);
  EXPECT_FLOAT_EQ(n->attr_float("dfl", 0), 1.5f);
  EXPECT_FLOAT_EQ(n->attr_float("alpha", 0), 0.5f);
  EXPECT_FLOAT_EQ(n->attr_float("beta", 0), 6.0f);
  EXPECT_EQ(n->attr_ints("image_size"), (std::vector<int64_t>{64, 64}));
  const graph::LossParts parts = graph::loss_parts(*loss, TrainingOptions{.loss = o}.loss);
  EXPECT_EQ(parts.names, (std::vector<std::string>{"box", "cls", "dfl"}));
  EXPECT_EQ(parts.value, n->outputs[1]->name);
}

TEST(DetectionLoss, ExplainsWhatDoesNotFit) {
  Model model = Model::load(yolo_path(true));
  TrainingOptions o = yolo_options();
  o.loss.detection.dfl = 2;  // a yolov8 option
  expect_thrown<DataError>([&] { TrainingSession(model, o); }, "'detection.dfl' does not apply to loss 'yolov5'");
  o = yolo_options();
  o.loss.detection.anchors.resize(10);  // 10 values do not split into 3 levels
  expect_thrown<DataError>([&] { TrainingSession(model, o); }, "do not split into 3 levels");
  o = yolo_options();
  o.loss.outputs = {"output2", "nope"};
  expect_thrown<ModelError>([&] { TrainingSession(model, o); }, "'nope' is not an output");
  o.loss.kind = "yolov8";
  o.loss.outputs.clear();
  o.loss.detection.anchors.clear();
  expect_thrown<ModelError>([&] { TrainingSession(model, o); }, "4*reg_max + C");

  // A dynamic input size: the strides cannot be known.
  Model dynamic = Model::from_text(test::graph_model(
      "y = Conv <strides = [8, 8]> (x, w)", "float[N, 3, H, W] x, float[24, 3, 8, 8] w", "float[N, 24, h, ww] y"));
  expect_thrown<ModelError>([&] { TrainingSession(dynamic, yolo_options()); }, "fixed input size");
}

TEST(DetectionLoss, PartsHaveNoGradient) {
  // A graph that adds the parts into its loss: differentiating through them is refused.
  const std::string text = test::model_header(17, {{"ai.onnxtrain", 1}}) + R"(
g (float[2, 24, 8, 8] x, float[2, 1, 6] boxes) => (float total) <float[1] scale = {1.0}> {
  p = Mul (x, scale)
  loss, parts = ai.onnxtrain.YoloV5Loss <num_classes = 3, anchors = [2.5, 3.25, 4.0, 7.5, 8.25, 5.75], image_size = [64, 64]> (boxes, p)
  s = ReduceSum <keepdims = 0> (parts)
  total = Add (loss, s)
})";
  const std::string error = test::error_of<Error>([&] {
    Model m = Model::from_text(text);
    TrainingOptions o;
    o.loss.kind = "output";
    TrainingSession(m, o);
  });
  EXPECT_CONTAINS(error, "'parts'");
  EXPECT_CONTAINS(error, "has no gradient");
}

}  // namespace
