// Behaviour of the activation family (activation.cpp) that the ONNX backend data does not
// cover: exact results at special points and on integers.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/node_case.h"

using namespace onnxtrain;

namespace {

// Runs a one-graph model text and returns output Y.
Tensor run(const std::string& graph, const std::map<std::string, Tensor>& feeds, int opset = 17) {
  return test::run_model(test::model_header(opset) + graph, feeds)["Y"];
}

}  // namespace

TEST(Elementwise, LogOfOneIsExactlyZero) {
  Tensor x = Tensor::from_vector<float>({2}, {1.f, std::exp(1.f)});
  auto y = run("g (float[2] X) => (float[2] Y) { Y = Log(X) }", {{"X", x}}).to_vector<float>();
  EXPECT_EQ(y[0], 0.f);
  EXPECT_NEAR(y[1], 1.f, 1e-6);
}

TEST(Elementwise, IntegerAbsNegReluAreExact) {
  Tensor x = Tensor::from_vector<int64_t>({3}, {-9007199254740993LL, std::numeric_limits<int64_t>::min(), 5});
  EXPECT_EQ(run("g (int64[3] X) => (int64[3] Y) { Y = Abs(X) }", {{"X", x}}).to_vector<int64_t>(),
            (std::vector<int64_t>{9007199254740993LL, std::numeric_limits<int64_t>::min(), 5}));
  EXPECT_EQ(run("g (int64[3] X) => (int64[3] Y) { Y = Neg(X) }", {{"X", x}}).to_vector<int64_t>(),
            (std::vector<int64_t>{9007199254740993LL, std::numeric_limits<int64_t>::min(), -5}));
  EXPECT_EQ(run("g (int64[3] X) => (int64[3] Y) { Y = Relu(X) }", {{"X", x}}).to_vector<int64_t>(),
            (std::vector<int64_t>{0, 0, 5}));
}
