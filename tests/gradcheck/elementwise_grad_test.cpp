// Gradient checks for the activation, elementwise (unary) and binary/variadic families:
// float64 through the own loops (tight tolerances) and float32 through oneDNN's
// eltwise_backward for the activations (four-point differences, loose tolerances).
// The legacy-form tests (opset 6 broadcasting) check the rules' broadcast=1 handling.
#include <gtest/gtest.h>

#include <cmath>

#include <onnx/onnx_pb.h>

#include "graph/passes/autodiff.h"
#include "graph/importer.h"
#include "ops/registry.h"
#include "src/executor.h"
#include "tests/support/gradcheck.h"

using namespace onnxtrain;
using onnxtrain::test::GradCase;

namespace {

// Runs the backward graph of `loss` (seeded with ones) and returns the gradients of `wrt`.
std::vector<Tensor> gradients(const std::string& text, const std::string& loss, const std::vector<std::string>& wrt,
                              const std::unordered_map<std::string, Tensor>& feeds) {
  onnx::ModelProto proto;
  graph::load_model_text(text, proto);
  graph::ImportOptions options;
  options.model_path = "test model";
  auto g = graph::import_graph(proto, options);
  auto grads = graph::build_gradient_graph(*g, loss, wrt);
  std::vector<std::string> fetch;
  for (const auto& w : wrt) fetch.push_back(grads.gradient_of.at(w));
  Executor ex(*g, fetch);
  return ex.run(feeds);
}

std::vector<double> values(const Tensor& t) {
  std::vector<double> out;
  for (int64_t i = 0; i < t.numel(); ++i)
    out.push_back(t.dtype() == DType::Double ? t.data<double>()[i] : t.data<float>()[i]);
  return out;
}

std::string type_name(DType t) { return t == DType::Double ? "double" : "float"; }

std::string shape_text(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

// ---- unary ops --------------------------------------------------------------------------

struct UnaryCase {
  std::string name;   // test name
  std::string node;   // e.g. "LeakyRelu<alpha = 0.1>(X)"
  int opset = 17;
  double lo = -1, hi = 1;
  std::vector<double> kinks;  // inputs kept 0.05 away from these
  std::string extra;          // extra nodes before Y (bounds as Constants); TYPE = element type
};

void PrintTo(const UnaryCase& c, std::ostream* os) { *os << c.name; }

std::string unary_check(const UnaryCase& p, DType dtype, const Shape& shape) {
  GradCase c;
  const std::string t = type_name(dtype) + shape_text(shape);
  std::string extra = p.extra;
  for (size_t k; (k = extra.find("TYPE")) != std::string::npos;) extra.replace(k, 4, type_name(dtype));
  c.model_text = "<ir_version: 8, opset_import: [\"\" : " + std::to_string(p.opset) + "]> g (" + t + " X) => (" + t +
                 " Y) { " + extra + " Y = " + p.node + " }";
  c.inputs = {{"X", test::random_away_from(dtype, shape, 7, p.kinks, 0.05, p.lo, p.hi)}};
  c.wrt = {"X"};
  if (dtype == DType::Float) c.four_point = true;
  return test::check_gradients(c);
}

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
      {"Exp", "Exp(X)", 17, -2, 2},
      {"Log", "Log(X)", 17, 0.2, 3},
      {"Sqrt", "Sqrt(X)", 17, 0.2, 3},
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
    c.model_text = "<ir_version: 8, opset_import: [\"\" : 13]> g (" + t + "[2,5] X, " + t + " lo, " + t +
                   " hi) => (" + t + "[2,5] Y) { Y = Clip(X, lo, hi) }";
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

// Elementwise (own loops): float64 only.
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
  };
}

class ElementwiseGrad : public ::testing::TestWithParam<UnaryCase> {};

TEST_P(ElementwiseGrad, Float64) {
  EXPECT_EQ(unary_check(GetParam(), DType::Double, {2, 3, 4}), "");
  EXPECT_EQ(unary_check(GetParam(), DType::Double, {7}), "");
}

INSTANTIATE_TEST_SUITE_P(Ops, ElementwiseGrad, ::testing::ValuesIn(elementwise_cases()),
                         [](const auto& info) { return info.param.name; });

// Floor/Ceil/Round/Sign compose: the gradient of X * Floor(X) is Floor(X) (the zero rule).
TEST(ElementwiseGrad, PiecewiseConstantInProduct) {
  for (const char* op : {"Floor", "Ceil", "Round", "Sign"}) {
    GradCase c;
    c.model_text = std::string("<ir_version: 8, opset_import: [\"\" : 17]> g (double[9] X) => (double[9] Y) { F = ") +
                   op + "(X) Y = Mul(X, F) }";
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

// ---- binary and variadic ops ------------------------------------------------------------

struct BinaryCase {
  Shape a, b;
  std::string y_text;
};

std::string binary_model(const std::string& node, const Shape& a, const Shape& b, const std::string& y, int opset = 17) {
  return "<ir_version: 8, opset_import: [\"\" : " + std::to_string(opset) + "]> g (double" + shape_text(a) +
         " A, double" + shape_text(b) + " B) => (double" + y + " Y) { Y = " + node + " }";
}

const std::vector<BinaryCase> kBroadcastShapes = {
    {{2, 3}, {2, 3}, "[2,3]"},
    {{2, 3, 4}, {4}, "[2,3,4]"},
    {{2, 1, 4}, {3, 1}, "[2,3,4]"},
    {{1}, {2, 3}, "[2,3]"},
};

TEST(BinaryGradFamily, Pow) {
  for (const auto& s : kBroadcastShapes) {
    GradCase c;
    c.model_text = binary_model("Pow(A, B)", s.a, s.b, s.y_text);
    c.inputs = {{"A", test::random_tensor(DType::Double, s.a, 1, 0.3, 2.0)},
                {"B", test::random_tensor(DType::Double, s.b, 2, -2.0, 2.5)}};
    EXPECT_EQ(test::check_gradients(c), "") << shape_text(s.a) << shape_text(s.b);
  }
}

TEST(BinaryGradFamily, PowIntegerExponentAndNegativeBase) {
  // opset 13: exponent int64 (no gradient); the base gradient is fine for negative bases.
  GradCase c;
  c.model_text = R"(<ir_version: 8, opset_import: ["" : 13]> g (double[2,3] A, int64[3] B) => (double[2,3] Y) {
      Y = Pow(A, B) })";
  c.inputs = {{"A", test::random_away_from(DType::Double, {2, 3}, 3, {0}, 0.2, -2, 2)},
              {"B", Tensor::from_vector<int64_t>({3}, {2, 3, -1})}};
  c.wrt = {"A"};
  EXPECT_EQ(test::check_gradients(c), "");
}

// At base 0 the exponent's gradient is 0 (log(0) is not used), as in PyTorch.
TEST(BinaryGradFamily, PowExponentGradientAtZeroBase) {
  auto g = gradients(R"(<ir_version: 8, opset_import: ["" : 17]> g (double[3] A, double[3] B) => (double[3] Y) {
      Y = Pow(A, B) })",
                     "Y", {"A", "B"},
                     {{"A", Tensor::from_vector<double>({3}, {0.0, 0.0, 2.0})},
                      {"B", Tensor::from_vector<double>({3}, {2.0, 0.0, 3.0})}});
  EXPECT_EQ(values(g[0]), (std::vector<double>{0.0, 0.0, 12.0}));
  EXPECT_EQ(values(g[1]), (std::vector<double>{0.0, 0.0, 8.0 * std::log(2.0)}));
}

TEST(BinaryGradFamily, PowFloat32) {
  GradCase c;
  c.model_text = R"(<ir_version: 8, opset_import: ["" : 17]> g (float[2,3] A, float[3] B) => (float[2,3] Y) {
      Y = Pow(A, B) })";
  c.inputs = {{"A", test::random_tensor(DType::Float, {2, 3}, 1, 0.5, 2.0)},
              {"B", test::random_tensor(DType::Float, {3}, 2, -1.5, 2.0)}};
  c.four_point = true;
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(BinaryGradFamily, PowLegacyBroadcastOpset6) {
  GradCase c;
  c.model_text = binary_model("Pow<broadcast = 1>(A, B)", {2, 3, 4}, {4}, "[2,3,4]", 6);
  c.inputs = {{"A", test::random_tensor(DType::Double, {2, 3, 4}, 1, 0.3, 2.0)},
              {"B", test::random_tensor(DType::Double, {4}, 2, -2.0, 2.5)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(BinaryGradFamily, MaxMinTwoInputs) {
  for (const char* op : {"Max", "Min"}) {
    for (const auto& s : kBroadcastShapes) {
      GradCase c;
      c.model_text = binary_model(std::string(op) + "(A, B)", s.a, s.b, s.y_text);
      c.inputs = {{"A", test::random_tensor(DType::Double, s.a, 1)}, {"B", test::random_tensor(DType::Double, s.b, 2)}};
      EXPECT_EQ(test::check_gradients(c), "") << op << shape_text(s.a) << shape_text(s.b);
    }
  }
}

// At an exact tie the central difference is 1/2 for each input: the even split.
TEST(BinaryGradFamily, MaxMinTiesSplitEvenly) {
  for (const char* op : {"Max", "Min"}) {
    GradCase c;
    c.model_text = binary_model(std::string(op) + "(A, B)", {2, 3}, {2, 3}, "[2,3]");
    Tensor a = test::random_tensor(DType::Double, {2, 3}, 1);
    Tensor b = test::random_tensor(DType::Double, {2, 3}, 2);
    b.data<double>()[1] = a.data<double>()[1];
    b.data<double>()[4] = a.data<double>()[4];
    c.inputs = {{"A", a}, {"B", b}};
    EXPECT_EQ(test::check_gradients(c), "") << op;
  }
}

TEST(BinaryGradFamily, VariadicMaxMinSumMean) {
  for (const char* op : {"Max", "Min", "Sum", "Mean"}) {
    {  // three inputs, broadcasting
      GradCase c;
      c.model_text = std::string("<ir_version: 8, opset_import: [\"\" : 17]> g (double[2,3,4] A, double[4] B, "
                                 "double[3,1] C) => (double[2,3,4] Y) { Y = ") +
                     op + "(A, B, C) }";
      c.inputs = {{"A", test::random_tensor(DType::Double, {2, 3, 4}, 1)},
                  {"B", test::random_tensor(DType::Double, {4}, 2)},
                  {"C", test::random_tensor(DType::Double, {3, 1}, 3)}};
      EXPECT_EQ(test::check_gradients(c), "") << op << " 3 inputs";
    }
    {  // one input
      GradCase c;
      c.model_text = std::string("<ir_version: 8, opset_import: [\"\" : 17]> g (double[5] A) => (double[5] Y) { Y = ") +
                     op + "(A) }";
      c.inputs = {{"A", test::random_tensor(DType::Double, {5}, 1)}};
      EXPECT_EQ(test::check_gradients(c), "") << op << " 1 input";
    }
  }
}

TEST(BinaryGradFamily, ArithmeticLegacyBroadcastOpset6) {
  for (const char* op : {"Add", "Sub", "Mul", "Div"}) {
    GradCase c;
    c.model_text = binary_model(std::string(op) + "<broadcast = 1>(A, B)", {2, 3, 4}, {4}, "[2,3,4]", 6);
    c.inputs = {{"A", test::random_tensor(DType::Double, {2, 3, 4}, 1)},
                {"B", test::random_away_from(DType::Double, {4}, 2, {0}, 0.3)}};
    EXPECT_EQ(test::check_gradients(c), "") << op;
  }
}

TEST(BinaryGradFamily, VariadicLegacyOpset6) {
  for (const char* op : {"Max", "Min", "Sum", "Mean"}) {
    // opset 6: no broadcasting (equal shapes), legacy scalar broadcast in Mean's rule
    GradCase c;
    c.model_text = std::string("<ir_version: 8, opset_import: [\"\" : 6]> g (double[2,3] A, double[2,3] B) => "
                               "(double[2,3] Y) { Y = ") +
                   op + "(A, B) }";
    c.inputs = {{"A", test::random_tensor(DType::Double, {2, 3}, 1)},
                {"B", test::random_tensor(DType::Double, {2, 3}, 2)}};
    EXPECT_EQ(test::check_gradients(c), "") << op << " opset 6";
  }
}

TEST(BinaryGradFamily, Where) {
  GradCase c;
  c.model_text = R"(<ir_version: 8, opset_import: ["" : 17]> g (bool[2,1,4] C, double[3,1] X, double[2,3,4] Y) =>
      (double[2,3,4] Z) { Z = Where(C, X, Y) })";
  c.inputs = {{"C", Tensor::from_vector<bool>({2, 1, 4}, {true, false, true, true, false, false, true, false})},
              {"X", test::random_tensor(DType::Double, {3, 1}, 1)},
              {"Y", test::random_tensor(DType::Double, {2, 3, 4}, 2)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(BinaryGradFamily, PRelu) {
  struct S {
    Shape x, slope;
    int opset;
  };
  for (const auto& s : std::vector<S>{{{2, 3, 4}, {3, 1}, 17},      // per channel
                                      {{2, 3, 4}, {4}, 17},         // trailing
                                      {{2, 3, 4}, {1}, 17},         // shared
                                      {{2, 3, 4}, {2, 3, 4}, 17},   // full
                                      {{20000}, {1}, 17},           // one long row (parallel blocks)
                                      {{2, 3, 4, 5}, {3, 1, 1}, 9}}) {
    GradCase c;
    c.model_text = "<ir_version: 8, opset_import: [\"\" : " + std::to_string(s.opset) + "]> g (double" +
                   shape_text(s.x) + " X, double" + shape_text(s.slope) + " S) => (double" + shape_text(s.x) +
                   " Y) { Y = PRelu(X, S) }";
    c.inputs = {{"X", test::random_away_from(DType::Double, s.x, 1, {0}, 0.05)},
                {"S", test::random_tensor(DType::Double, s.slope, 2, -0.5, 0.8)}};
    EXPECT_EQ(test::check_gradients(c), "") << shape_text(s.x) << shape_text(s.slope) << " opset " << s.opset;
  }
}

// fmod: values with A/B kept away from integers (where fmod jumps).
TEST(BinaryGradFamily, PReluLegacyPerChannelOpset6) {
  GradCase c;
  c.model_text = R"(<ir_version: 8, opset_import: ["" : 6]> g (double[2,3,4,5] X, double[3] S) => (double[2,3,4,5] Y) {
      Y = PRelu(X, S) })";
  c.inputs = {{"X", test::random_away_from(DType::Double, {2, 3, 4, 5}, 1, {0}, 0.05)},
              {"S", test::random_tensor(DType::Double, {3}, 2, -0.5, 0.8)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(BinaryGradFamily, ModFmod) {
  for (const auto& s : std::vector<BinaryCase>{{{2, 3}, {2, 3}, "[2,3]"}, {{2, 3}, {3}, "[2,3]"}}) {
    Tensor a = test::random_tensor(DType::Double, s.a, 1, -3, 3);
    Tensor b = test::random_away_from(DType::Double, s.b, 2, {0}, 0.5, -2, 2);
    const int64_t nb = b.numel();
    for (int64_t i = 0; i < a.numel(); ++i) {
      double& av = a.data<double>()[i];
      const double bv = b.data<double>()[i % nb];
      double q = av / bv;
      if (std::abs(q - std::round(q)) < 0.1) av = (std::round(q) + 0.5) * bv;
    }
    GradCase c;
    c.model_text = binary_model("Mod<fmod = 1>(A, B)", s.a, s.b, s.y_text);
    c.inputs = {{"A", a}, {"B", b}};
    EXPECT_EQ(test::check_gradients(c), "") << shape_text(s.a) << shape_text(s.b);
  }
}

}  // namespace
