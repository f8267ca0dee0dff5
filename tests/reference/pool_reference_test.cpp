// MaxPool / AveragePool (oneDNN pooling forward and the MaxPoolGrad / AveragePoolGrad
// backward) against the naive reference on random odd-shaped configurations: 1-D to 3-D,
// ceil_mode, count_include_pad, asymmetric pads, dilations (MaxPool), kernels larger than
// the stride, batch 1, channel counts that are not multiples of 8.
#include <gtest/gtest.h>

#include <sstream>

#include "ops/reference/pool.h"
#include "tests/reference/reference_support.h"

using namespace onnxtrain;
using namespace onnxtrain::test;

namespace {

std::string attrs_of(const reference::PoolParams& p) {
  std::string a = "kernel_shape = " + ints(p.kernel) + ", strides = " + ints(p.strides) + ", pads = " + ints(p.pads) +
                  ", ceil_mode = " + std::to_string(p.ceil_mode);
  if (p.max) return a + ", dilations = " + ints(p.dilations);
  return a + ", count_include_pad = " + std::to_string(p.count_include_pad);
}

void check(bool max, size_t nsp, std::mt19937& rng) {
  reference::PoolParams p;
  p.max = max;
  Dims x{pick(rng, {1, 1, 2, 3}), pick(rng, {1, 3, 5, 7, 13})};
  p.pads.assign(2 * nsp, 0);
  for (size_t i = 0; i < nsp; ++i) {
    const int64_t k = pick(rng, nsp == 3 ? std::initializer_list<int64_t>{1, 2, 3} : std::initializer_list<int64_t>{1, 2, 3, 4, 5});
    const int64_t d = max ? pick(rng, {1, 1, 2}) : 1;
    p.kernel.push_back(k);
    p.strides.push_back(pick(rng, {1, 2, 3}));
    p.dilations.push_back(d);
    // pads stay below the kernel (ONNX and oneDNN both require it)
    p.pads[i] = std::uniform_int_distribution<int64_t>(0, k - 1)(rng);
    p.pads[i + nsp] = std::uniform_int_distribution<int64_t>(0, k - 1)(rng);
    const int64_t extent = (k - 1) * d + 1;
    // MaxPool needs an input as wide as the dilated window: narrower, a window can fall
    // entirely on padding and dilation holes, whose maximum ONNX leaves undefined.
    x.push_back(std::max(pick(rng, nsp == 3 ? std::initializer_list<int64_t>{1, 3, 4, 6} : std::initializer_list<int64_t>{1, 3, 5, 7, 13}),
                         max ? extent : extent - p.pads[i] - p.pads[i + nsp]));
  }
  p.ceil_mode = pick(rng, {0, 1}) != 0;
  p.count_include_pad = pick(rng, {0, 1}) != 0;
  const char* op = max ? "MaxPool" : "AveragePool";
  SCOPED_TRACE(std::string(op) + " X " + ints(x) + " <" + attrs_of(p) + ">");
  const Array xa = random_array(x, rng);
  const Array y = reference::pool(xa, p);
  const int64_t window = reference::numel_of(p.kernel);
  // Max selects a value exactly; an average sums at most `window` values.
  const double tol = max ? 0.0 : accumulation_tolerance(window);
  EXPECT_EQ(compare(run_node(op, attrs_of(p), {{"X", xa}}, {{"Y", x.size()}})["Y"], y, tol), "") << "forward";
  const Array dy = random_array(y.shape, rng);
  // dX of a point gathers the windows that cover it: at most prod(ceil(k/s)) of them.
  int64_t cover = 1;
  for (size_t i = 0; i < nsp; ++i) cover *= (p.kernel[i] * p.dilations[i] + p.strides[i] - 1) / p.strides[i];
  const Tensor dx = run_node(std::string("ai.onnxtrain.") + op + "Grad", attrs_of(p), {{"dY", dy}, {"X", xa}},
                             {{"dX", x.size()}})["dX"];
  EXPECT_EQ(compare(dx, reference::pool_backward(dy, xa, p), accumulation_tolerance(cover)), "") << "dX";
}

}  // namespace

TEST(PoolReference, MaxPoolForwardAndGradMatchOnRandomOddShapes) {
  std::mt19937 rng(77);
  for (size_t nsp : {1, 2, 3})
    for (int i = 0; i < 40; ++i) check(true, nsp, rng);
}

TEST(PoolReference, AveragePoolForwardAndGradMatchOnRandomOddShapes) {
  std::mt19937 rng(78);
  for (size_t nsp : {1, 2, 3})
    for (int i = 0; i < 40; ++i) check(false, nsp, rng);
}

// ReLU before a max pool leaves windows of equal zeros (and coarse values tie too): dY must
// go to each window's first maximum, as PyTorch routes it, on rows wide enough that
// MaxPoolGrad takes windows four at a time in vector lanes (strides 1 and 2), on its clipped
// edge windows and on the strides it takes one window at a time.
TEST(PoolReference, MaxPoolGradRoutesTiesToTheFirstMaximum) {
  std::mt19937 rng(79);
  for (int64_t stride : {1, 2, 3})
    for (int64_t k : {2, 3, 5})
      for (int ceil : {0, 1}) {
        reference::PoolParams p;
        p.max = true;
        p.kernel = {k, k};
        p.strides = {stride, stride};
        p.dilations = {1, 1};
        p.pads = {k / 2, k / 2, k / 2, k / 2};
        p.ceil_mode = ceil != 0;
        const Dims x{2, 3, 9, 37};
        SCOPED_TRACE("X " + ints(x) + " <" + attrs_of(p) + ">");
        Array xa = random_array(x, rng);
        for (double& v : xa.data) v = std::max(0.0, std::round(v * 2) / 2);  // ReLU'd, in steps of 0.5
        const Array y = reference::pool(xa, p);
        const Array dy = random_array(y.shape, rng);
        const Tensor dx = run_node("ai.onnxtrain.MaxPoolGrad", attrs_of(p), {{"dY", dy}, {"X", xa}}, {{"dX", x.size()}})["dX"];
        EXPECT_EQ(compare(dx, reference::pool_backward(dy, xa, p), accumulation_tolerance(k * k)), "");
      }
}
