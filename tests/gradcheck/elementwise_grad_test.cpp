// Gradient checks for the elementwise (unary) family (elementwise.cpp): float64 (tight
// tolerances) and float32 through the standard ops the rules emit.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/registry.h"
#include "tests/support/node_case.h"
#include "tests/support/unary_grad.h"

using namespace onnxtrain;
using onnxtrain::test::GradCase;
using namespace onnxtrain::test::unary_grad;

namespace {

// Elementwise (own loops; gradients of standard ops): float64 and float32.
std::vector<UnaryCase> elementwise_cases() {
  return {
      {"Erf", "Erf(X)", 17, -2, 2},
      {"Reciprocal", "Reciprocal(X)", 17, -2, 2, {0}, ""},
      {"Sin", "Sin(X)", 17, -3, 3},
      {"Cos", "Cos(X)", 17, -3, 3},
      {"Tan", "Tan(X)", 17, -1.2, 1.2},
      {"Asin", "Asin(X)", 17, -0.9, 0.9},
      {"Acos", "Acos(X)", 17, -0.9, 0.9},
      {"Atan", "Atan(X)", 17, -3, 3},
      {"Sinh", "Sinh(X)", 17, -2, 2},
      {"Cosh", "Cosh(X)", 17, -2, 2},
      {"Asinh", "Asinh(X)", 17, -3, 3},
      {"Acosh", "Acosh(X)", 17, 1.2, 3},
      {"Atanh", "Atanh(X)", 17, -0.9, 0.9},
      {"Selu_default", "Selu(X)", 17, -2, 2, {0}},
      {"Selu_params", "Selu<alpha = 2.0, gamma = 0.5>(X)", 17, -2, 2, {0}},
      {"Selu_negative_alpha", "Selu<alpha = -0.5, gamma = 1.2>(X)", 17, -2, 2, {0}},  // from X
      {"Selu_negative_gamma", "Selu<alpha = 1.5, gamma = -0.8>(X)", 17, -2, 2, {0}},  // from X
      {"HardSigmoid_default", "HardSigmoid(X)", 17, -4, 4, {-2.5, 2.5}},
      {"HardSigmoid_negative_alpha", "HardSigmoid<alpha = -0.3, beta = 0.4>(X)", 17, -4, 4, {-2, 4.0 / 3}},
      {"Celu_default", "Celu(X)", 17, -2, 2, {0}},
      {"Celu_alpha", "Celu<alpha = 0.5>(X)", 17, -2, 2, {0}},
      {"Celu_negative_alpha", "Celu<alpha = -0.7>(X)", 17, -2, 2, {0}},
      {"ThresholdedRelu_default", "ThresholdedRelu(X)", 17, -2, 2, {1}},
      {"ThresholdedRelu_alpha", "ThresholdedRelu<alpha = 0.3>(X)", 17, -1, 1, {0.3}},
      {"ThresholdedRelu_negative_alpha", "ThresholdedRelu<alpha = -0.4>(X)", 17, -1, 1, {-0.4}},  // from X
      {"Softsign", "Softsign(X)", 17, -3, 3},
      {"Shrink_default", "Shrink(X)", 17, -1, 1, {-0.5, 0.5}},
      {"Shrink_bias", "Shrink<lambd = 0.3, bias = 0.2>(X)", 17, -1, 1, {-0.3, 0.3}},
      {"Floor", "Floor(X)", 17, -3, 3, {-3, -2, -1, 0, 1, 2, 3}},
      {"Ceil", "Ceil(X)", 17, -3, 3, {-3, -2, -1, 0, 1, 2, 3}},
      {"Round", "Round(X)", 17, -3, 3, {-2.5, -1.5, -0.5, 0.5, 1.5, 2.5}},
      {"Sign", "Sign(X)", 17, -1, 1, {0}},
      {"Cast_identity", "Cast<to = 11>(X)", 17},
      // Before opset 9 (no Where) the rules select with a mask product.
      {"Reciprocal_opset6", "Reciprocal(X)", 6, -2, 2, {0}},
      {"Softsign_opset6", "Softsign(X)", 6, -3, 3},
      {"Selu_opset6", "Selu(X)", 6, -2, 2, {0}},
      {"Selu_negative_alpha_opset6", "Selu<alpha = -0.5, gamma = 1.2>(X)", 6, -2, 2, {0}},
      {"HardSigmoid_opset6", "HardSigmoid(X)", 6, -4, 4, {-2.5, 2.5}},
  };
}

class ElementwiseGrad : public ::testing::TestWithParam<UnaryCase> {};

TEST_P(ElementwiseGrad, Float64) {
  EXPECT_EQ(unary_check(GetParam(), DType::Double, {2, 3, 4}), "");
  EXPECT_EQ(unary_check(GetParam(), DType::Double, {7}), "");
}

TEST_P(ElementwiseGrad, Float32) {
  EXPECT_EQ(unary_check(GetParam(), DType::Float, {2, 3, 4}), "");
}

INSTANTIATE_TEST_SUITE_P(Ops, ElementwiseGrad, ::testing::ValuesIn(elementwise_cases()),
                         [](const auto& info) { return info.param.name; });

// Values at the kinks and thresholds, where finite differences cannot look: strict
// thresholds (ThresholdedRelu, Shrink, HardSigmoid's linear part) and the left derivative
// at 0 (Selu, Celu, Relu, Abs), as PyTorch.
TEST(ElementwiseGrad, ValuesAtKinks) {
  const double selu_left = 1.05070102214813232421875 * 1.67326319217681884765625;  // gamma * alpha
  const struct {
    std::string node;
    std::vector<double> x, expected;
  } cases[] = {
      {"ThresholdedRelu<alpha = 0.5>(X)", {0.25, 0.5, 0.75}, {0, 0, 1}},
      {"ThresholdedRelu<alpha = -0.5>(X)", {-0.75, -0.5, -0.25}, {0, 0, 1}},
      {"Shrink<lambd = 0.5, bias = 0.25>(X)", {-0.75, -0.5, 0, 0.5, 0.75}, {1, 0, 0, 0, 1}},
      {"HardSigmoid<alpha = 0.25, beta = 0.5>(X)", {-3, -2, 0, 2, 3}, {0, 0, 0.25, 0, 0}},
      {"Selu(X)", {-0.5, 0, 0.5}, {selu_left * std::exp(-0.5), selu_left, 1.05070102214813232421875}},
      {"Celu(X)", {0, 0.5}, {1, 1}},
      {"Relu(X)", {-0.5, 0, 0.5}, {0, 0, 1}},
      {"Abs(X)", {-0.5, 0, 0.5}, {-1, 0, 1}},
  };
  for (const auto& c : cases) {
    const std::string t = "double[" + std::to_string(c.x.size()) + "]";
    auto g = gradients(test::graph_model("Y = " + c.node, t + " X", t + " Y"), "Y", {"X"},
                       {{"X", Tensor::from_vector<double>({static_cast<int64_t>(c.x.size())}, c.x)}});
    const auto got = values(g[0]);
    ASSERT_EQ(got.size(), c.expected.size()) << c.node;
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], c.expected[i], 1e-12) << c.node << " at " << c.x[i];
  }
}

// Floor/Ceil/Round/Sign compose: the gradient of X * Floor(X) is Floor(X) (the zero rule).
TEST(ElementwiseGrad, PiecewiseConstantInProduct) {
  for (const char* op : {"Floor", "Ceil", "Round", "Sign"}) {
    GradCase c;
    c.model_text = test::graph_model(std::string("F = ") + op + "(X) Y = Mul(X, F)", "double[9] X", "double[9] Y");
    c.inputs = {{"X", test::random_away_from(DType::Double, {9}, 5, {-2.5, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5},
                                             0.05, -3, 3)}};
    EXPECT_EQ(test::check_gradients(c), "") << op;
  }
}

TEST(ElementwiseGrad, CastBetweenFloatTypes) {
  {  // float -> double: exact
    GradCase c;
    c.model_text = R"(<ir_version: 8, opset_import: ["" : 17]> g (float[2,3] X) => (double[2,3] Y) { Y = Cast<to = 11>(X) })";
    c.inputs = {{"X", test::random_tensor(DType::Float, {2, 3}, 1)}};
    EXPECT_EQ(test::check_gradients(c), "");
  }
  {  // double -> float -> double: the float rounding limits the difference quotient
    GradCase c;
    c.model_text = R"(<ir_version: 8, opset_import: ["" : 17]> g (double[2,3] X) => (double[2,3] Y) {
        F = Cast<to = 1>(X) Y = Cast<to = 11>(F) })";
    c.inputs = {{"X", test::random_tensor(DType::Double, {2, 3}, 2)}};
    c.eps = 1e-3;
    c.rtol = 1e-3;
    EXPECT_EQ(test::check_gradients(c), "");
  }
  {  // CastLike: no gradient to the type-giving input
    GradCase c;
    c.model_text = R"(<ir_version: 8, opset_import: ["" : 17]> g (float[4] X, double[1] T) => (double[4] Y) {
        Y = CastLike(X, T) })";
    c.inputs = {{"X", test::random_tensor(DType::Float, {4}, 3)}, {"T", test::random_tensor(DType::Double, {1}, 4)}};
    c.wrt = {"X"};
    EXPECT_EQ(test::check_gradients(c), "");
  }
  {  // opset 8 Cast in a chain with Mul
    GradCase c;
    c.model_text = R"(<ir_version: 8, opset_import: ["" : 8]> g (float[3] X) => (double[3] Y) {
        D = Cast<to = 11>(X) Y = Mul(D, D) })";
    c.inputs = {{"X", test::random_tensor(DType::Float, {3}, 5)}};
    EXPECT_EQ(test::check_gradients(c), "");
  }
}

TEST(ElementwiseGrad, NonDifferentiableOpsAreMarked) {
  const auto& r = ops::Registry::instance();
  for (const char* op : {"IsNaN", "IsInf", "Not", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And",
                         "Or", "Xor", "BitShift"}) {
    const ops::OpDef* def = r.find("", op, 17);
    ASSERT_NE(def, nullptr) << op;
    EXPECT_TRUE(def->not_differentiable) << op;
  }
}

}  // namespace
