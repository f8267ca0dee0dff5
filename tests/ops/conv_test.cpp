// Conv and ConvTranspose: the naive reference (ops/reference/conv) on fixed configurations
// in float (oneDNN) and double (own loops), the adjoint identity between the two, and clear
// errors. tests/reference/conv_reference_test.cpp covers random configurations and ConvGrad.
#include <gtest/gtest.h>

#include <random>

#include "onnxtrain/onnxtrain.h"
#include "ops/reference/conv.h"
#include "tests/reference/reference_support.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;
using test::ints;
using test::random_float_tensor;
using test::run_node;

namespace {

struct ConvCase {
  Shape x;      // [N, C, spatial...]
  int64_t m;    // output channels
  Shape k;      // kernel
  Shape s, d;   // strides, dilations
  Shape pads;   // begins then ends
  int64_t group;
  bool bias;
};

Tensor cast(const Tensor& t, DType to) {
  const std::vector<double> v = t.as_double();
  return to == DType::Double ? Tensor::from_vector<double>(t.shape(), v)
                             : Tensor::from_vector<float>(t.shape(), std::vector<float>(v.begin(), v.end()));
}

}  // namespace

TEST(Conv, ConvMatchesNaiveLoopOnRandomConfigurations) {
  std::mt19937 rng(7);
  const std::vector<ConvCase> cases = {
      {{2, 4, 9, 8}, 6, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, 1, true},
      {{1, 6, 11, 10}, 6, {3, 2}, {2, 3}, {1, 2}, {2, 0, 1, 3}, 3, false},  // groups, asymmetric pads
      {{2, 8, 7, 7}, 8, {3, 3}, {2, 2}, {2, 2}, {2, 2, 2, 2}, 8, true},    // depthwise, dilated
      {{1, 4, 6, 6}, 12, {3, 3}, {1, 1}, {1, 1}, {0, 0, 0, 0}, 4, true},   // depthwise multiplier
      {{3, 5, 17}, 7, {4}, {3}, {2}, {3, 1}, 1, true},                     // 1-D
      {{1, 4, 5, 6, 7}, 4, {2, 3, 2}, {1, 2, 2}, {2, 1, 1}, {1, 0, 1, 0, 1, 1}, 2, false},  // 3-D
      {{1, 16, 12, 12}, 32, {1, 1}, {1, 1}, {1, 1}, {0, 0, 0, 0}, 1, true},  // pointwise
  };
  for (const auto& c : cases) {
    const size_t nsp = c.k.size();
    Shape wshape{c.m, c.x[1] / c.group};
    wshape.insert(wshape.end(), c.k.begin(), c.k.end());
    Tensor x = random_float_tensor(c.x, rng), w = random_float_tensor(wshape, rng), b = random_float_tensor({c.m}, rng);
    const reference::Array bias = test::to_array(b);
    const reference::Array ref = reference::conv(test::to_array(x), test::to_array(w), c.bias ? &bias : nullptr,
                                                 {c.s, c.d, c.pads, {}, c.group});
    const Tensor expected = test::to_float_tensor(ref);
    std::string attrs = "strides = " + ints(c.s) + ", dilations = " + ints(c.d) + ", pads = " + ints(c.pads) +
                        ", group = " + std::to_string(c.group);
    std::vector<std::pair<std::string, Tensor>> in{{"X", x}, {"W", w}};
    if (c.bias) in.emplace_back("B", b);
    auto y = run_node("Conv", attrs, in, c.x.size());
    EXPECT_EQ(y["Y"].shape(), ref.shape) << nsp << "-D case " << attrs;
    EXPECT_EQ(test::compare_tensors(y["Y"], expected, 1e-4, 1e-5), "") << attrs;
    // double runs the own loop: the same numbers
    std::vector<std::pair<std::string, Tensor>> ind{{"X", cast(x, DType::Double)}, {"W", cast(w, DType::Double)}};
    if (c.bias) ind.emplace_back("B", cast(b, DType::Double));
    Tensor yd = run_node("Conv", attrs, ind, c.x.size(), "double")["Y"];
    EXPECT_EQ(test::compare_tensors(cast(yd, DType::Float), expected, 1e-4, 1e-5), "") << attrs;
  }
}

TEST(Conv, ConvTransposeIsTheAdjointOfConv) {
  // <ConvTranspose(x), y> == <x, Conv(y)> with the same weights: checks layout, groups,
  // strides, dilations and pads of the deconvolution against the convolution.
  std::mt19937 rng(11);
  struct Case {
    Shape y;  // conv input == transposed-conv output
    int64_t cin, group;
    Shape k, s, d, pads;
  };
  const std::vector<Case> cases = {
      {{2, 4, 9, 8}, 6, 2, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}},
      {{1, 3, 10, 7}, 3, 3, {2, 3}, {3, 2}, {2, 1}, {0, 1, 2, 1}},
      {{1, 2, 13}, 4, 1, {3}, {2}, {2}, {1, 2}},
  };
  for (const auto& c : cases) {
    const size_t nsp = c.k.size();
    // conv: y [N, M, ...] -> x [N, cin, ...] with W [cin, M/group, k...]
    Shape w_shape{c.cin, c.y[1] / c.group};
    w_shape.insert(w_shape.end(), c.k.begin(), c.k.end());
    Tensor w = random_float_tensor(w_shape, rng), yin = random_float_tensor(c.y, rng);
    std::string attrs = "strides = " + ints(c.s) + ", dilations = " + ints(c.d) + ", pads = " + ints(c.pads) +
                        ", group = " + std::to_string(c.group);
    Tensor conv = run_node("Conv", attrs, {{"X", yin}, {"W", w}}, c.y.size())["Y"];
    Tensor xin = random_float_tensor(conv.shape(), rng);
    // output_padding recovers the rows the conv's floor division dropped
    std::vector<int64_t> op(nsp);
    for (size_t i = 0; i < nsp; ++i)
      op[i] = c.y[2 + i] - ((conv.dim(2 + i) - 1) * c.s[i] + (c.k[i] - 1) * c.d[i] + 1 - c.pads[i] - c.pads[i + nsp]);
    Tensor deconv = run_node("ConvTranspose", attrs + ", output_padding = " + ints(op), {{"X", xin}, {"W", w}}, c.y.size())["Y"];
    ASSERT_EQ(deconv.shape(), c.y) << attrs;
    double lhs = 0, rhs = 0;
    for (int64_t i = 0; i < deconv.numel(); ++i) lhs += double(deconv.data<float>()[i]) * yin.data<float>()[i];
    for (int64_t i = 0; i < conv.numel(); ++i) rhs += double(conv.data<float>()[i]) * xin.data<float>()[i];
    EXPECT_NEAR(lhs, rhs, 1e-3 * (1 + std::abs(rhs))) << attrs;
  }
}

TEST(Conv, InvalidChannelsGiveAClearError) {
  std::mt19937 rng(1);
  EXPECT_THROW(run_node("Conv", "", {{"X", random_float_tensor({1, 3, 5, 5}, rng)}, {"W", random_float_tensor({2, 4, 3, 3}, rng)}}, 4),
               Error);
}
