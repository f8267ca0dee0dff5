// ai.onnxtrain.YoloV8Loss against goldens of our PyTorch float64 implementation
// (tests/scripts/yolov8_loss_reference.py -> tests/data/detect/yolov8_loss_*.npz).
//
// There is no finite-difference check of the whole loss: the target assignment depends on
// the predictions' values and is a constant for the gradient (as in Ultralytics), so the
// loss is not the function whose derivative the op computes. Correctness of the gradient
// comes from the goldens, which autograd computed under the same convention.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <sstream>

#include "onnxtrain/npy.h"
#include "onnxtrain/onnxtrain.h"
#include "tests/support/node_case.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

constexpr int kLevels = 3;
const char* const kCases[] = {"c3", "c1", "rm8", "empty"};

struct Golden {
  std::map<std::string, Tensor> arrays;
  double attr(const std::string& name) const { return arrays.at("attr_" + name).as_double().at(0); }
  bool has(const std::string& name) const { return arrays.count("attr_" + name) != 0; }
};

Golden load(const std::string& name) {
  return {read_npz(test::source_dir() + "/tests/data/detect/yolov8_loss_" + name + ".npz")};
}

std::string dims(const Shape& s) {
  std::string out;
  for (int64_t d : s) out += (out.empty() ? "" : ",") + std::to_string(d);
  return "[" + out + "]";
}

// The op's attribute list: the golden's non-default attributes, the rest left to defaults.
std::string attributes(const Golden& g) {
  std::ostringstream a;
  a << "num_classes = " << static_cast<int64_t>(g.attr("num_classes")) << ", reg_max = "
    << static_cast<int64_t>(g.attr("reg_max")) << ", image_size = [64, 64]";
  for (const char* f : {"box", "cls", "dfl", "alpha", "beta"})
    if (g.has(f)) a << ", " << f << " = " << std::fixed << g.attr(f);
  if (g.has("topk")) a << ", topk = " << static_cast<int64_t>(g.attr("topk"));
  return a.str();
}

Tensor convert(const Tensor& t, DType dtype) {
  if (dtype == DType::Double) return Tensor::from_vector<double>(t.shape(), t.as_double());
  const auto v = t.as_double();
  return Tensor::from_vector<float>(t.shape(), std::vector<float>(v.begin(), v.end()));
}

std::string type_of(DType dtype) { return dtype == DType::Double ? "double" : "float"; }

// Inputs boxes, p0, p1, p2 in `dtype`.
std::map<std::string, Tensor> feeds(const Golden& g, DType dtype) {
  std::map<std::string, Tensor> f{{"boxes", convert(g.arrays.at("boxes"), dtype)}};
  for (int l = 0; l < kLevels; ++l) f["p" + std::to_string(l)] = convert(g.arrays.at("p" + std::to_string(l)), dtype);
  return f;
}

std::vector<std::string> typed_inputs(const Golden& g, DType dtype) {
  std::vector<std::string> in{type_of(dtype) + dims(g.arrays.at("boxes").shape()) + " boxes"};
  for (int l = 0; l < kLevels; ++l) {
    const std::string p = "p" + std::to_string(l);
    in.push_back(type_of(dtype) + dims(g.arrays.at(p).shape()) + " " + p);
  }
  return in;
}

std::map<std::string, Tensor> run_forward(const Golden& g, DType dtype) {
  const test::NodeCase c{"ai.onnxtrain.YoloV8Loss", attributes(g), typed_inputs(g, dtype),
                         {type_of(dtype) + " L", type_of(dtype) + "[3] parts"}, 17, {{"ai.onnxtrain", 1}}};
  return test::run_node_case(c, feeds(g, dtype));
}

std::map<std::string, Tensor> run_grad(const Golden& g, DType dtype, double dloss) {
  std::vector<std::string> in = typed_inputs(g, dtype);
  in.insert(in.begin(), type_of(dtype) + " dL");
  std::vector<std::string> out;
  for (int l = 0; l < kLevels; ++l) {
    const std::string p = "p" + std::to_string(l);
    out.push_back(type_of(dtype) + dims(g.arrays.at(p).shape()) + " d" + p);
  }
  const test::NodeCase c{"ai.onnxtrain.YoloV8LossGrad", attributes(g), in, out, 17, {{"ai.onnxtrain", 1}}};
  auto f = feeds(g, dtype);
  f["dL"] = convert(Tensor::from_vector<double>({}, {dloss}), dtype);
  return test::run_node_case(c, f);
}

double relative(double actual, double expected) {
  return std::abs(actual - expected) / std::max(std::abs(expected), 1e-300);
}

// Loss and parts to `rtol` relative; gradients (times dloss) to `gtol` of each tensor's max |.|.
void expect_matches_golden(const std::string& name, DType dtype, double rtol, double gtol) {
  SCOPED_TRACE(name + " " + type_of(dtype));
  const Golden g = load(name);
  const auto out = run_forward(g, dtype);
  const double loss = g.arrays.at("loss").as_double().at(0);
  const auto parts = g.arrays.at("parts").as_double();
  EXPECT_LE(relative(out.at("L").as_double().at(0), loss), rtol)
      << "loss " << out.at("L").as_double().at(0) << " vs " << loss << " (reference: "
      << g.arrays.at("debug_num_fg").as_double().at(0) << " foreground anchors, target scores sum "
      << g.arrays.at("debug_target_scores_sum").as_double().at(0) << ")";
  const auto got_parts = out.at("parts").as_double();
  for (int k = 0; k < 3; ++k) {
    if (parts[k] == 0) EXPECT_EQ(got_parts[k], 0.0) << "part " << k;
    else EXPECT_LE(relative(got_parts[k], parts[k]), rtol) << "part " << k << ": " << got_parts[k] << " vs " << parts[k];
  }
  const double dloss = 2.5;  // the upstream gradient scales every input gradient
  const auto grads = run_grad(g, dtype, dloss);
  for (int l = 0; l < kLevels; ++l) {
    const std::string p = "p" + std::to_string(l);
    auto expected = g.arrays.at("grad_" + p).as_double();
    for (double& e : expected) e *= dloss;
    const Tensor want = Tensor::from_vector<double>(g.arrays.at(p).shape(), expected);
    EXPECT_LE(test::scaled_error(grads.at("d" + p), want), gtol) << "gradient of " << p;
  }
}

}  // namespace

TEST(YoloV8Loss, MatchesTorchGoldensInDouble) {
  // Measured: within 6e-16 (loss, parts and gradients).
  for (const char* name : kCases) expect_matches_golden(name, DType::Double, 1e-6, 1e-6);
}

TEST(YoloV8Loss, MatchesTorchGoldensInFloat) {
  // Inputs rounded to float32 (relative 6e-8); the op computes in double and rounds its
  // outputs. Measured: loss and parts within 6e-8 relative, gradients within 8e-8 of scale.
  for (const char* name : kCases) expect_matches_golden(name, DType::Float, 1e-6, 1e-6);
}

// --- In a training graph --------------------------------------------------------------

namespace {

// A tiny anchor-free detector on 32x32 inputs: average-pooled features at strides 4, 8 and
// 16, a 1x1 convolution per level to 4 * reg_max + C = 18 channels, and the loss node.
// `loss_line` and `outputs` complete the graph.
std::string detector_model(const std::string& outputs, const std::string& loss_line) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 0.3f);
  auto values = [&](size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(normal(rng));
    return "{" + s + "}";
  };
  std::string inits;
  for (int l = 0; l < kLevels; ++l) {
    const std::string i = std::to_string(l);
    inits += (l ? ", " : "") + std::string("float[18,4,1,1] W") + i + " = " + values(72) + ", float[18] B" + i +
             " = " + values(18);
  }
  return test::model_header(17, {{"ai.onnxtrain", 1}}) + "g (float[2,4,32,32] X, float[2,3,6] boxes) => (" + outputs +
         ") <" + inits + "> {\n"
         "  F0 = AveragePool <kernel_shape = [4, 4], strides = [4, 4]> (X)\n"
         "  F1 = AveragePool <kernel_shape = [2, 2], strides = [2, 2]> (F0)\n"
         "  F2 = AveragePool <kernel_shape = [2, 2], strides = [2, 2]> (F1)\n"
         "  P0 = Conv (F0, W0, B0)\n  P1 = Conv (F1, W1, B1)\n  P2 = Conv (F2, W2, B2)\n" +
         loss_line + "\n}";
}

const char* const kLossLine =
    "  L, parts = ai.onnxtrain.YoloV8Loss <num_classes = 2, reg_max = 4, image_size = [32, 32]> (boxes, P0, P1, P2)";

std::map<std::string, Tensor> detector_batch() {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  std::vector<float> x(2 * 4 * 32 * 32);
  for (float& v : x) v = u(rng);
  // Image 0: two boxes and a padding row; image 1: one box.
  const std::vector<float> boxes = {1, 0, 0.35f, 0.40f, 0.40f, 0.50f, 1, 1, 0.70f, 0.65f, 0.30f, 0.35f, 0, 0, 0, 0, 0, 0,
                                    1, 1, 0.50f, 0.50f, 0.60f, 0.60f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  return {{"X", Tensor::from_vector<float>({2, 4, 32, 32}, x)}, {"boxes", Tensor::from_vector<float>({2, 3, 6}, boxes)}};
}

}  // namespace

TEST(YoloV8Loss, TrainsATinyDetector) {
  Model model = Model::from_text(detector_model("float L, float[3] parts", kLossLine));
  TrainingOptions options;
  options.loss.kind = "output";
  options.loss.output = "L";
  options.optimizer.kind = "adam";
  options.optimizer.lr = 0.05;
  TrainingSession session(model, options);
  const auto batch = detector_batch();
  std::vector<double> losses;
  for (int step = 0; step < 20; ++step) losses.push_back(session.train_step(batch).loss);
  for (double l : losses) ASSERT_TRUE(std::isfinite(l));
  EXPECT_LT(losses.back(), 0.5 * losses.front()) << "first " << losses.front() << ", last " << losses.back();
  // The box and DFL parts take part: the batch has foreground anchors from the start.
  const auto parts = session.eval_step(batch, {"parts"}).outputs.at("parts").as_double();
  EXPECT_GT(parts[0], 0.0);
  EXPECT_GT(parts[2], 0.0);
}

// The gradient rule in a training graph: p_i = X_i + B_i with a per-channel bias B_i = 0,
// so dL/dB_i is the golden gradient of p_i summed over images and cells.
TEST(YoloV8Loss, GradientRuleGivesTheGoldenGradientInATrainingGraph) {
  const Golden g = load("c3");
  const int64_t channels = g.arrays.at("p0").shape()[1];
  std::string inputs = "double" + dims(g.arrays.at("boxes").shape()) + " boxes", inits, body;
  std::map<std::string, Tensor> f{{"boxes", g.arrays.at("boxes")}};
  for (int l = 0; l < kLevels; ++l) {
    const std::string i = std::to_string(l);
    inputs += ", double" + dims(g.arrays.at("p" + i).shape()) + " X" + i;
    std::string zeros = "0";
    for (int64_t c = 1; c < channels; ++c) zeros += ", 0";
    inits += (l ? ", " : "") + std::string("double[1,") + std::to_string(channels) + ",1,1] B" + i + " = {" + zeros + "}";
    body += "  P" + i + " = Add (X" + i + ", B" + i + ")\n";
    f["X" + i] = g.arrays.at("p" + i);
  }
  Model model = Model::from_text(test::model_header(17, {{"ai.onnxtrain", 1}}) + "g (" + inputs + ") => (double L) <" +
                                 inits + "> {\n" + body + "  L, parts = ai.onnxtrain.YoloV8Loss <" + attributes(g) +
                                 "> (boxes, P0, P1, P2)\n}");
  TrainingOptions options;
  options.loss.kind = "output";
  options.loss.output = "L";
  TrainingSession session(model, options);
  const StepGradients step = session.compute_gradients(f);
  EXPECT_LE(relative(step.loss, g.arrays.at("loss").as_double().at(0)), 1e-6);
  for (int l = 0; l < kLevels; ++l) {
    const std::string i = std::to_string(l);
    const Tensor& grad = g.arrays.at("grad_p" + i);
    const int64_t n = grad.shape()[0], cells = grad.shape()[2] * grad.shape()[3];
    const auto v = grad.as_double();
    std::vector<double> expected(static_cast<size_t>(channels), 0.0);
    for (int64_t k = 0; k < n * channels * cells; ++k) expected[(k / cells) % channels] += v[k];
    EXPECT_LE(test::scaled_error(step.gradients.at("B" + i),
                                 Tensor::from_vector<double>({1, channels, 1, 1}, expected)),
              1e-6)
        << "B" << i;
  }
}

TEST(YoloV8Loss, PartsHaveNoGradient) {
  const std::string line = std::string(kLossLine) + "\n  S = ReduceSum <keepdims = 0> (parts)";
  Model model = Model::from_text(detector_model("float S", line));
  TrainingOptions options;
  options.loss.kind = "output";
  options.loss.output = "S";
  const std::string message = test::error_of<ModelError>([&] { TrainingSession session(model, options); });
  EXPECT_CONTAINS(message, "YoloV8Loss");
  EXPECT_CONTAINS(message, "'parts'");
}

TEST(YoloV8Loss, RejectsBadInputsNamingThem) {
  const Golden g = load("c1");
  auto f = feeds(g, DType::Double);
  auto node = [&](const std::string& attrs) {
    return test::NodeCase{"ai.onnxtrain.YoloV8Loss", attrs, typed_inputs(g, DType::Double), {"double L"}, 17,
                          {{"ai.onnxtrain", 1}}}
        .text();
  };
  test::expect_error(node("num_classes = 1, image_size = [64, 48]"), f, "integral stride");
  test::expect_error(node("num_classes = 2, image_size = [64, 64]"), f, "p_0 must have shape");
  test::expect_error(node("image_size = [64, 64]"), f, "num_classes");
  // A class id beyond num_classes names the box row.
  Tensor boxes = f.at("boxes").clone();
  boxes.data<double>()[1] = 3;
  f["boxes"] = boxes;
  test::expect_error(node("num_classes = 1, image_size = [64, 64]"), f, "boxes[0, 0] has class 3");
}
