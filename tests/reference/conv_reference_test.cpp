// Conv / ConvTranspose (oneDNN convolution and deconvolution, forward and the ConvGrad /
// ConvTransposeGrad backward) against the naive reference on random odd-shaped
// configurations: 1-D to 3-D, groups (depthwise and multipliers), strides, dilations,
// asymmetric pads, output_padding, batch 1, channel counts that are not multiples of 8; and
// the 3x3 stride-1 shapes where ConvGrad takes oneDNN's Winograd algorithm.
#include <gtest/gtest.h>

#include <sstream>

#include "ops/reference/conv.h"
#include "tests/reference/reference_support.h"

using namespace onnxtrain;
using namespace onnxtrain::test;

namespace {

struct Config {
  Dims x;        // [N, C, D...] of the node's input
  int64_t out_channels;
  Dims kernel;
  reference::ConvParams p;
  bool bias;
  std::string attrs() const {
    std::string a = "strides = " + ints(p.strides) + ", dilations = " + ints(p.dilations) + ", pads = " + ints(p.pads) +
                    ", group = " + std::to_string(p.group);
    if (!p.output_padding.empty()) a += ", output_padding = " + ints(p.output_padding);
    return a;
  }
  std::string describe(const char* op) const {
    std::ostringstream s;
    s << op << " X " << ints(x) << " out_channels " << out_channels << " kernel " << ints(kernel) << " <" << attrs()
      << ">" << (bias ? " with bias" : "");
    return s.str();
  }
};

// A random convolution whose every output dim is >= 1. For ConvTranspose, output_padding
// stays below the stride (or dilation), as ONNX requires.
Config draw(std::mt19937& rng, size_t nsp, bool transpose) {
  Config c;
  c.p.group = pick(rng, {1, 1, 2, 3});
  const int64_t cg = pick(rng, {1, 3, 5, 7}), mg = pick(rng, {1, 2, 3, 5});
  const bool depthwise = pick(rng, {0, 0, 0, 1}) != 0;
  if (depthwise) c.p.group = cg * c.p.group;
  const int64_t in_ch = depthwise ? c.p.group : cg * c.p.group;
  c.out_channels = mg * c.p.group;
  c.x = {pick(rng, {1, 1, 2, 3}), in_ch};
  c.p.pads.assign(2 * nsp, 0);
  for (size_t i = 0; i < nsp; ++i) {
    const int64_t k = pick(rng, nsp == 3 ? std::initializer_list<int64_t>{1, 2, 3} : std::initializer_list<int64_t>{1, 2, 3, 4, 5});
    const int64_t s = pick(rng, {1, 1, 2, 3}), d = pick(rng, {1, 1, 2});
    c.kernel.push_back(k);
    c.p.strides.push_back(s);
    c.p.dilations.push_back(d);
    const int64_t extent = (k - 1) * d + 1;
    c.p.pads[i] = std::uniform_int_distribution<int64_t>(0, extent - 1)(rng);
    c.p.pads[i + nsp] = std::uniform_int_distribution<int64_t>(0, extent - 1)(rng);
    const int64_t base = nsp == 3 ? pick(rng, {1, 3, 4, 5}) : pick(rng, {1, 3, 5, 7, 13});
    if (transpose) {
      c.p.output_padding.push_back(std::uniform_int_distribution<int64_t>(0, std::max(s, d) - 1)(rng));
      // output = s*(in-1) + op + extent - pads must be >= 1
      int64_t in = base;
      while (s * (in - 1) + c.p.output_padding[i] + extent - c.p.pads[i] - c.p.pads[i + nsp] < 1) ++in;
      c.x.push_back(in);
    } else {
      c.x.push_back(std::max(base, extent - c.p.pads[i] - c.p.pads[i + nsp]));
    }
  }
  c.bias = pick(rng, {0, 1}) != 0;
  return c;
}

// The longest sum behind one output element of each tensor (for the tolerances).
struct Lengths {
  int64_t y, dx, dw, db;
};

void check(const Config& c, bool transpose, std::mt19937& rng) {
  const char* op = transpose ? "ConvTranspose" : "Conv";
  SCOPED_TRACE(c.describe(op));
  const int64_t ksz = reference::numel_of(c.kernel);
  const int64_t cin_g = c.x[1] / c.p.group, cout_g = c.out_channels / c.p.group;
  Dims wshape = transpose ? Dims{c.x[1], cout_g} : Dims{c.out_channels, cin_g};
  wshape.insert(wshape.end(), c.kernel.begin(), c.kernel.end());
  const Array x = random_array(c.x, rng), w = random_array(wshape, rng), b = random_array({c.out_channels}, rng);
  const Array y = transpose ? reference::conv_transpose(x, w, c.bias ? &b : nullptr, c.p)
                            : reference::conv(x, w, c.bias ? &b : nullptr, c.p);
  std::vector<NodeInput> in{{"X", x}, {"W", w}};
  if (c.bias) in.push_back({"B", b});
  const size_t rank = c.x.size();
  const Tensor got = run_node(op, c.attrs(), in, {{"Y", rank}})["Y"];
  const int64_t in_sp = reference::numel_of(Dims(c.x.begin() + 2, c.x.end())),
                out_sp = reference::numel_of(Dims(y.shape.begin() + 2, y.shape.end()));
  // Conv: y sums cin_g*k taps; dX sums cout_g*k; dW sums N*out positions. ConvTranspose
  // swaps the roles of its input and output.
  const Lengths len = transpose ? Lengths{cin_g * ksz + 1, cout_g * ksz, c.x[0] * in_sp, c.x[0] * out_sp}
                                : Lengths{cin_g * ksz + 1, cout_g * ksz, c.x[0] * out_sp, c.x[0] * out_sp};
  EXPECT_EQ(compare(got, y, accumulation_tolerance(len.y)), "") << "forward";

  const Array dy = random_array(y.shape, rng);
  const reference::ConvGrads want = transpose ? reference::conv_transpose_backward(dy, x, w, c.p)
                                              : reference::conv_backward(dy, x, w, c.p);
  // The backward node declares dB only when the forward has a bias.
  std::vector<std::pair<std::string, size_t>> outs{{"dX", rank}, {"dW", rank}};
  if (c.bias) outs.push_back({"dB", 1});
  auto grads = run_node(std::string("ai.onnxtrain.") + op + "Grad", c.attrs(), {{"dY", dy}, {"X", x}, {"W", w}}, outs);
  EXPECT_EQ(compare(grads["dX"], want.dx, accumulation_tolerance(len.dx)), "") << "dX";
  EXPECT_EQ(compare(grads["dW"], want.dw, accumulation_tolerance(len.dw)), "") << "dW";
  if (c.bias) {
    EXPECT_EQ(compare(grads["dB"], want.db, accumulation_tolerance(len.db)), "") << "dB";
  }
}

}  // namespace

TEST(ConvReference, ConvForwardAndGradMatchOnRandomOddShapes) {
  std::mt19937 rng(2024);
  for (size_t nsp : {1, 2, 3})
    for (int i = 0; i < (nsp == 3 ? 20 : 40); ++i) check(draw(rng, nsp, false), false, rng);
}

TEST(ConvReference, ConvTransposeForwardAndGradMatchOnRandomOddShapes) {
  std::mt19937 rng(4048);
  for (size_t nsp : {1, 2, 3})
    for (int i = 0; i < (nsp == 3 ? 15 : 30); ++i) check(draw(rng, nsp, true), true, rng);
}

// Shapes on Winograd's side of ConvGrad's rule (ops/conv.cpp: >= 64 channels and >= 128 4x4
// output tiles, or >= 32 channels and >= 512 tiles), with and without bias and padding,
// channels that differ between input and output. (The 32-channel side: conv_algorithm_test
// against the direct algorithm; the reference costs seconds per case.)
TEST(ConvReference, WinogradShapesMatchTheReference) {
  std::mt19937 rng(77);
  const auto conv3x3 = [](Dims x, int64_t out_channels, int64_t pad, bool bias) {
    Config c;
    c.x = std::move(x);
    c.out_channels = out_channels;
    c.kernel = {3, 3};
    c.p.strides = {1, 1};
    c.p.dilations = {1, 1};
    c.p.pads = {pad, pad, pad, pad};
    c.p.group = 1;
    c.bias = bias;
    return c;
  };
  check(conv3x3({2, 64, 32, 32}, 64, 1, false), false, rng);  // 128 tiles of 64 channels
  check(conv3x3({2, 64, 34, 30}, 80, 0, true), false, rng);   // 2x8x7 tiles, 64 -> 80 channels
}

// Shapes where ConvGrad computes dW as one matrix product over im2col(X) (ops/conv_weights_gemm.cpp:
// ungrouped, <= 4 output positions, >= 256 channels): 3x3 over 2x2, a stride-2 one, a
// dilated kernel with asymmetric pads, 1-D, channel counts that are not multiples of 16.
TEST(ConvReference, WeightsGradAsMatrixProductMatchesTheReference) {
  std::mt19937 rng(91);
  const auto conv = [](Dims x, int64_t out_channels, Dims kernel, Dims strides, Dims dilations, Dims pads, bool bias) {
    Config c;
    c.x = std::move(x);
    c.out_channels = out_channels;
    c.kernel = std::move(kernel);
    c.p.strides = std::move(strides);
    c.p.dilations = std::move(dilations);
    c.p.pads = std::move(pads);
    c.p.group = 1;
    c.bias = bias;
    return c;
  };
  check(conv({2, 256, 2, 2}, 256, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, false), false, rng);
  check(conv({3, 264, 4, 4}, 257, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, true), false, rng);
  check(conv({2, 260, 3, 3}, 258, {2, 2}, {1, 1}, {2, 2}, {1, 0, 0, 1}, false), false, rng);
  check(conv({2, 256, 5}, 270, {3}, {2}, {1}, {1, 0}, true), false, rng);
}
