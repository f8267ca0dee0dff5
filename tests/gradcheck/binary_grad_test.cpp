// Gradient checks for the binary family (binary.cpp, variadic_where_prelu.cpp): arithmetic
// with broadcasting, Pow, Mod, Max/Min/Sum/Mean, Where, PRelu. The legacy-form tests (opset 6
// broadcasting) check the rules' broadcast=1 handling.
#include <gtest/gtest.h>

#include <cmath>

#include "tests/support/node_case.h"
#include "tests/support/unary_grad.h"

using namespace onnxtrain;
using onnxtrain::test::GradCase;

namespace {

struct BinaryCase {
  std::string op;
  Shape a, b;
  std::string a_text, b_text, y_text;
};

void PrintTo(const BinaryCase& c, std::ostream* os) { *os << c.op << c.a_text << c.b_text; }

class BinaryGrad : public ::testing::TestWithParam<BinaryCase> {};

TEST_P(BinaryGrad, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  GradCase c;
  c.model_text =
      test::NodeCase{p.op, "", {"double" + p.a_text + " A", "double" + p.b_text + " B"}, {"double" + p.y_text + " Y"}}.text();
  // Divisors kept away from zero.
  c.inputs = {{"A", test::random_tensor(DType::Double, p.a, 1)},
              {"B", test::random_away_from(DType::Double, p.b, 2, {0.0}, 0.3)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

std::vector<BinaryCase> cases() {
  std::vector<BinaryCase> out;
  for (const char* op : {"Add", "Sub", "Mul", "Div"}) {
    out.push_back({op, {2, 3}, {2, 3}, "[2,3]", "[2,3]", "[2,3]"});
    out.push_back({op, {2, 3, 4}, {4}, "[2,3,4]", "[4]", "[2,3,4]"});           // trailing broadcast
    out.push_back({op, {2, 1, 4}, {3, 1}, "[2,1,4]", "[3,1]", "[2,3,4]"});      // both broadcast
    out.push_back({op, {1}, {2, 3}, "[1]", "[2,3]", "[2,3]"});                  // scalar-like left
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Ops, BinaryGrad, ::testing::ValuesIn(cases()));

TEST(BinaryGrad, FanOutIsSummed) {
  // A feeds two nodes: its gradient is the sum of both contributions.
  GradCase c;
  c.model_text = R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (double[3] A, double[3] B) => (double[3] Y) { C = Add(A, B) Y = Mul(C, A) })";
  c.inputs = {{"A", test::random_tensor(DType::Double, {3}, 3)}, {"B", test::random_tensor(DType::Double, {3}, 4)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

}  // namespace

// Moved from elementwise_grad_test.cpp, with its own BinaryCase.
namespace family {

using namespace onnxtrain::test::unary_grad;

// ---- binary and variadic ops ------------------------------------------------------------

struct BinaryCase {
  Shape a, b;
  std::string y_text;
};

std::string binary_model(const std::string& node, const Shape& a, const Shape& b, const std::string& y, int opset = 17) {
  return test::graph_model("Y = " + node, "double" + shape_text(a) + " A, double" + shape_text(b) + " B",
                           "double" + y + " Y", opset);
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

}  // namespace family
