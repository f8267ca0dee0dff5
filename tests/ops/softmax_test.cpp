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
