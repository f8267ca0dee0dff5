// The loss stage: every built-in kind against torch.nn.functional goldens (value and
// gradient w.r.t. the model output), the "output" and "custom" kinds, and the error paths.
// dL/dY comes through the public API: the probe model is Y = Add(X, B) with B a zero
// initializer of Y's shape, so the gradient of the parameter B is dL/dY.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/loss_goldens.h"
#include "tests/support/node_case.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

using test::probe_model;

const std::map<std::string, Tensor>& goldens() {
  static const auto arrays = read_npz(test::source_dir() + "/tests/data/loss/loss_goldens.npz");
  return arrays;
}

// Runs every golden case of `kind`; returns how many there were.
int check_goldens(const std::string& kind) { return test::check_loss_goldens(goldens(), kind); }

StepGradients probe(const Tensor& input, const Tensor& target, const LossOptions& loss) {
  return test::loss_probe(input, target, loss);
}

TEST(LossGolden, CrossEntropy) { EXPECT_EQ(check_goldens("cross_entropy"), 24); }
TEST(LossGolden, Nll) { EXPECT_EQ(check_goldens("nll"), 14); }
TEST(LossGolden, Mse) { EXPECT_EQ(check_goldens("mse"), 4); }
TEST(LossGolden, L1) { EXPECT_EQ(check_goldens("l1"), 2); }
TEST(LossGolden, SmoothL1) { EXPECT_EQ(check_goldens("smooth_l1"), 8); }
TEST(LossGolden, Huber) { EXPECT_EQ(check_goldens("huber"), 8); }
TEST(LossGolden, BceWithLogits) { EXPECT_EQ(check_goldens("bce_with_logits"), 4); }
TEST(LossGolden, KlDiv) { EXPECT_EQ(check_goldens("kl_div"), 6); }

TEST(LossGolden, EveryCaseIsChecked) {
  int options = 0;
  for (const auto& [key, value] : goldens()) options += key.ends_with(".options");
  EXPECT_EQ(options, 24 + 14 + 4 + 2 + 8 + 8 + 4 + 6);
}

// Expects `fn` to throw E with a message containing every one of `parts`.
template <typename E>
void expect_error(const std::function<void()>& fn, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no exception";
  } catch (const E& e) {
    for (const auto& part : parts) EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

Tensor values(Shape shape, double start, double step) {
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(start + step * static_cast<double>(i));
  return Tensor::from_vector<float>(std::move(shape), v);
}

std::string loss_model(const std::string& body) { return test::model_header(17) + body; }

std::string model_bytes(const std::string& text) { return Model::from_text(text).serialize(); }

const std::string kMseLoss = loss_model(R"(
  mse (float[4,3] Y, float[4,3] label) => (float loss) {
    d = Sub(Y, label)
    sq = Mul(d, d)
    loss = ReduceMean<keepdims=0>(sq)
  })");

TEST(CustomLoss, MseModelEqualsTheBuiltInMse) {
  const Tensor x = values({4, 3}, -1.3, 0.27), t = values({4, 3}, 0.8, -0.11);
  LossOptions builtin;
  builtin.kind = "mse";
  auto expected = probe(x, t, builtin);

  LossOptions custom;
  custom.kind = "custom";
  custom.model_bytes = model_bytes(kMseLoss);
  auto from_bytes = probe(x, t, custom);
  EXPECT_NEAR(from_bytes.loss, expected.loss, 1e-6 * expected.loss);
  EXPECT_EQ(test::compare_tensors(from_bytes.gradients.at("B"), expected.gradients.at("B"), 1e-6, 1e-7), "");

  const auto path = (std::filesystem::temp_directory_path() / "onnxtrain_loss_test_mse.onnx").string();
  std::ofstream(path, std::ios::binary) << custom.model_bytes;
  custom.model_bytes.clear();
  custom.model_path = path;
  auto from_file = probe(x, t, custom);
  EXPECT_EQ(from_file.loss, from_bytes.loss);
  std::filesystem::remove(path);
}

TEST(CustomLoss, ExtraTargetAndInitializerThatIsNeverTrained) {
  // Its initializer is named B and a value X, like the model's: the merge renames them.
  const std::string text = loss_model(R"(
    weighted (float[4,3] Y, float[4,3] label, float[4,1] mask) => (float loss) <float[3] B = {1, 2, 3}> {
      X = Sub(Y, label)
      sq = Mul(X, X)
      weighted = Mul(sq, B)
      masked = Mul(weighted, mask)
      loss = ReduceSum<keepdims=0>(masked)
    })");
  Model model = Model::from_text(probe_model(DType::Float, {4, 3}));
  TrainingOptions options;
  options.loss.kind = "custom";
  options.loss.model_bytes = model_bytes(text);
  TrainingSession session(model, options);
  EXPECT_EQ(session.trainable(), std::vector<std::string>{"B"});
  const Tensor x = values({4, 3}, -1.3, 0.27), t = values({4, 3}, 0.8, -0.11), mask = values({4, 1}, 1, -0.5);
  auto step = session.compute_gradients({{"X", x}, {"label", t}, {"mask", mask}});
  const float w[3] = {1, 2, 3};
  double loss = 0;
  std::vector<float> grad(12);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) {
      const double d = x.data<float>()[i * 3 + j] - t.data<float>()[i * 3 + j], m = mask.data<float>()[i];
      loss += m * w[j] * d * d;
      grad[i * 3 + j] = static_cast<float>(2 * m * w[j] * d);
    }
  EXPECT_NEAR(step.loss, loss, 1e-5 * std::abs(loss));
  EXPECT_EQ(test::compare_tensors(step.gradients.at("B"), Tensor::from_vector<float>({4, 3}, grad), 1e-5, 1e-6), "");
  expect_error<DataError>([&] { session.compute_gradients({{"X", x}, {"label", t}}); }, {"'mask'", "not fed"});
}

TEST(CustomLoss, MayReadAModelInput) {
  // A reconstruction loss: sum((X * W - X)^2), so dL/dW_j = sum_i 2 (X W - X)_ij X_ij.
  Model model = Model::from_text(loss_model(R"(
    scale (float[2,3] X) => (float[2,3] Y) <float[3] W = {0.5, 1.5, 2}> { Y = Mul(X, W) })"));
  TrainingOptions options;
  options.loss.kind = "custom";
  options.loss.model_bytes = model_bytes(loss_model(R"(
    reconstruction (float[2,3] Y, float[2,3] X) => (float loss) {
      d = Sub(Y, X)
      sq = Mul(d, d)
      loss = ReduceSum<keepdims=0>(sq)
    })"));
  TrainingSession session(model, options);
  const Tensor x = values({2, 3}, -1, 0.6);
  auto step = session.compute_gradients({{"X", x}});
  const float w[3] = {0.5f, 1.5f, 2};
  for (int j = 0; j < 3; ++j) {
    double g = 0;
    for (int i = 0; i < 2; ++i) {
      const double xv = x.data<float>()[i * 3 + j];
      g += 2 * (xv * w[j] - xv) * xv;
    }
    EXPECT_NEAR(step.gradients.at("W").data<float>()[j], g, 1e-5) << j;
  }
}

TEST(CustomLoss, ExportedTrainingGraphReplays) {
  Model model = Model::from_text(probe_model(DType::Float, {4, 3}));
  TrainingOptions options;
  options.loss.kind = "custom";
  options.loss.model_bytes = model_bytes(kMseLoss);
  TrainingSession session(model, options);
  const Tensor x = values({4, 3}, -1.3, 0.27), t = values({4, 3}, 0.8, -0.11);
  auto step = session.compute_gradients({{"X", x}, {"label", t}});
  const auto path = (std::filesystem::temp_directory_path() / "onnxtrain_loss_test_graph.onnx").string();
  session.export_training_graph(path);
  auto out = InferenceSession(Model::load(path)).run({{"X", x}, {"label", t}}, {session.loss_name(), "B_grad"});
  std::filesystem::remove(path);
  EXPECT_EQ(out.at(session.loss_name()).as_double().at(0), step.loss);
  EXPECT_EQ(test::compare_tensors(out.at("B_grad"), step.gradients.at("B"), 0, 0), "");
}

TEST(OutputLoss, ScalarAndSingleElementOutputsAreTheLoss) {
  // L = sum((X + B)^2): dL/dB = 2 X at B = 0.
  for (const std::string& shape : {std::string("float L"), std::string("float[1,1] L")}) {
    SCOPED_TRACE(shape);
    const std::string keep = shape == "float L" ? "0" : "1";
    Model model = Model::from_text(loss_model("scalar (float[2,3] X) => (" + shape +
                                              ") <float[2,3] B = {0, 0, 0, 0, 0, 0}> {\n"
                                              "  Y = Add(X, B)\n  sq = Mul(Y, Y)\n  L = ReduceSum<keepdims=" + keep + ">(sq)\n}"));
    TrainingOptions options;
    options.loss.kind = "output";
    TrainingSession session(model, options);
    const Tensor x = values({2, 3}, -1, 0.6);
    auto step = session.compute_gradients({{"X", x}});
    double expected = 0;
    for (float v : x.span<float>()) expected += double(v) * v;
    EXPECT_NEAR(step.loss, expected, 1e-5 * expected);
    for (int i = 0; i < 6; ++i) EXPECT_NEAR(step.gradients.at("B").data<float>()[i], 2 * x.data<float>()[i], 1e-6);
    // No target input was added.
    expect_error<DataError>([&] { session.compute_gradients({{"X", x}, {"label", x}}); }, {"label"});
  }
}

// --- Error paths: each message names what is wrong. ----------------------------------

void build(const std::string& model_text, const LossOptions& loss) {
  Model model = Model::from_text(model_text);
  TrainingOptions options;
  options.loss = loss;
  TrainingSession session(model, options);
}

LossOptions loss_of(const std::string& kind) {
  LossOptions o;
  o.kind = kind;
  return o;
}

const std::string kProbe = probe_model(DType::Float, {4, 3});

TEST(LossErrors, InvalidOptionValuesNameTheOption) {
  LossOptions o = loss_of("smooth_l1");
  o.beta = -1;
  expect_error<DataError>([&] { build(kProbe, o); }, {"'beta'", ">= 0"});
  o = loss_of("huber");
  o.delta = 0;
  expect_error<DataError>([&] { build(kProbe, o); }, {"'delta'", "> 0"});
  o = loss_of("cross_entropy");
  o.label_smoothing = 1.5;
  expect_error<DataError>([&] { build(kProbe, o); }, {"'label_smoothing'", "[0, 1]"});
  o = loss_of("mse");
  o.reduction = "batchmean";
  expect_error<DataError>([&] { build(kProbe, o); }, {"'reduction'", "batchmean"});
  o.reduction = "none";
  expect_error<DataError>([&] { build(kProbe, o); }, {"'reduction'", "none"});
  expect_error<ModelError>([&] { build(kProbe, loss_of("hinge")); }, {"hinge", "kl_div", "custom"});
}

TEST(LossErrors, OptionsForAnotherKindAreRejected) {
  LossOptions o = loss_of("nll");
  o.label_smoothing = 0.1;
  expect_error<DataError>([&] { build(kProbe, o); }, {"'label_smoothing'", "'nll'", "cross_entropy"});
  o = loss_of("mse");
  o.beta = 2;
  expect_error<DataError>([&] { build(kProbe, o); }, {"'beta'", "smooth_l1"});
  o = loss_of("mse");
  o.class_weights = {1, 2, 3};
  expect_error<DataError>([&] { build(kProbe, o); }, {"'class_weights'", "'mse'"});
  o = loss_of("output");
  o.target = "y";
  expect_error<DataError>([&] { build(kProbe, o); }, {"'target'", "'output'"});
  o = loss_of("l1");
  o.model_path = "loss.onnx";
  expect_error<DataError>([&] { build(kProbe, o); }, {"'model_path'", "custom"});
}

TEST(LossErrors, VectorOptionLengthsMustMatchTheClasses) {
  LossOptions o = loss_of("cross_entropy");
  o.class_weights = {1, 2, 3, 4};
  expect_error<DataError>([&] { build(kProbe, o); }, {"'class_weights'", "4 values", "'Y'", "3 classes"});
  o.kind = "nll";
  expect_error<DataError>([&] { build(kProbe, o); }, {"'class_weights'"});
  o = loss_of("bce_with_logits");
  o.pos_weight = {1, 2};
  expect_error<DataError>([&] { build(kProbe, o); }, {"'pos_weight'", "2 values", "3 classes"});
  o.pos_weight = {2};  // one value broadcasts, as in torch
  EXPECT_NO_THROW(build(kProbe, o));
}

TEST(LossErrors, ModelThatDoesNotFitTheLoss) {
  expect_error<ModelError>([&] { build(probe_model(DType::Float, {4}), loss_of("cross_entropy")); },
                           {"'Y'", "[N, C, d1, ...]"});
  LossOptions o = loss_of("mse");
  o.target = "X";
  expect_error<ModelError>([&] { build(kProbe, o); }, {"'X'", "already"});
  o = loss_of("mse");
  o.output = "Z";
  expect_error<ModelError>([&] { build(kProbe, o); }, {"'Z'", "not an output", "Y"});
  expect_error<ModelError>([&] { build(kProbe, loss_of("output")); }, {"'Y'", "scalar", "float32[4,3]"});
  expect_error<ModelError>(
      [&] { build(loss_model("count (float[4,3] X) => (int64 n) { n = Size(X) }"), loss_of("output")); },
      {"'n'", "float scalar", "int64"});
}

LossOptions custom(const std::string& body) {
  LossOptions o = loss_of("custom");
  o.model_bytes = model_bytes(loss_model(body));
  return o;
}

TEST(LossErrors, CustomLossModelProblems) {
  expect_error<DataError>([&] { build(kProbe, loss_of("custom")); }, {"'model_path'", "'model_bytes'"});
  LossOptions both = custom("l (float[4,3] Y) => (float loss) { loss = ReduceSum<keepdims=0>(Y) }");
  both.model_path = "loss.onnx";
  expect_error<DataError>([&] { build(kProbe, both); }, {"exactly one"});
  LossOptions missing = loss_of("custom");
  missing.model_path = "/nonexistent/loss.onnx";
  expect_error<ModelError>([&] { build(kProbe, missing); }, {"/nonexistent/loss.onnx"});

  // Not a scalar.
  expect_error<ModelError>([&] { build(kProbe, custom("l (float[4,3] Y) => (float[4,3] d) { d = Neg(Y) }")); },
                           {"'d'", "scalar", "float32[batch,3]"});  // the loss model's fixed batch was relaxed
  // Two outputs.
  expect_error<ModelError>(
      [&] { build(kProbe, custom("l (float[4,3] Y) => (float a, float b) { a = ReduceSum<keepdims=0>(Y) "
                                 "b = ReduceMean<keepdims=0>(Y) }")); },
      {"exactly one output", "a, b"});
  // Reads a model value that is not an output: the parameter B.
  expect_error<ModelError>(
      [&] { build(kProbe, custom("l (float[4,3] Y, float[4,3] B) => (float s) { d = Sub(Y, B) s = ReduceSum<keepdims=0>(d) }")); },
      {"'B'", "neither a model output"});
  // Reads no model output at all.
  expect_error<ModelError>(
      [&] { build(kProbe, custom("l (float[4,3] P) => (float s) { s = ReduceSum<keepdims=0>(P) }")); },
      {"none of its inputs", "P", "Y"});
  // Declares the model output with another type.
  expect_error<ModelError>(
      [&] { build(kProbe, custom("l (double[4,3] Y) => (double s) { s = ReduceSum<keepdims=0>(Y) }")); },
      {"'Y'", "float64[batch,3]", "float32[4,3]"});  // B pins the probe's batch to 4
  expect_error<ModelError>(
      [&] { build(kProbe, custom("l (float[4,5] Y) => (float s) { s = ReduceSum<keepdims=0>(Y) }")); },
      {"'Y'", "float32[batch,5]", "float32[4,3]"});
}

}  // namespace
