// Gradient proofs for the loss family: SoftmaxCrossEntropyLoss, NegativeLogLikelihoodLoss.
#include <gtest/gtest.h>

#include "tests/support/gradcheck.h"
#include "tests/support/node_case.h"

using namespace onnxtrain;
using onnxtrain::test::GradCase;
using onnxtrain::test::model_header;

namespace {

Tensor labels(const Shape& shape, std::vector<int64_t> v) { return Tensor::from_vector<int64_t>(shape, v); }

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
  c.model_text = model_header(p.opset) + "g (" + inputs + ") => (" + p.dtype + p.y_text + " Y) { Y = " + p.op + p.attrs +
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
  c.model_text = model_header(13) + R"(g (double[3,4,3000] X, int64[3,3000] T, double[4] W) => (double Y) {
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
  c.model_text = model_header(13) + R"(g (double[2,3,4] X, int64[2,4] T) => (double Y) {
      L, LP = SoftmaxCrossEntropyLoss <reduction = "sum"> (X, T)
      S = ReduceSum <keepdims = 0> (LP)
      Y = Add(L, S) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {2, 3, 4}, 3)}, {"T", labels({2, 4}, {0, 1, 2, 1, 2, 2, 0, 1})}};
  c.wrt = {"X"};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(LossGradLogProb, OnlyLogProb) {
  GradCase c;
  c.model_text = model_header(13) + R"(g (float[4,5] X, int64[4] T) => (float[4,5] LP) {
      L, LP = SoftmaxCrossEntropyLoss (X, T) })";
  c.inputs = {{"X", test::random_tensor(DType::Float, {4, 5}, 3)}, {"T", labels({4}, {0, 1, 2, 4})}};
  c.wrt = {"X"};
  c.four_point = true;
  EXPECT_EQ(test::check_gradients(c), "");
}

}  // namespace
