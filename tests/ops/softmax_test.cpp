// Softmax, LogSoftmax and Hardmax (softmax.cpp): behaviour the ONNX backend data does not
// cover (opset 11 coercion, oneDNN vs own-loop agreement).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/node_case.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;
using test::as_float;
using test::graph_model;
using test::random_values;
using test::run_model;

// Opset 11 flattens everything from `axis` on; opset 13 normalises one axis. The float
// (oneDNN) and double (own loop) paths must agree.
TEST(Softmax, CoercionBeforeOpset13AndFloatMatchesDouble) {
  const Shape shape = {2, 3, 4};
  const auto x = random_values(24, -3, 3, 3);
  for (int opset : {11, 13}) {
    for (const std::string op : {"Softmax", "LogSoftmax", "Hardmax"}) {
      const auto f = run_model(graph_model("Y = " + op + " <axis = 1> (X)", "float[2, 3, 4] X", "float[2, 3, 4] Y", opset), {{"X", as_float(shape, x)}});
      const auto d = run_model(graph_model("Y = " + op + " <axis = 1> (X)", "double[2, 3, 4] X", "double[2, 3, 4] Y", opset),
                         {{"X", Tensor::from_vector<double>(shape, x)}});
      EXPECT_EQ(test::compare_tensors(f.at("Y"), as_float(shape, d.at("Y").as_double()), 1e-5, 1e-6), "") << op << opset;
      if (op != "Softmax") continue;
      // Sums to one over the normalised group: 12 values (opset 11) or 3 strided values (13).
      const auto y = d.at("Y").as_double();
      double group = 0;
      if (opset == 11) for (int i = 0; i < 12; ++i) group += y[i];
      else for (int i = 0; i < 3; ++i) group += y[i * 4];
      EXPECT_NEAR(group, 1.0, 1e-12) << opset;
    }
  }
}

// float32 LogSoftmax within a few ulp of the exact value of its float input (oneDNN 2.6's
// softmax_log was 3e-6 off, 60 ulp, which showed as loss and gradient errors several times
// PyTorch float32's in the model family parity tests).
TEST(Softmax, Float32LogSoftmaxIsAccurate) {
  const Shape shape = {64, 10};
  const auto x = random_values(640, -8, 8, 11);
  const Tensor xf = as_float(shape, x);
  const auto y = run_model(graph_model("Y = LogSoftmax <axis = 1> (X)", "float[64, 10] X", "float[64, 10] Y", 13), {{"X", xf}}).at("Y");
  double worst_ulps = 0;
  for (int64_t r = 0; r < 64; ++r) {
    double best = -1e300, sum = 0;
    for (int64_t c = 0; c < 10; ++c) best = std::max(best, static_cast<double>(xf.data<float>()[r * 10 + c]));
    for (int64_t c = 0; c < 10; ++c) sum += std::exp(xf.data<float>()[r * 10 + c] - best);
    for (int64_t c = 0; c < 10; ++c) {
      const double exact = xf.data<float>()[r * 10 + c] - best - std::log(sum);
      const double ulp = std::nextafter(static_cast<float>(std::abs(exact)), 1e30f) - static_cast<float>(std::abs(exact));
      worst_ulps = std::max(worst_ulps, std::abs(y.data<float>()[r * 10 + c] - exact) / ulp);
    }
  }
  EXPECT_LE(worst_ulps, 2.0);
}
