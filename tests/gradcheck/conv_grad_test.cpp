// Gradient checks for Conv and ConvTranspose (conv.cpp). float64 cases exercise the own
// backward loops with tight tolerances; float32 cases the oneDNN backward primitives
// (four-point differences, eps 1e-2).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "onnxtrain/errors.h"

#include "tests/support/node_grad.h"

using namespace onnxtrain;
using namespace onnxtrain::test::node_grad;

namespace {

// ---------------------------------------------------------------------------------------------
// Conv / ConvTranspose

struct ConvCase {
  std::string name, attrs;
  Shape x, w;
  bool bias;
};

std::vector<ConvCase> conv_cases() {
  return {
      {"2d_bias_pad", "<pads = [1,1,1,1]>", {2, 3, 5, 5}, {4, 3, 3, 3}, true},
      {"groups", "<group = 2, pads = [1,0,1,0]>", {1, 4, 6, 5}, {6, 2, 3, 3}, false},
      {"depthwise", "<group = 3, pads = [1,1,1,1]>", {2, 3, 5, 5}, {3, 1, 3, 3}, true},
      {"depthwise_multiplier", "<group = 3, strides = [2,2]>", {1, 3, 7, 7}, {6, 1, 3, 3}, true},
      {"stride2_dilation2", "<strides = [2,2], dilations = [2,2], pads = [2,1,1,2]>", {1, 2, 9, 8}, {3, 2, 3, 3},
       true},
      {"asymmetric_pads", "<pads = [0,2,1,0]>", {2, 2, 5, 6}, {3, 2, 2, 3}, true},
      {"same_upper_stride2", "<auto_pad = \"SAME_UPPER\", strides = [2,2]>", {1, 2, 6, 7}, {2, 2, 3, 2}, true},
      {"same_lower", "<auto_pad = \"SAME_LOWER\">", {1, 2, 5, 5}, {2, 2, 2, 2}, false},
      {"valid", "<auto_pad = \"VALID\", strides = [1,2]>", {1, 2, 5, 6}, {2, 2, 3, 3}, true},
      {"1d", "<strides = [2], pads = [1,2]>", {2, 3, 10}, {4, 3, 3}, true},
      {"1d_dilated_group", "<dilations = [2], group = 2>", {1, 4, 9}, {2, 2, 3}, true},
      {"3d", "<pads = [1,0,1,0,1,0], strides = [1,2,1]>", {1, 2, 4, 5, 4}, {3, 2, 2, 3, 2}, true},
      {"1x1", "", {2, 8, 3, 3}, {4, 8, 1, 1}, true},
  };
}

TEST(DenseGrad, Conv) {
  for (DType dt : kBoth)
    for (const auto& c : conv_cases()) {
      SCOPED_TRACE(type_name(dt) + " " + c.name);
      std::vector<In> ins{{"X", c.x}, {"W", c.w}};
      if (c.bias) ins.push_back({"B", {c.w[0]}});
      const std::string node = "Conv " + c.attrs + (c.bias ? " (X, W, B)" : " (X, W)");
      EXPECT_EQ(check(dt, node, ins, c.x.size()), "");
    }
}

// ConvGrad computes only the outputs the backward graph needs.
TEST(DenseGrad, ConvPartialOutputs) {
  const std::vector<In> ins{{"X", {2, 4, 5, 5}}, {"W", {4, 2, 3, 3}}, {"B", {4}}};
  const std::string node = "Conv <group = 2, pads = [1,1,1,1], strides = [2,2]> (X, W, B)";
  for (DType dt : kBoth)
    for (const std::vector<std::string>& wrt :
         std::vector<std::vector<std::string>>{{"X"}, {"W"}, {"B"}, {"W", "B"}, {"X", "B"}}) {
      SCOPED_TRACE(type_name(dt) + " wrt " + wrt[0] + (wrt.size() > 1 ? "," + wrt[1] : ""));
      EXPECT_EQ(check(dt, node, ins, 4, wrt), "");
    }
}

std::vector<ConvCase> conv_transpose_cases() {
  return {
      {"basic_bias", "", {2, 3, 4, 4}, {3, 2, 3, 3}, true},
      {"stride2_pads_outpad", "<strides = [2,2], pads = [1,1,1,1], output_padding = [1,1]>", {1, 2, 4, 4},
       {2, 3, 3, 3}, true},
      {"groups", "<group = 2, strides = [2,1]>", {1, 4, 3, 4}, {4, 2, 3, 3}, true},
      {"depthwise", "<group = 3, strides = [2,2], pads = [1,0,0,1]>", {2, 3, 3, 3}, {3, 1, 3, 3}, false},
      {"dilation2", "<dilations = [2,2], pads = [1,2,2,1]>", {1, 2, 4, 3}, {2, 2, 2, 3}, true},
      {"output_shape", "<strides = [2,2], output_shape = [9,8]>", {1, 2, 4, 4}, {2, 2, 3, 3}, true},
      {"output_shape_larger", "<strides = [2,2], output_shape = [10,10]>", {1, 2, 4, 4}, {2, 2, 3, 3}, true},
      {"same_upper", "<auto_pad = \"SAME_UPPER\", strides = [2,2]>", {1, 2, 3, 3}, {2, 2, 3, 3}, true},
      {"same_lower", "<auto_pad = \"SAME_LOWER\", strides = [2,2]>", {1, 2, 3, 3}, {2, 3, 2, 2}, false},
      {"1d", "<strides = [3], pads = [1,0], output_padding = [2]>", {2, 3, 5}, {3, 2, 4}, true},
      {"3d", "<strides = [2,1,2], pads = [0,1,0,1,0,1]>", {1, 2, 3, 3, 2}, {2, 2, 2, 3, 2}, true},
  };
}

TEST(DenseGrad, ConvTranspose) {
  for (DType dt : kBoth)
    for (const auto& c : conv_transpose_cases()) {
      SCOPED_TRACE(type_name(dt) + " " + c.name);
      const int64_t group = c.attrs.find("group = 2") != std::string::npos   ? 2
                            : c.attrs.find("group = 3") != std::string::npos ? 3
                                                                             : 1;
      std::vector<In> ins{{"X", c.x}, {"W", c.w}};
      if (c.bias) ins.push_back({"B", {c.w[1] * group}});
      const std::string node = "ConvTranspose " + c.attrs + (c.bias ? " (X, W, B)" : " (X, W)");
      EXPECT_EQ(check(dt, node, ins, c.x.size()), "");
    }
  for (DType dt : kBoth)
    for (const std::vector<std::string>& wrt : std::vector<std::vector<std::string>>{{"X"}, {"W"}, {"B"}}) {
      SCOPED_TRACE(type_name(dt) + " partial " + wrt[0]);
      EXPECT_EQ(check(dt, "ConvTranspose <strides = [2,2]> (X, W, B)", {{"X", {1, 2, 3, 3}}, {"W", {2, 3, 2, 2}}, {"B", {3}}},
                      4, wrt),
                "");
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Timing of the float32 backward kernels against their forwards (run with
// --gtest_also_run_disabled_tests --gtest_filter='*DenseBench*').

#include <chrono>

#include "graph/ir.h"
#include "src/executor.h"

namespace {

using Attrs = std::map<std::string, graph::AttributeValue>;

// Median milliseconds of running `op_type` on the given inputs (one output fetched).
double time_op(const std::string& domain, const std::string& op, const std::vector<Tensor>& inputs, Attrs attrs,
               size_t outputs = 1, int reps = 5) {
  graph::Graph g;
  g.opsets[""] = 17;
  std::vector<graph::Value*> ins, outs;
  std::unordered_map<std::string, Tensor> feeds;
  for (size_t i = 0; i < inputs.size(); ++i) {
    graph::Value* v = g.add_value("in" + std::to_string(i), inputs[i].dtype());
    v->kind = graph::ValueKind::Input;
    g.inputs.push_back(v);
    ins.push_back(v);
    feeds["in" + std::to_string(i)] = inputs[i];
  }
  for (size_t i = 0; i < outputs; ++i) outs.push_back(g.add_value("out" + std::to_string(i)));
  graph::Node* n = g.add_node(op, ins, outs, domain, "bench");
  n->attributes = std::move(attrs);
  for (auto* o : outs) g.outputs.push_back(o);
  Executor ex(g, {"out0"});
  ex.run(feeds);
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    ex.run(feeds);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

TEST(DenseBench, DISABLED_Kernels) {
  const char* t = "ai.onnxtrain";
  {
    // A ResNet-style 3x3 convolution.
    const Tensor x = test::random_tensor(DType::Float, {16, 64, 56, 56}, 1), w = test::random_tensor(DType::Float, {64, 64, 3, 3}, 2);
    const Tensor b = test::random_tensor(DType::Float, {64}, 3), dy = test::random_tensor(DType::Float, {16, 64, 56, 56}, 4);
    const double gflop = 2.0 * 16 * 64 * 64 * 9 * 56 * 56 * 1e-9;
    Attrs a{{"pads", std::vector<int64_t>{1, 1, 1, 1}}};
    const double fwd = time_op("", "Conv", {x, w, b}, a);
    const double bwd = time_op(t, "ConvGrad", {dy, x, w}, a, 3);
    std::printf("Conv 16x64x56x56 k3: forward %.1f ms (%.0f GFLOP/s), ConvGrad dX+dW+dB %.1f ms (%.0f GFLOP/s)\n", fwd,
                gflop / fwd * 1e3, bwd, 2 * gflop / bwd * 1e3);
  }
  {
    const Tensor x = test::random_tensor(DType::Float, {16, 64, 112, 112}, 1);
    const Tensor dy = test::random_tensor(DType::Float, {16, 64, 56, 56}, 2);
    Attrs a{{"kernel_shape", std::vector<int64_t>{3, 3}}, {"strides", std::vector<int64_t>{2, 2}},
            {"pads", std::vector<int64_t>{1, 1, 1, 1}}};
    const double fwd = time_op("", "MaxPool", {x}, a);
    const double fwd_idx = time_op("", "MaxPool", {x}, a, 2);
    const double bwd = time_op(t, "MaxPoolGrad", {dy, x}, a);
    const Tensor xd = test::random_tensor(DType::Double, {16, 64, 112, 112}, 1);
    const Tensor dyd = test::random_tensor(DType::Double, {16, 64, 56, 56}, 2);
    const double own = time_op(t, "MaxPoolGrad", {dyd, xd}, a);
    std::printf("MaxPool 16x64x112x112 k3s2: oneDNN forward %.1f ms, own forward with Indices %.1f ms, MaxPoolGrad "
                "%.1f ms, MaxPoolGrad in double %.1f ms\n",
                fwd, fwd_idx, bwd, own);
    const double afwd = time_op("", "AveragePool", {x}, a);
    const double abwd = time_op(t, "AveragePoolGrad", {dy, x}, a);
    std::printf("AveragePool: forward %.1f ms, AveragePoolGrad %.1f ms\n", afwd, abwd);
  }
}
