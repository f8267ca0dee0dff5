// Softmax / LogSoftmax (oneDNN softmax_v2 forward and the SoftmaxGrad / LogSoftmaxGrad
// backward) against the naive reference over every axis of random odd-shaped inputs.
#include <gtest/gtest.h>

#include "ops/reference/softmax.h"
#include "tests/reference/reference_support.h"

using namespace onnxtrain;
using namespace onnxtrain::test;

namespace {

void check(bool log, std::mt19937& rng) {
  const int64_t rank = pick(rng, {1, 2, 3, 4});
  Dims x;
  for (int64_t i = 0; i < rank; ++i) x.push_back(pick(rng, {1, 3, 5, 7, 13, 33}));
  const int64_t axis = std::uniform_int_distribution<int64_t>(-rank, rank - 1)(rng);
  const char* op = log ? "LogSoftmax" : "Softmax";
  const std::string attrs = "axis = " + std::to_string(axis);
  SCOPED_TRACE(std::string(op) + " X " + ints(x) + " <" + attrs + ">");
  const Array xa = random_array(x, rng, -4.0, 4.0);
  const Array y = reference::softmax(xa, axis, log);
  const int64_t len = x[axis < 0 ? axis + rank : axis];
  // One normaliser sums `len` exponentials; log-probabilities reach ~ -(8 + log len).
  const double tol = accumulation_tolerance(len, log ? 16.0 : 1.0);
  EXPECT_EQ(compare(run_node(op, attrs, {{"X", xa}}, {{"Y", x.size()}})["Y"], y, tol), "") << "forward";
  // The backward reads the forward's output, given here as float exactly like the kernel's.
  Array yf = y;
  for (double& v : yf.data) v = static_cast<float>(v);
  const Array dy = random_array(x, rng);
  const Tensor dx = run_node(std::string("ai.onnxtrain.") + op + "Grad", attrs, {{"dY", dy}, {"Y", yf}}, {{"dX", x.size()}})["dX"];
  EXPECT_EQ(compare(dx, reference::softmax_backward(dy, yf, axis, log), accumulation_tolerance(len)), "") << "dX";
}

}  // namespace

TEST(SoftmaxReference, SoftmaxForwardAndGradMatchOnRandomOddShapes) {
  std::mt19937 rng(5);
  for (int i = 0; i < 40; ++i) check(false, rng);
}

TEST(SoftmaxReference, LogSoftmaxForwardAndGradMatchOnRandomOddShapes) {
  std::mt19937 rng(6);
  for (int i = 0; i < 40; ++i) check(true, rng);
}
