// Gradient proofs for the softmax family: Softmax, LogSoftmax, Hardmax.
#include <gtest/gtest.h>

#include "tests/support/gradcheck.h"
#include "tests/support/node_case.h"

using namespace onnxtrain;
using onnxtrain::test::GradCase;
using onnxtrain::test::model_header;

namespace {

TEST(HardmaxGrad, Zero) {
  GradCase c;
  c.model_text = model_header(13) + R"(g (double[3,4] X) => (double[3,4] Y) {
      H = Hardmax <axis = 1> (X)
      Y = Mul(X, H) })";
  c.inputs = {{"X", test::random_tensor(DType::Double, {3, 4}, 2)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(HardmaxGrad, Opset11) {
  GradCase c;
  c.model_text = model_header(11) + R"(g (double[2,3,4] X) => (double[2,3,4] Y) {
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
  c.model_text = model_header(p.opset) + "g (" + p.dtype + p.x_text + " X) => (" + p.dtype + p.x_text + " Y) { " +
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

}  // namespace
