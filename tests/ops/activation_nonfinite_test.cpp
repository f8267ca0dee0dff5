// NaN, +inf and -inf through every activation, forward and backward, on float32 (mostly
// oneDNN eltwise primitives) and double (own loops). Expected values are what ONNX's
// reference implementation (numpy) gives: NaN passes (np.maximum, np.clip), and so does
// PyTorch's for every op here except ThresholdedRelu and Shrink, whose ONNX reference
// (np.where(x > alpha, ...)) maps NaN to 0. Products like -inf * 0 (HardSwish, Mish, Gelu at
// -inf, Softsign at +-inf) are NaN in numpy and PyTorch alike.
//
// Backward: at a NaN input the derivative is undefined, so dX is NaN (oneDNN's relu, elu,
// abs, hardswish and clip backward would return dY, alpha * dY or 0 there).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/node_case.h"

using namespace onnxtrain;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kUnchecked = 12345.0;  // an entry the table does not judge
// 19 elements: the vectorised body and the tail of oneDNN's JIT kernels both see each value.
constexpr int kLength = 19;

struct NonFiniteCase {
  std::string name;
  std::string body;  // graph body computing Y from X; TYPE stands for the element type
  int opset;
  double at_nan, at_inf, at_minus_inf;
};

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t p = text.find(from); p != std::string::npos; p = text.find(from, p + to.size()))
    text.replace(p, from.size(), to);
  return text;
}

// X[i] cycles through NaN, +inf, -inf.
Tensor nonfinite_input(DType dtype) {
  std::vector<double> x(kLength);
  for (int i = 0; i < kLength; ++i) x[i] = i % 3 == 0 ? kNaN : i % 3 == 1 ? kInf : -kInf;
  if (dtype == DType::Float) return Tensor::from_vector<float>({kLength}, std::vector<float>(x.begin(), x.end()));
  return Tensor::from_vector<double>({kLength}, x);
}

bool same_value(double got, double want) {
  if (want == kUnchecked) return true;
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  return std::abs(got - want) <= 1e-6 * std::max(1.0, std::abs(want));
}

void expect_table(const NonFiniteCase& c, const std::vector<double>& y, const std::string& type) {
  ASSERT_EQ(y.size(), size_t{kLength});
  const double want[3] = {c.at_nan, c.at_inf, c.at_minus_inf};
  const char* input[3] = {"NaN", "+inf", "-inf"};
  for (int i = 0; i < kLength; ++i)
    EXPECT_TRUE(same_value(y[i], want[i % 3]))
        << c.name << " (" << type << ") at " << input[i % 3] << " gives " << y[i] << ", expected " << want[i % 3]
        << " (element " << i << ")";
}

std::string model_text(const NonFiniteCase& c, const std::string& type, const std::string& inputs) {
  return test::model_header(c.opset, {{"ai.onnxtrain", 1}}) + "g (" + inputs + ") => (" + type + "[" +
         std::to_string(kLength) + "] Y) { " + replace_all(c.body, "TYPE", type) + " }";
}

const NonFiniteCase kForward[] = {
    {"Relu", "Y = Relu(X)", 17, kNaN, kInf, 0},
    {"LeakyRelu", "Y = LeakyRelu<alpha = 0.1>(X)", 17, kNaN, kInf, -kInf},
    {"Elu", "Y = Elu(X)", 17, kNaN, kInf, -1},
    {"Selu", "Y = Selu(X)", 17, kNaN, kInf, -1.67326319217681884765625 * 1.05070102214813232421875},
    {"Celu", "Y = Celu(X)", 17, kNaN, kInf, -1},
    {"Sigmoid", "Y = Sigmoid(X)", 17, kNaN, 1, 0},
    {"HardSigmoid", "Y = HardSigmoid(X)", 17, kNaN, 1, 0},
    {"Tanh", "Y = Tanh(X)", 17, kNaN, 1, -1},
    {"Softplus", "Y = Softplus(X)", 17, kNaN, kInf, 0},
    {"Softsign", "Y = Softsign(X)", 17, kNaN, kNaN, kNaN},
    {"HardSwish", "Y = HardSwish(X)", 17, kNaN, kInf, kNaN},
    {"Mish", "Y = Mish(X)", 18, kNaN, kInf, kNaN},
    {"Gelu", "Y = Gelu(X)", 20, kNaN, kInf, kNaN},
    {"Gelu_tanh", "Y = Gelu<approximate = \"tanh\">(X)", 20, kNaN, kInf, kNaN},
    {"Exp", "Y = Exp(X)", 17, kNaN, kInf, 0},
    {"Log", "Y = Log(X)", 17, kNaN, kInf, kNaN},
    {"Sqrt", "Y = Sqrt(X)", 17, kNaN, kInf, kNaN},
    {"Abs", "Y = Abs(X)", 17, kNaN, kInf, kInf},
    {"Neg", "Y = Neg(X)", 17, kNaN, -kInf, kInf},
    {"Clip_no_bounds", "Y = Clip(X)", 13, kNaN, kInf, -kInf},
    {"Clip_min", "lo = Constant<value = TYPE[1] {0}>() Y = Clip(X, lo)", 13, kNaN, kInf, 0},
    {"Clip_min_max", "lo = Constant<value = TYPE[1] {0}>() hi = Constant<value = TYPE[1] {6}>() Y = Clip(X, lo, hi)", 13,
     kNaN, 6, 0},
    {"Clip_attribute_max_opset6", "Y = Clip<max = 6.0>(X)", 6, kNaN, 6, -kInf},
    {"Clip_attributes_opset6", "Y = Clip<min = 0.0, max = 6.0>(X)", 6, kNaN, 6, 0},
    {"Clip_attribute_min_opset6", "Y = Clip<min = 0.0>(X)", 6, kNaN, kInf, 0},
    {"ThresholdedRelu", "Y = ThresholdedRelu(X)", 17, 0, kInf, 0},
    {"Shrink", "Y = Shrink<lambd = 0.5, bias = 0.25>(X)", 17, 0, kInf, -kInf},
    {"PRelu", "s = Constant<value = TYPE[1] {0.25}>() Y = PRelu(X, s)", 17, kNaN, kInf, -kInf},
};

// ai.onnxtrain.<Op>Grad(dY = 1, V): V is X, or Y with use_output = 1.
const NonFiniteCase kBackward[] = {
    {"ReluGrad", "Y = ai.onnxtrain.ReluGrad<use_output = 1>(dY, X)", 17, kNaN, 1, 0},
    {"ReluGrad_from_x", "Y = ai.onnxtrain.ReluGrad<use_output = 0>(dY, X)", 17, kNaN, 1, 0},
    {"LeakyReluGrad", "Y = ai.onnxtrain.LeakyReluGrad<alpha = 0.1, use_output = 0>(dY, X)", 17, kNaN, 1, 0.1},
    {"EluGrad", "Y = ai.onnxtrain.EluGrad<alpha = 1.0, use_output = 0>(dY, X)", 17, kNaN, 1, 0},
    {"EluGrad_from_y", "Y = ai.onnxtrain.EluGrad<alpha = 1.0, use_output = 1>(dY, X)", 17, kNaN, 1, kUnchecked},
    {"SigmoidGrad", "Y = ai.onnxtrain.SigmoidGrad<use_output = 0>(dY, X)", 17, kNaN, 0, 0},
    {"SigmoidGrad_from_y", "Y = ai.onnxtrain.SigmoidGrad<use_output = 1>(dY, X)", 17, kNaN, kUnchecked, kUnchecked},
    {"TanhGrad", "Y = ai.onnxtrain.TanhGrad<use_output = 0>(dY, X)", 17, kNaN, 0, 0},
    {"TanhGrad_from_y", "Y = ai.onnxtrain.TanhGrad<use_output = 1>(dY, X)", 17, kNaN, kUnchecked, kUnchecked},
    {"SoftplusGrad", "Y = ai.onnxtrain.SoftplusGrad(dY, X)", 17, kNaN, 1, 0},
    {"HardSwishGrad", "Y = ai.onnxtrain.HardSwishGrad(dY, X)", 17, kNaN, 1, 0},
    // d/dx at +-inf: x * pdf(x) is inf * 0 in PyTorch's formula as in ours; left unjudged.
    {"GeluGrad", "Y = ai.onnxtrain.GeluGrad(dY, X)", 17, kNaN, kUnchecked, kUnchecked},
    {"GeluTanhGrad", "Y = ai.onnxtrain.GeluTanhGrad(dY, X)", 17, kNaN, kUnchecked, kUnchecked},
    {"MishGrad", "Y = ai.onnxtrain.MishGrad(dY, X)", 17, kNaN, kUnchecked, kUnchecked},
    {"SqrtGrad", "Y = ai.onnxtrain.SqrtGrad<use_output = 0>(dY, X)", 17, kNaN, 0, kNaN},
    {"AbsGrad", "Y = ai.onnxtrain.AbsGrad(dY, X)", 17, kNaN, 1, -1},
    {"ClipGrad", "Y = ai.onnxtrain.ClipGrad<alpha = 0.0, beta = 6.0, use_output = 1>(dY, X)", 17, kNaN, 0, 0},
    {"ClipGrad_from_x", "Y = ai.onnxtrain.ClipGrad<alpha = 0.0, beta = 6.0, use_output = 0>(dY, X)", 17, kNaN, 0, 0},
};

class ActivationNonFinite : public ::testing::TestWithParam<DType> {};

// The ONNX text name of the element type.
std::string text_type(DType dtype) { return dtype == DType::Float ? "float" : "double"; }

TEST_P(ActivationNonFinite, ForwardFollowsTheOnnxReference) {
  const std::string type = text_type(GetParam());
  const std::string x = type + "[" + std::to_string(kLength) + "] X";
  for (const auto& c : kForward) {
    SCOPED_TRACE(c.name);
    const std::string text = model_text(c, type, x);
    ASSERT_EQ(test::run_error(text, {{"X", nonfinite_input(GetParam())}}), "") << text;
    expect_table(c, test::run_model(text, {{"X", nonfinite_input(GetParam())}})["Y"].as_double(), type);
  }
}

TEST_P(ActivationNonFinite, BackwardIsNaNAtNaN) {
  const std::string type = text_type(GetParam());
  const std::string dims = "[" + std::to_string(kLength) + "]";
  const Tensor ones = GetParam() == DType::Float ? Tensor::from_vector<float>({kLength}, std::vector<float>(kLength, 1.f))
                                                 : Tensor::from_vector<double>({kLength}, std::vector<double>(kLength, 1.0));
  for (const auto& c : kBackward) {
    SCOPED_TRACE(c.name);
    const std::string text = model_text(c, type, type + dims + " dY, " + type + dims + " X");
    const std::map<std::string, Tensor> feeds{{"dY", ones}, {"X", nonfinite_input(GetParam())}};
    ASSERT_EQ(test::run_error(text, feeds), "") << text;
    expect_table(c, test::run_model(text, feeds)["Y"].as_double(), type);
  }
}

INSTANTIATE_TEST_SUITE_P(Types, ActivationNonFinite, ::testing::Values(DType::Float, DType::Double),
                         [](const auto& info) { return text_type(info.param); });

}  // namespace
