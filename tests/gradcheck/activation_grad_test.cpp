// Gradient checks for the activation family (activation.cpp): float64 through the own loops
// (tight tolerances) and float32 through oneDNN's eltwise_backward (four-point differences,
// loose tolerances).
#include <gtest/gtest.h>

#include <cmath>

#include "tests/support/node_case.h"
#include "tests/support/unary_grad.h"

using namespace onnxtrain;
using onnxtrain::test::GradCase;
using namespace onnxtrain::test::unary_grad;

namespace {

// Activations: float64 (own loops) and float32 (oneDNN eltwise_backward).
std::vector<UnaryCase> activation_cases() {
  return {
      {"Relu", "Relu(X)", 17, -1, 1, {0}},
      {"LeakyRelu_default", "LeakyRelu(X)", 17, -1, 1, {0}},
      {"LeakyRelu_alpha", "LeakyRelu<alpha = 0.3>(X)", 17, -1, 1, {0}},
      {"LeakyRelu_negative_alpha", "LeakyRelu<alpha = -0.4>(X)", 17, -1, 1, {0}},  // from X
      {"LeakyRelu_zero_alpha", "LeakyRelu<alpha = 0.0>(X)", 17, -1, 1, {0}},
      {"Elu_default", "Elu(X)", 17, -2, 2, {0}},
      {"Elu_alpha", "Elu<alpha = 0.5>(X)", 17, -2, 2, {0}},
      {"Elu_negative_alpha", "Elu<alpha = -0.7>(X)", 17, -2, 2, {0}},  // from X
      {"Sigmoid", "Sigmoid(X)", 17, -4, 4},
      {"Tanh", "Tanh(X)", 17, -2, 2},
      {"Softplus", "Softplus(X)", 17, -4, 4},
      {"HardSwish", "HardSwish(X)", 17, -5, 5, {-3, 3}},
      {"Mish", "Mish(X)", 18, -3, 3},
      {"Gelu", "Gelu(X)", 20, -3, 3},
      {"Gelu_tanh", "Gelu<approximate = \"tanh\">(X)", 20, -3, 3},
      {"Exp", "Exp(X)", 17, -2, 2},
      {"Log", "Log(X)", 17, 0.2, 3},
      {"Sqrt", "Sqrt(X)", 17, 0.2, 3},
      {"Exp_opset6", "Exp(X)", 6, -2, 2},  // the rules' legacy broadcast attributes
      {"Sqrt_opset6", "Sqrt(X)", 6, 0.2, 3},
      {"Abs", "Abs(X)", 17, -1, 1, {0}},
      {"Neg", "Neg(X)", 17},
      {"Clip_attributes_opset10", "Clip<min = -0.5, max = 0.4>(X)", 10, -1, 1, {-0.5, 0.4}},
      {"Clip_attribute_min_only_opset10", "Clip<min = -0.5>(X)", 10, -1, 1, {-0.5}},
      {"Clip_no_bounds", "Clip(X)", 13},
      {"Clip_constant_bounds", "Clip(X, lo, hi)", 13, -1, 1, {-0.5, 0.4}, 
       "lo = Constant<value = TYPE[1] {-0.5}>() hi = Constant<value = TYPE[1] {0.4}>()"},
      {"Clip_constant_min_only", "Clip(X, lo)", 13, -1, 1, {-0.5}, "lo = Constant<value = TYPE[1] {-0.5}>()"},
  };
}

class ActivationGrad : public ::testing::TestWithParam<UnaryCase> {};

TEST_P(ActivationGrad, Float64) {
  EXPECT_EQ(unary_check(GetParam(), DType::Double, {2, 3, 4}), "");
  EXPECT_EQ(unary_check(GetParam(), DType::Double, {5}), "");
}

TEST_P(ActivationGrad, Float32OneDnn) {
  EXPECT_EQ(unary_check(GetParam(), DType::Float, {2, 3, 4}), "");
  EXPECT_EQ(unary_check(GetParam(), DType::Float, {3, 1, 2, 5}), "");
}

INSTANTIATE_TEST_SUITE_P(Ops, ActivationGrad, ::testing::ValuesIn(activation_cases()),
                         [](const auto& info) { return info.param.name; });

// Clip with runtime (graph input) bounds: the own loop reads them when it runs; no gradient
// flows to min/max.
TEST(ActivationGrad, ClipRuntimeBounds) {
  for (DType dtype : {DType::Double, DType::Float}) {
    const std::string t = type_name(dtype);
    GradCase c;
    c.model_text = test::NodeCase{"Clip", "", {t + "[2,5] X", t + " lo", t + " hi"}, {t + "[2,5] Y"}, 13}.text();
    c.inputs = {{"X", test::random_away_from(dtype, {2, 5}, 3, {-0.3, 0.6}, 0.05)},
                {"lo", dtype == DType::Double ? Tensor::scalar<double>(-0.3) : Tensor::scalar<float>(-0.3f)},
                {"hi", dtype == DType::Double ? Tensor::scalar<double>(0.6) : Tensor::scalar<float>(0.6f)}};
    c.wrt = {"X"};
    c.four_point = dtype == DType::Float;
    EXPECT_EQ(test::check_gradients(c), "") << t;
  }
}

// The gradient passes strictly inside (min, max) only: 0 at the bounds, in every path
// (oneDNN clip_v2 with constant bounds, own loops, attribute and input forms).
TEST(ActivationGrad, ClipZeroAtAndOutsideBounds) {
  const std::vector<double> x = {-1.0, -0.5, -0.25, 0.0, 0.375, 0.5, 2.0};
  const std::vector<double> expected = {0, 0, 1, 1, 1, 0, 0};
  for (DType dtype : {DType::Float, DType::Double}) {
    const std::string t = type_name(dtype);
    auto tensor = [&](const Shape& shape, const std::vector<double>& v) {
      if (dtype == DType::Double) return Tensor::from_vector<double>(shape, v);
      return Tensor::from_vector<float>(shape, std::vector<float>(v.begin(), v.end()));
    };
    const std::string io = "(" + t + "[7] X, " + t + " lo, " + t + " hi) => (" + t + "[7] Y)";
    const std::string models[] = {
        "<ir_version: 8, opset_import: [\"\" : 10]> g " + io + " { Y = Clip<min = -0.5, max = 0.5>(X) }",
        "<ir_version: 8, opset_import: [\"\" : 13]> g " + io + " { a = Constant<value = " + t +
            "[1] {-0.5}>() b = Constant<value = " + t + "[1] {0.5}>() Y = Clip(X, a, b) }",
        "<ir_version: 8, opset_import: [\"\" : 13]> g " + io + " { Y = Clip(X, lo, hi) }",
    };
    for (const auto& m : models) {
      auto g = gradients(m, "Y", {"X"},
                         {{"X", tensor({7}, x)}, {"lo", tensor({}, {-0.5})}, {"hi", tensor({}, {0.5})}});
      EXPECT_EQ(values(g[0]), expected) << m;
    }
  }
}

}  // namespace
