// ai.onnxtrain YoloV5Loss and YoloV5LossGrad against PyTorch goldens
// (tests/scripts/yolo_loss_reference.py: Ultralytics YOLOv5's ComputeLoss written out in
// float64, with autograd gradients). The gradient treats the target assignment and the IoU
// objectness targets as constants, as Ultralytics does (they are detached), so the loss is
// not differentiable as a whole function of p and there is no finite-difference check: the
// goldens are the check. Cases: flat and split layouts, images without boxes, a batch
// without boxes, boxes at the image edges, several boxes in one cell (objectness targets
// overwritten, label smoothing), one class.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "onnxtrain/npy.h"
#include "tests/support/node_case.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

std::map<std::string, Tensor> golden(const std::string& name) {
  return read_npz(test::source_dir() + "/tests/data/detect/yolov5_loss_" + name + ".npz");
}

std::string shape_text(const Shape& s) {
  std::string t;
  for (int64_t d : s) t += (t.empty() ? "" : ",") + std::to_string(d);
  return "[" + t + "]";
}

template <typename T>
Tensor cast(const Tensor& t) {
  const std::vector<double> v = t.as_double();
  return Tensor::from_vector<T>(t.shape(), std::vector<T>(v.begin(), v.end()));
}

std::string attributes(const std::map<std::string, Tensor>& g) {
  std::ostringstream a;
  a.precision(6);
  a << std::fixed;  // "4.000000": a float list must not read as ints
  a << "num_classes = " << g.at("num_classes").as_int64()[0] << ", anchors = [";
  const auto anchors = g.at("anchors").as_double();
  for (size_t i = 0; i < anchors.size(); ++i) a << (i ? ", " : "") << anchors[i];
  const auto size = g.at("image_size").as_int64();
  a << "], image_size = [" << size[0] << ", " << size[1] << "], layout = \""
    << (g.at("layout").as_int64()[0] ? "split" : "flat") << "\", label_smoothing = " << g.at("label_smoothing").as_double()[0];
  return a.str();
}

// The node's inputs and feeds for a golden, in element type T (boxes stay float32, as the
// data loader makes them).
template <typename T>
void node_inputs(const std::map<std::string, Tensor>& g, std::vector<std::string>& inputs, std::map<std::string, Tensor>& feeds) {
  const char* type = std::is_same_v<T, float> ? "float" : "double";
  inputs.push_back("float" + shape_text(g.at("boxes").shape()) + " boxes");
  feeds["boxes"] = cast<float>(g.at("boxes"));
  for (int l = 0; l < 3; ++l) {
    const std::string name = "p_" + std::to_string(l);
    inputs.push_back(std::string(type) + shape_text(g.at(name).shape()) + " " + name);
    feeds[name] = cast<T>(g.at(name));
  }
}

// Element-wise agreement to `tol` of the tensor's largest magnitude, reported by position.
void expect_close(const Tensor& actual, const Tensor& expected, double tol, const std::string& what) {
  const auto a = actual.as_double(), e = expected.as_double();
  ASSERT_EQ(a.size(), e.size()) << what;
  double scale = 0;
  for (double v : e) scale = std::max(scale, std::abs(v));
  int reported = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(std::abs(a[i] - e[i]) <= tol * std::max(scale, 1e-12)) && reported++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: " << a[i] << " vs " << e[i] << " (max |expected| " << scale << ")";
}

void expect_relative(double actual, double expected, double tol, const std::string& what) {
  EXPECT_LE(std::abs(actual - expected), tol * std::max(std::abs(expected), 1e-12)) << what << ": " << actual << " vs " << expected;
}

// float64 agrees to 1e-6; float32 differs by the rounding of its outputs and of the
// gradient accumulation (the inputs are float32 values in the golden, the arithmetic is
// double inside), so to a few float32 epsilons.
template <typename T>
void check_case(const std::string& name) {
  SCOPED_TRACE(name);
  const auto g = golden(name);
  const double tol = std::is_same_v<T, float> ? 1e-6 * 10 : 1e-6;
  const char* type = std::is_same_v<T, float> ? "float" : "double";
  std::vector<std::string> inputs;
  std::map<std::string, Tensor> feeds;
  node_inputs<T>(g, inputs, feeds);

  const test::NodeCase forward{"ai.onnxtrain.YoloV5Loss", attributes(g), inputs,
                               {std::string(type) + " loss", std::string(type) + "[3] parts"}, 17, {{"ai.onnxtrain", 1}}};
  const auto out = test::run_node_case(forward, feeds);
  expect_relative(out.at("loss").as_double()[0], g.at("loss").as_double()[0], tol, "loss");
  const auto parts = out.at("parts").as_double(), want = g.at("parts").as_double();
  for (int k = 0; k < 3; ++k) expect_relative(parts[k], want[k], tol, "parts[" + std::to_string(k) + "]");

  // The gradient kernel for an upstream gradient of 2.5: the goldens' gradients scaled.
  std::vector<std::string> grad_inputs{std::string(type) + " dloss"};
  grad_inputs.insert(grad_inputs.end(), inputs.begin(), inputs.end());
  std::vector<std::string> grad_outputs;
  for (int l = 0; l < 3; ++l) grad_outputs.push_back(std::string(type) + shape_text(g.at("p_" + std::to_string(l)).shape()) + " d" + std::to_string(l));
  feeds["dloss"] = std::is_same_v<T, float> ? Tensor::scalar<float>(2.5f) : Tensor::scalar<double>(2.5);
  const test::NodeCase backward{"ai.onnxtrain.YoloV5LossGrad", attributes(g), grad_inputs, grad_outputs, 17, {{"ai.onnxtrain", 1}}};
  const auto grads = test::run_node_case(backward, feeds);
  for (int l = 0; l < 3; ++l) {
    std::vector<double> scaled = g.at("grad_" + std::to_string(l)).as_double();
    for (double& v : scaled) v *= 2.5;
    const Tensor expected = Tensor::from_vector<double>(g.at("grad_" + std::to_string(l)).shape(), scaled);
    expect_close(grads.at("d" + std::to_string(l)), expected, tol, "grad of p_" + std::to_string(l));
  }
}

const char* const kCases[] = {"flat", "split", "background", "empty", "edges", "crowded", "one_class"};

TEST(YoloV5Loss, MatchesPyTorchInDouble) {
  for (const char* c : kCases) check_case<double>(c);
}

TEST(YoloV5Loss, MatchesPyTorchInFloat) {
  for (const char* c : kCases) check_case<float>(c);
}

TEST(YoloV5Loss, ExplainsBadShapesAndAttributes) {
  const auto g = golden("flat");
  std::vector<std::string> inputs;
  std::map<std::string, Tensor> feeds;
  node_inputs<float>(g, inputs, feeds);
  auto error_with = [&](const std::string& attrs) {
    return test::run_error(test::NodeCase{"ai.onnxtrain.YoloV5Loss", attrs, inputs, {"float loss", "float[3] parts"}, 17,
                                          {{"ai.onnxtrain", 1}}}.text(), feeds);
  };
  EXPECT_CONTAINS(error_with("anchors = [1.0, 2.0], image_size = [64, 64]"), "num_classes");
  // 4 classes: the channels (3*8 = 24) are not A*(5+C) = 27.
  std::string attrs = attributes(g);
  const std::string classes = error_with(attrs.replace(0, 15, "num_classes = 4"));
  EXPECT_CONTAINS(classes, "[N, A*(5+C), H, W] = [2, 27, H, W]");
  attrs = attributes(g);
  const std::string stride = error_with(attrs.replace(attrs.find("image_size = [64, 64]"), 21, "image_size = [64, 48]"));
  EXPECT_CONTAINS(stride, "same stride in H and W");
}

}  // namespace
