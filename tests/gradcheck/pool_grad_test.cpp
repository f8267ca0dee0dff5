// Gradient checks for the pools, MaxUnpool and RoiAlign (pool.cpp, unpool_roi_align.cpp).
// float64 cases exercise the own backward loops with tight tolerances; float32 cases the
// oneDNN backward primitives (four-point differences, eps 1e-2).
#include <gtest/gtest.h>

#include "onnxtrain/errors.h"

#include "tests/support/node_grad.h"

using namespace onnxtrain;
using namespace onnxtrain::test::node_grad;

namespace {

// ---------------------------------------------------------------------------------------------
// Pools

struct PoolCase {
  std::string name, op, attrs;
  Shape x;
};

TEST(DenseGrad, MaxPool) {
  const std::vector<PoolCase> cases{
      {"k3s2p1", "MaxPool", "<kernel_shape = [3,3], strides = [2,2], pads = [1,1,1,1]>", {2, 3, 7, 6}},
      {"ceil_mode", "MaxPool", "<kernel_shape = [3,3], strides = [2,2], ceil_mode = 1>", {1, 2, 6, 6}},
      {"ceil_pads", "MaxPool", "<kernel_shape = [2,3], strides = [2,2], pads = [1,0,0,1], ceil_mode = 1>",
       {1, 2, 6, 7}},
      {"dilation2", "MaxPool", "<kernel_shape = [2,2], dilations = [2,2], pads = [1,1,0,0]>", {1, 2, 6, 6}},
      {"same_upper", "MaxPool", "<kernel_shape = [3,3], strides = [2,2], auto_pad = \"SAME_UPPER\">", {1, 2, 5, 5}},
      {"1d", "MaxPool", "<kernel_shape = [3], strides = [2], pads = [1,1]>", {2, 3, 9}},
      {"3d", "MaxPool", "<kernel_shape = [2,2,2], strides = [1,2,2]>", {1, 2, 3, 4, 4}},
  };
  for (DType dt : kBoth)
    for (const auto& c : cases) {
      SCOPED_TRACE(type_name(dt) + " " + c.name);
      In x{"X", c.x};
      x.distinct = true;
      EXPECT_EQ(check(dt, c.op + " " + c.attrs + " (X)", {x}, c.x.size()), "");
    }
  // The model also asks for Indices (the forward's own loop path).
  for (DType dt : kBoth) {
    In x{"X", {1, 2, 5, 5}};
    x.distinct = true;
    EXPECT_EQ(check(dt, "Y, Ind = MaxPool <kernel_shape = [3,3], strides = [2,2], pads = [1,1,1,1]> (X)", {x}, 4), "");
  }
}

TEST(DenseGrad, AveragePool) {
  const std::vector<PoolCase> cases{
      {"k3s2p1_exclude", "AveragePool", "<kernel_shape = [3,3], strides = [2,2], pads = [1,1,1,1]>", {2, 3, 7, 6}},
      {"k3s2p1_include", "AveragePool",
       "<kernel_shape = [3,3], strides = [2,2], pads = [1,1,1,1], count_include_pad = 1>", {2, 3, 7, 6}},
      {"ceil_exclude", "AveragePool", "<kernel_shape = [3,3], strides = [2,2], ceil_mode = 1>", {1, 2, 6, 6}},
      // ceil_mode windows past the padded input with count_include_pad: the own loop.
      {"ceil_include", "AveragePool",
       "<kernel_shape = [3,3], strides = [2,2], pads = [1,1,1,1], ceil_mode = 1, count_include_pad = 1>",
       {1, 2, 6, 6}},
      {"asym_pads", "AveragePool", "<kernel_shape = [2,3], pads = [0,2,1,0], count_include_pad = 1>", {1, 2, 5, 5}},
      {"same_lower", "AveragePool", "<kernel_shape = [3,2], auto_pad = \"SAME_LOWER\">", {1, 2, 5, 5}},
      {"1d", "AveragePool", "<kernel_shape = [3], strides = [2], pads = [1,1]>", {2, 3, 9}},
      {"3d", "AveragePool", "<kernel_shape = [2,2,2], pads = [1,0,1,0,1,0], count_include_pad = 1>",
       {1, 2, 3, 4, 4}},
  };
  for (DType dt : kBoth)
    for (const auto& c : cases) {
      SCOPED_TRACE(type_name(dt) + " " + c.name);
      EXPECT_EQ(check(dt, c.op + " " + c.attrs + " (X)", {{"X", c.x}}, c.x.size()), "");
    }
}

TEST(DenseGrad, LpPoolAndGlobalPools) {
  for (DType dt : kBoth) {
    SCOPED_TRACE(type_name(dt));
    In x{"X", {2, 3, 5, 5}};
    x.away_from_zero = true;
    EXPECT_EQ(check(dt, "LpPool <kernel_shape = [3,3], strides = [2,2], pads = [1,1,1,1], p = 2> (X)", {x}, 4), "");
    EXPECT_EQ(check(dt, "LpPool <kernel_shape = [2,2], p = 3> (X)", {x}, 4), "");
    EXPECT_EQ(check(dt, "LpPool <kernel_shape = [3], p = 1> (X)", {{"X", {2, 3, 6}, std::nullopt, false, true}}, 3), "");
    EXPECT_EQ(check(dt, "GlobalAveragePool (X)", {{"X", {2, 3, 4, 5}}}, 4), "");
    EXPECT_EQ(check(dt, "GlobalAveragePool (X)", {{"X", {2, 3, 7}}}, 3), "");
    In xm{"X", {2, 3, 4, 5}};
    xm.distinct = true;
    EXPECT_EQ(check(dt, "GlobalMaxPool (X)", {xm}, 4), "");
  }
  // LpPool-1 (float p) is not checked: check_gradients' loss seed goes through the driver's
  // ReduceSumTo gradient, which emits Expand (opset >= 8) into the opset-1 graph.
}

Tensor int64_tensor(const Shape& shape, std::vector<int64_t> values) {
  return Tensor::from_vector<int64_t>(shape, values);
}

TEST(DenseGrad, MaxUnpool) {
  // Indices as MaxPool k2 s2 on a [1,1,4,4] input would give them, plus a duplicate (position
  // 5 written twice: only the later element gets the gradient).
  const Tensor idx = int64_tensor({1, 1, 2, 2}, {5, 5, 9, 15});
  for (DType dt : kBoth) {
    SCOPED_TRACE(type_name(dt));
    EXPECT_EQ(check(dt, "MaxUnpool <kernel_shape = [2,2], strides = [2,2]> (X, I)", {{"X", {1, 1, 2, 2}}, {"I", {}, idx}},
                    4, {"X"}),
              "");
    // output_shape larger than the default: indices re-based per coordinate.
    EXPECT_EQ(check(dt, "MaxUnpool <kernel_shape = [2,2], strides = [2,2]> (X, I, S)",
                    {{"X", {1, 1, 2, 2}}, {"I", {}, idx}, {"S", {}, int64_tensor({4}, {1, 1, 5, 5})}}, 4, {"X"}),
              "");
  }
}

TEST(DenseGrad, RoiAlign) {
  const Tensor rois = Tensor::from_vector<double>({3, 4}, {0.3, 0.7, 4.1, 3.6, 1.2, 0.4, 5.3, 5.1, 0.5, 2.2, 3.3, 4.9});
  const Tensor batch = int64_tensor({3}, {0, 1, 0});
  for (DType dt : kBoth)
    for (const std::string attrs :
         {"<output_height = 2, output_width = 3, sampling_ratio = 2, spatial_scale = 1.0>",
          "<output_height = 3, output_width = 2, sampling_ratio = 0, coordinate_transformation_mode = \"output_half_pixel\">",
          "<output_height = 2, output_width = 2, sampling_ratio = 2, mode = \"max\">"}) {
      SCOPED_TRACE(type_name(dt) + " " + attrs);
      In x{"X", {2, 2, 6, 7}};
      if (attrs.find("max") != std::string::npos) x.distinct = true;
      EXPECT_EQ(check(dt, "RoiAlign " + attrs + " (X, R, I)", {x, {"R", {}, rois}, {"I", {}, batch}}, 4, {"X"}, 16), "");
    }
}

}  // namespace
