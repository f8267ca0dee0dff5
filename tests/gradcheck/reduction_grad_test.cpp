// Gradient proofs for the reduction family: Reduce*, CumSum, TopK, ArgMax/ArgMin.
#include <gtest/gtest.h>

#include "tests/support/gradcheck.h"
#include "tests/support/node_case.h"

using namespace onnxtrain;
using onnxtrain::test::GradCase;
using onnxtrain::test::model_header;

namespace {

Tensor labels(const Shape& shape, std::vector<int64_t> v) { return Tensor::from_vector<int64_t>(shape, v); }

// --- Reduce* ------------------------------------------------------------------------------

struct ReduceCase {
  std::string op;
  int opset;
  Shape x;
  std::string x_text, y_text;
  std::string attrs;  // e.g. "<axes = [1], keepdims = 0>"
  std::string kind = "random";  // random | positive | away_from_zero | ties | one_zero | two_zeros
  std::string dtype = "double";
};

void PrintTo(const ReduceCase& c, std::ostream* os) { *os << c.op << c.opset << c.x_text << c.attrs << c.kind << c.dtype; }

Tensor reduce_input(const ReduceCase& p) {
  const DType dt = p.dtype == "double" ? DType::Double : DType::Float;
  if (p.kind == "positive") return test::random_tensor(dt, p.x, 7, 0.5, 1.5);
  if (p.kind == "away_from_zero") return test::random_away_from(dt, p.x, 7, {0.0}, 0.3);
  if (p.kind == "near_one") return test::random_tensor(dt, p.x, 7, 0.9, 1.1);
  if (p.kind == "spread") {  // distinct values at least 2/n apart (for float32 extrema)
    Tensor t(dt, p.x);
    const int64_t n = t.numel();
    for (int64_t i = 0; i < n; ++i) {
      const double v = static_cast<double>((i * 7919) % n) / static_cast<double>(n) * 2.0 - 1.0 + 0.5 / n;
      if (dt == DType::Double) t.data<double>()[i] = v;
      else t.data<float>()[i] = static_cast<float>(v);
    }
    return t;
  }
  Tensor t = test::random_away_from(dt, p.x, 7, {0.0}, 0.3);
  auto set = [&](int64_t i, double v) {
    if (dt == DType::Double) t.data<double>()[i] = v;
    else t.data<float>()[i] = static_cast<float>(v);
  };
  auto get = [&](int64_t i) { return dt == DType::Double ? t.data<double>()[i] : t.data<float>()[i]; };
  if (p.kind == "ties") {  // exact two-way ties of every element with its neighbour in the last dim
    for (int64_t i = 1; i < t.numel(); i += 2) set(i, get(i - 1));
  } else if (p.kind == "one_zero") {
    set(1, 0.0);
  } else if (p.kind == "two_zeros") {
    set(0, 0.0);
    set(1, 0.0);
  }
  return t;
}

class ReduceGrad : public ::testing::TestWithParam<ReduceCase> {};

TEST_P(ReduceGrad, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  GradCase c;
  c.model_text = model_header(p.opset) + "g (" + p.dtype + p.x_text + " X) => (" + p.dtype + p.y_text + " Y) { Y = " + p.op +
                 p.attrs + "(X) }";
  c.inputs = {{"X", reduce_input(p)}};
  if (p.dtype == "float") c.four_point = true;
  if (c.inputs["X"].numel() > 10000) {  // long sums: rounding noise of the forward needs a larger step
    c.eps = 1e-4;
    c.rtol = 1e-4;
  }
  EXPECT_EQ(test::check_gradients(c), "");
}

std::vector<ReduceCase> reduce_cases() {
  std::vector<ReduceCase> out;
  const char* ops[] = {"ReduceSum",  "ReduceMean", "ReduceSumSquare", "ReduceL1",  "ReduceL2",
                       "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMin", "ReduceProd"};
  for (std::string op : ops) {
    std::string kind = op == "ReduceLogSum" ? "positive" : (op == "ReduceL1" || op == "ReduceProd") ? "away_from_zero"
                                                                                                     : "random";
    // ReduceSum takes axes as an attribute before opset 13.
    const int opset = op == "ReduceSum" ? 11 : 17;
    out.push_back({op, opset, {2, 3, 4}, "[2,3,4]", "[2,1,4]", "<axes = [1]>", kind});
    out.push_back({op, opset, {2, 3, 4}, "[2,3,4]", "[3]", "<axes = [0, 2], keepdims = 0>", kind});
    out.push_back({op, opset, {2, 3, 4}, "[2,3,4]", "[2,3,1]", "<axes = [-1]>", kind});
    out.push_back({op, opset, {2, 3, 4}, "[2,3,4]", "[3,4]", "<axes = [0], keepdims = 0>", kind});
    out.push_back({op, opset, {2, 3, 4}, "[2,3,4]", "", "<keepdims = 0>", kind});          // all axes
    out.push_back({op, opset, {2, 3, 4}, "[2,3,4]", "[1,1,1]", "", kind});                  // all, keepdims
    out.push_back({op, opset, {3, 1, 4, 2}, "[3,1,4,2]", "[1,1,4,1]", "<axes = [0, 1, 3]>", kind});
    out.push_back({op, opset, {5}, "[5]", "[1]", "<axes = [0]>", kind});
    const bool extremum = op == "ReduceMax" || op == "ReduceMin";
    out.push_back({op, opset, {2, 3, 4}, "[2,3,4]", "[2,1,4]", "<axes = [1]>", extremum ? "spread" : kind, "float"});
    // A large reduction (threads split the positions) and many rows.
    const std::string big = op == "ReduceProd" ? "near_one" : kind;
    out.push_back({op, opset, {2, 40000}, "[2,40000]", "[2]", "<axes = [1], keepdims = 0>", big});
    out.push_back({op, opset, {40000, 3}, "[40000,3]", "[40000]", "<axes = [1], keepdims = 0>", kind});
  }
  // Exact two-way ties: central differences see the even split (1/2 each).
  for (std::string op : {"ReduceMax", "ReduceMin"}) {
    out.push_back({op, 17, {3, 4}, "[3,4]", "[3,1]", "<axes = [1]>", "random"});
    out.push_back({op, 17, {3, 2}, "[3,2]", "[3]", "<axes = [1], keepdims = 0>", "ties"});
    out.push_back({op, 17, {2, 3, 2}, "[2,3,2]", "[2,3,1]", "<axes = [2]>", "ties"});
  }
  // Products with zeros: the product of the other elements, not Y / X.
  out.push_back({"ReduceProd", 17, {2, 3}, "[2,3]", "[2]", "<axes = [1], keepdims = 0>", "one_zero"});
  out.push_back({"ReduceProd", 17, {2, 3}, "[2,3]", "[2]", "<axes = [1], keepdims = 0>", "two_zeros"});
  out.push_back({"ReduceProd", 17, {2, 3}, "[2,3]", "[3]", "<axes = [0], keepdims = 0>", "two_zeros"});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Ops, ReduceGrad, ::testing::ValuesIn(reduce_cases()));

// ReduceSum from opset 13: axes as an input (constant, dynamic, absent) and noop_with_empty_axes.
TEST(ReduceGradAxesInput, ConstantAxes) {
  GradCase c;
  c.model_text = model_header(13) + R"(g (double[2,3,4] X) => (double[2,4] Y) {
      A = Constant <value = int64[1] {-2}> ()
      Y = ReduceSum <keepdims = 0> (X, A) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {2, 3, 4}, 1)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(ReduceGradAxesInput, DynamicAxes) {
  GradCase c;
  c.model_text = model_header(13) + R"(g (double[2,3,4] X, int64[2] A) => (double[2,1,1] Y) { Y = ReduceSum (X, A) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {2, 3, 4}, 1)}, {"A", labels({2}, {1, 2})}};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(ReduceGradAxesInput, NoAxesReducesAll) {
  GradCase c;
  c.model_text = model_header(13) + R"(g (double[2,3,4] X) => (double Y) { Y = ReduceSum <keepdims = 0> (X) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {2, 3, 4}, 1)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(ReduceGradAxesInput, NoopWithEmptyAxes) {
  GradCase c;
  c.model_text = model_header(13) +
                 R"(g (double[2,3,4] X) => (double[2,3,4] Y) { Y = ReduceSum <noop_with_empty_axes = 1> (X) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {2, 3, 4}, 1)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(ReduceGradAxesInput, NoopWithEmptyConstantAxes) {
  GradCase c;
  c.model_text = model_header(13) + R"(g (double[2,3] X) => (double[2,3] Y) {
      A = Constant <value = int64[0] {}> ()
      Y = ReduceSum <noop_with_empty_axes = 1> (X, A) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {2, 3}, 1)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

// Two reductions sharing X (fan-out) with different forms in one graph.
TEST(ReduceGradAxesInput, Chain) {
  GradCase c;
  c.model_text = model_header(17) + R"(g (double[3,4,5] X) => (double[3] Y) {
      M = ReduceMax <axes = [2], keepdims = 0> (X)
      L = ReduceLogSumExp <axes = [1], keepdims = 0> (M)
      S = ReduceMean <axes = [1, 2], keepdims = 0> (X)
      Y = Add(L, S) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {3, 4, 5}, 3)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

// --- CumSum -------------------------------------------------------------------------------

struct CumSumCase {
  int64_t axis;
  int exclusive, reverse;
};
void PrintTo(const CumSumCase& c, std::ostream* os) { *os << "axis" << c.axis << "ex" << c.exclusive << "rev" << c.reverse; }

class CumSumGrad : public ::testing::TestWithParam<CumSumCase> {};

TEST_P(CumSumGrad, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  GradCase c;
  c.model_text = model_header(14) + "g (double[3,4,2] X) => (double[3,4,2] Y) { A = Constant <value = int64 {" +
                 std::to_string(p.axis) + "}> () Y = CumSum <exclusive = " + std::to_string(p.exclusive) +
                 ", reverse = " + std::to_string(p.reverse) + "> (X, A) }";
  c.inputs = {{"X", test::random_tensor(DType::Double, {3, 4, 2}, 5)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

std::vector<CumSumCase> cumsum_cases() {
  std::vector<CumSumCase> out;
  for (int64_t axis : {0, 1, -1})
    for (int ex : {0, 1})
      for (int rev : {0, 1}) out.push_back({axis, ex, rev});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Flags, CumSumGrad, ::testing::ValuesIn(cumsum_cases()));

TEST(CumSumGradInput, DynamicAxisFloat) {
  GradCase c;
  c.model_text = model_header(11) + R"(g (float[5,3] X, int32 A) => (float[5,3] Y) { Y = CumSum <reverse = 1> (X, A) })";
  c.inputs = {{"X", test::random_tensor(DType::Float, {5, 3}, 5)}, {"A", Tensor::scalar<int32_t>(0)}};
  c.four_point = true;
  EXPECT_EQ(test::check_gradients(c), "");
}

// --- TopK, ArgMax/ArgMin, Hardmax ---------------------------------------------------------

TEST(TopKGrad, ValuesAndIndices) {
  GradCase c;
  c.model_text = model_header(17) + R"(g (double[3,6,2] X) => (double[3,4,2] V, int64[3,4,2] I) {
      K = Constant <value = int64[1] {4}> ()
      V, I = TopK <axis = 1> (X, K) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {3, 6, 2}, 9)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(TopKGrad, SmallestLastAxisDynamicK) {
  GradCase c;
  c.model_text = model_header(11) + R"(g (double[4,5] X, int64[1] K) => (double[4,2] V, int64[4,2] I) {
      V, I = TopK <largest = 0> (X, K) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {4, 5}, 9)}, {"K", labels({1}, {2})}};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(TopKGrad, AttributeKOpset9) {
  GradCase c;
  c.model_text = model_header(9) + R"(g (double[2,5,3] X) => (double[2,5,1] V, int64[2,5,1] I) {
      V, I = TopK <k = 1> (X) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {2, 5, 3}, 9)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(TopKGrad, KEqualsSizeFloat) {
  GradCase c;
  c.model_text = model_header(17) + R"(g (float[3,4] X) => (float[3,4] V, int64[3,4] I) {
      K = Constant <value = int64[1] {4}> ()
      V, I = TopK (X, K) })";
  c.inputs = {{"X", test::random_tensor(DType::Float, {3, 4}, 9)}};
  c.four_point = true;
  c.eps = 1e-3;
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(ArgReduceGrad, NotDifferentiable) {
  // ArgMax/ArgMin need no rule: the path through them carries no gradient.
  GradCase c;
  c.model_text = model_header(13) + R"(g (double[3,4] X) => (double[3,4] Y) {
      A = ArgMax <axis = 1> (X)
      B = ArgMin <axis = 1> (X)
      S = Add(A, B)
      F = Cast <to = 11> (S)
      Y = Mul(X, F) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {3, 4}, 2)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

}  // namespace
