// Gradient proofs for the reduction family: Reduce*, CumSum, TopK, ArgMax/ArgMin,
// Softmax/LogSoftmax/Hardmax, SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss.
#include <gtest/gtest.h>

#include "tests/support/gradcheck.h"

using namespace onnxtrain;
using onnxtrain::test::GradCase;

namespace {

std::string header(int opset) { return "<ir_version: 8, opset_import: [\"\" : " + std::to_string(opset) + "]> "; }

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
  c.model_text = header(p.opset) + "g (" + p.dtype + p.x_text + " X) => (" + p.dtype + p.y_text + " Y) { Y = " + p.op +
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
  c.model_text = header(13) + R"(g (double[2,3,4] X) => (double[2,4] Y) {
      A = Constant <value = int64[1] {-2}> ()
      Y = ReduceSum <keepdims = 0> (X, A) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {2, 3, 4}, 1)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(ReduceGradAxesInput, DynamicAxes) {
  GradCase c;
  c.model_text = header(13) + R"(g (double[2,3,4] X, int64[2] A) => (double[2,1,1] Y) { Y = ReduceSum (X, A) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {2, 3, 4}, 1)}, {"A", labels({2}, {1, 2})}};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(ReduceGradAxesInput, NoAxesReducesAll) {
  GradCase c;
  c.model_text = header(13) + R"(g (double[2,3,4] X) => (double Y) { Y = ReduceSum <keepdims = 0> (X) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {2, 3, 4}, 1)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(ReduceGradAxesInput, NoopWithEmptyAxes) {
  GradCase c;
  c.model_text = header(13) +
                 R"(g (double[2,3,4] X) => (double[2,3,4] Y) { Y = ReduceSum <noop_with_empty_axes = 1> (X) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {2, 3, 4}, 1)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(ReduceGradAxesInput, NoopWithEmptyConstantAxes) {
  GradCase c;
  c.model_text = header(13) + R"(g (double[2,3] X) => (double[2,3] Y) {
      A = Constant <value = int64[0] {}> ()
      Y = ReduceSum <noop_with_empty_axes = 1> (X, A) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {2, 3}, 1)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

// Two reductions sharing X (fan-out) with different forms in one graph.
TEST(ReduceGradAxesInput, Chain) {
  GradCase c;
  c.model_text = header(17) + R"(g (double[3,4,5] X) => (double[3] Y) {
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
  c.model_text = header(14) + "g (double[3,4,2] X) => (double[3,4,2] Y) { A = Constant <value = int64 {" +
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
  c.model_text = header(11) + R"(g (float[5,3] X, int32 A) => (float[5,3] Y) { Y = CumSum <reverse = 1> (X, A) })";
  c.inputs = {{"X", test::random_tensor(DType::Float, {5, 3}, 5)}, {"A", Tensor::scalar<int32_t>(0)}};
  c.four_point = true;
  EXPECT_EQ(test::check_gradients(c), "");
}

// --- TopK, ArgMax/ArgMin, Hardmax ---------------------------------------------------------

TEST(TopKGrad, ValuesAndIndices) {
  GradCase c;
  c.model_text = header(17) + R"(g (double[3,6,2] X) => (double[3,4,2] V, int64[3,4,2] I) {
      K = Constant <value = int64[1] {4}> ()
      V, I = TopK <axis = 1> (X, K) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {3, 6, 2}, 9)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(TopKGrad, SmallestLastAxisDynamicK) {
  GradCase c;
  c.model_text = header(11) + R"(g (double[4,5] X, int64[1] K) => (double[4,2] V, int64[4,2] I) {
      V, I = TopK <largest = 0> (X, K) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {4, 5}, 9)}, {"K", labels({1}, {2})}};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(TopKGrad, AttributeKOpset9) {
  GradCase c;
  c.model_text = header(9) + R"(g (double[2,5,3] X) => (double[2,5,1] V, int64[2,5,1] I) {
      V, I = TopK <k = 1> (X) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {2, 5, 3}, 9)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(TopKGrad, KEqualsSizeFloat) {
  GradCase c;
  c.model_text = header(17) + R"(g (float[3,4] X) => (float[3,4] V, int64[3,4] I) {
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
  c.model_text = header(13) + R"(g (double[3,4] X) => (double[3,4] Y) {
      A = ArgMax <axis = 1> (X)
      B = ArgMin <axis = 1> (X)
      S = Add(A, B)
      F = Cast <to = 11> (S)
      Y = Mul(X, F) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {3, 4}, 2)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(HardmaxGrad, Zero) {
  GradCase c;
  c.model_text = header(13) + R"(g (double[3,4] X) => (double[3,4] Y) {
      H = Hardmax <axis = 1> (X)
      Y = Mul(X, H) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {3, 4}, 2)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(HardmaxGrad, Opset11) {
  GradCase c;
  c.model_text = header(11) + R"(g (double[2,3,4] X) => (double[2,3,4] Y) {
      H = Hardmax (X)
      Y = Add(X, H) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {2, 3, 4}, 2)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

// --- Softmax, LogSoftmax -------------------------------------------------------------------

struct SoftmaxCase {
  std::string op;
  int opset;
  std::string attrs;
  Shape x;
  std::string x_text;
  std::string dtype;
};
void PrintTo(const SoftmaxCase& c, std::ostream* os) { *os << c.op << c.opset << c.attrs << c.x_text << c.dtype; }

class SoftmaxGrad : public ::testing::TestWithParam<SoftmaxCase> {};

TEST_P(SoftmaxGrad, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  GradCase c;
  const DType dt = p.dtype == "double" ? DType::Double : DType::Float;
  const int64_t numel = shape_numel(p.x);
  // Large LogSoftmax outputs are about -log(row size) each: shift them towards 0 so the
  // checked sum(Y * R) stays small and its rounding does not swamp the differences.
  const bool shift = p.op == "LogSoftmax" && numel > 1000;
  c.model_text = header(p.opset) + "g (" + p.dtype + p.x_text + " X) => (" + p.dtype + p.x_text + " Y) { " +
                 (shift ? "S = " : "Y = ") + p.op + p.attrs + "(X) " +
                 (shift ? "C = Constant <value = " + p.dtype + " {6.3}> () Y = Add(S, C) }" : "}");
  if (numel > 1000 && dt == DType::Double) {
    c.eps = 1e-4;
    c.rtol = 1e-4;
  }
  c.inputs = {{"X", test::random_tensor(dt, p.x, 4, -2.0, 2.0)}};
  if (dt == DType::Float) {
    c.four_point = true;
    c.eps = numel > 1000 ? 5e-2 : 1e-2;  // larger steps average out float32 rounding of big sums
    c.rtol = 2e-2;
    c.atol = 2e-3;
  }
  EXPECT_EQ(test::check_gradients(c), "");
}

std::vector<SoftmaxCase> softmax_cases() {
  std::vector<SoftmaxCase> out;
  for (std::string op : {"Softmax", "LogSoftmax"})
    for (std::string dt : {"double", "float"}) {
      // Opset 13: one axis.
      out.push_back({op, 13, "", {2, 3, 4}, "[2,3,4]", dt});
      out.push_back({op, 13, "<axis = 1>", {2, 3, 4}, "[2,3,4]", dt});
      out.push_back({op, 17, "<axis = 0>", {2, 3, 4}, "[2,3,4]", dt});
      out.push_back({op, 13, "<axis = -2>", {3, 5, 2, 2}, "[3,5,2,2]", dt});
      out.push_back({op, 13, "", {7}, "[7]", dt});
      // Before opset 13: coerced to 2-D at axis (default 1).
      out.push_back({op, 11, "", {2, 3, 4}, "[2,3,4]", dt});
      out.push_back({op, 11, "<axis = 0>", {2, 3, 4}, "[2,3,4]", dt});
      out.push_back({op, 8, "<axis = 2>", {2, 3, 4}, "[2,3,4]", dt});
      out.push_back({op, 11, "<axis = -1>", {2, 3, 4}, "[2,3,4]", dt});
      out.push_back({op, 11, "<axis = 3>", {2, 3, 4}, "[2,3,4]", dt});  // axis == rank: each element alone
    }
  // Larger rows (parallel loops and oneDNN's vector paths).
  out.push_back({"Softmax", 13, "", {64, 300}, "[64,300]", "double"});
  out.push_back({"LogSoftmax", 13, "", {64, 300}, "[64,300]", "double"});
  out.push_back({"Softmax", 13, "", {64, 300}, "[64,300]", "float"});
  out.push_back({"LogSoftmax", 13, "", {64, 300}, "[64,300]", "float"});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Ops, SoftmaxGrad, ::testing::ValuesIn(softmax_cases()));

// --- SoftmaxCrossEntropyLoss, NegativeLogLikelihoodLoss --------------------------------------

struct LossCase {
  std::string op;
  std::string attrs;
  Shape x;
  std::string x_text, t_text, y_text;
  std::vector<int64_t> targets;
  bool weight = false;
  std::string dtype = "double";
  int opset = 13;
  std::string label_type = "int64";
};
void PrintTo(const LossCase& c, std::ostream* os) {
  *os << c.op << c.attrs << c.x_text << (c.weight ? "w" : "") << c.dtype << c.opset << c.label_type;
}

class LossGrad : public ::testing::TestWithParam<LossCase> {};

TEST_P(LossGrad, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  const DType dt = p.dtype == "double" ? DType::Double : DType::Float;
  const int64_t c_dim = p.x[1];
  GradCase c;
  std::string inputs = p.dtype + p.x_text + " X, " + p.label_type + p.t_text + " T";
  if (p.weight) inputs += ", " + p.dtype + "[" + std::to_string(c_dim) + "] W";
  c.model_text = header(p.opset) + "g (" + inputs + ") => (" + p.dtype + p.y_text + " Y) { Y = " + p.op + p.attrs +
                 "(X, T" + (p.weight ? ", W" : "") + ") }";
  Shape t_shape{p.x[0]};
  t_shape.insert(t_shape.end(), p.x.begin() + 2, p.x.end());
  Tensor t = labels(t_shape, p.targets);
  if (p.label_type == "int32") {
    Tensor t32(DType::Int32, t_shape);
    for (int64_t i = 0; i < t.numel(); ++i) t32.data<int32_t>()[i] = static_cast<int32_t>(t.data<int64_t>()[i]);
    t = t32;
  }
  c.inputs = {{"X", test::random_tensor(dt, p.x, 11, -2.0, 2.0)}, {"T", t}};
  if (p.weight) c.inputs["W"] = test::random_tensor(dt, {c_dim}, 12, 0.2, 2.0);
  c.wrt = {"X"};
  if (dt == DType::Float) c.four_point = true;
  EXPECT_EQ(test::check_gradients(c), "");
}

std::vector<LossCase> loss_cases() {
  std::vector<LossCase> out;
  for (std::string op : {"SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss"}) {
    for (std::string red : {"none", "sum", "mean"}) {
      const std::string r = "reduction = \"" + red + "\"";
      const bool none = red == "none";
      for (bool w : {false, true}) {
        // [N, C]
        out.push_back({op, "<" + r + ">", {4, 5}, "[4,5]", "[4]", none ? "[4]" : "", {0, 3, 4, 3}, w});
        // [N, C, d1]
        out.push_back({op, "<" + r + ">", {2, 3, 4}, "[2,3,4]", "[2,4]", none ? "[2,4]" : "",
                       {0, 1, 2, 1, 2, 2, 0, 1}, w});
        // [N, C, d1, d2] with ignore_index inside [0, C)
        out.push_back({op, "<" + r + ", ignore_index = 1>", {2, 3, 2, 2}, "[2,3,2,2]", "[2,2,2]",
                       none ? "[2,2,2]" : "", {0, 1, 2, 1, 2, 2, 0, 1}, w});
        // ignore_index outside [0, C)
        out.push_back({op, "<" + r + ", ignore_index = -100>", {3, 4}, "[3,4]", "[3]", none ? "[3]" : "",
                       {2, -100, 3}, w});
      }
    }
    // float32 (the SCE forward runs oneDNN's softmax_v2), opset 12, int32 labels.
    out.push_back({op, "", {4, 5}, "[4,5]", "[4]", "", {0, 3, 4, 3}, true, "float"});
    out.push_back({op, "<reduction = \"none\">", {2, 3, 4}, "[2,3,4]", "[2,4]", "[2,4]", {0, 1, 2, 1, 2, 2, 0, 1}, false,
                   "float"});
    out.push_back({op, "<reduction = \"sum\">", {4, 5}, "[4,5]", "[4]", "", {0, 3, 4, 3}, true, "double", 12});
    out.push_back({op, "", {4, 5}, "[4,5]", "[4]", "", {0, 3, 4, 3}, false, "double", 13, "int32"});
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Ops, LossGrad, ::testing::ValuesIn(loss_cases()));

// A larger batch: the parallel path, and every D chunk.
TEST(LossGradLarge, SoftmaxCrossEntropyMeanNd) {
  const int64_t n = 3, c_dim = 4, d = 3000;
  std::vector<int64_t> t(static_cast<size_t>(n * d));
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<int64_t>((i * 7) % 5) - 1;  // -1 is ignored
  GradCase c;
  c.model_text = header(13) + R"(g (double[3,4,3000] X, int64[3,3000] T, double[4] W) => (double Y) {
      Y = SoftmaxCrossEntropyLoss <ignore_index = -1> (X, T, W) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {n, c_dim, d}, 3, -2.0, 2.0)},
              {"T", labels({n, d}, t)},
              {"W", test::random_tensor(DType::Double, {c_dim}, 4, 0.5, 1.5)}};
  c.wrt = {"X"};
  c.max_elements = 64;
  EXPECT_EQ(test::check_gradients(c), "");
}

// log_prob used downstream: the gradient through it (LogSoftmaxGrad over C) adds to the loss's.
TEST(LossGradLogProb, BothOutputs) {
  GradCase c;
  c.model_text = header(13) + R"(g (double[2,3,4] X, int64[2,4] T) => (double Y) {
      L, LP = SoftmaxCrossEntropyLoss <reduction = "sum"> (X, T)
      S = ReduceSum <keepdims = 0> (LP)
      Y = Add(L, S) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {2, 3, 4}, 3)}, {"T", labels({2, 4}, {0, 1, 2, 1, 2, 2, 0, 1})}};
  c.wrt = {"X"};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(LossGradLogProb, OnlyLogProb) {
  GradCase c;
  c.model_text = header(13) + R"(g (float[4,5] X, int64[4] T) => (float[4,5] LP) {
      L, LP = SoftmaxCrossEntropyLoss (X, T) })";
  c.inputs = {{"X", test::random_tensor(DType::Float, {4, 5}, 3)}, {"T", labels({4}, {0, 1, 2, 4})}};
  c.wrt = {"X"};
  c.four_point = true;
  EXPECT_EQ(test::check_gradients(c), "");
}

}  // namespace
