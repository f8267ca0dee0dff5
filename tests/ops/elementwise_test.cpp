// Behaviour of the elementwise family (elementwise.cpp: unary math ops, Cast) that the ONNX
// backend data does not cover: 16-bit float rounding, integer casts, float flags.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/node_case.h"

using namespace onnxtrain;

namespace {

// Runs a one-graph model text and returns output Y.
Tensor run(const std::string& graph, const std::map<std::string, Tensor>& feeds, int opset = 17) {
  return test::run_model(test::model_header(opset) + graph, feeds)["Y"];
}

Tensor bits16(DType dtype, const std::vector<uint16_t>& bits) {
  Tensor t(dtype, {static_cast<int64_t>(bits.size())});
  std::memcpy(t.raw(), bits.data(), bits.size() * 2);
  return t;
}

std::vector<uint16_t> bits_of(const Tensor& t) {
  const auto* p = static_cast<const uint16_t*>(t.raw());
  return {p, p + t.numel()};
}

constexpr int32_t kMin32 = std::numeric_limits<int32_t>::min();

}  // namespace

TEST(Elementwise, SeluAndHardSigmoidOnSmallShapes) {
  Tensor x = Tensor::from_vector<float>({3}, {-1, 0, 1});
  auto hs = run("g (float[3] X) => (float[3] Y) { Y = HardSigmoid<alpha = 0.5, beta = 0.6>(X) }", {{"X", x}});
  EXPECT_NEAR(hs.data<float>()[0], 0.1f, 1e-6);
  EXPECT_NEAR(hs.data<float>()[1], 0.6f, 1e-6);
  EXPECT_EQ(hs.data<float>()[2], 1.0f);
  auto selu = run("g (float[3] X) => (float[3] Y) { Y = Selu<alpha = 2.0, gamma = 3.0>(X) }", {{"X", x}}).to_vector<float>();
  EXPECT_NEAR(selu[0], 3 * 2 * (std::exp(-1.0) - 1), 1e-5);
  EXPECT_EQ(selu[1], 0.f);
  EXPECT_EQ(selu[2], 3.f);
}

TEST(Elementwise, RoundIsHalfToEven) {
  Tensor x = Tensor::from_vector<float>({8}, {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 2.4f, -2.6f});
  EXPECT_EQ(run("g (float[8] X) => (float[8] Y) { Y = Round(X) }", {{"X", x}}).to_vector<float>(),
            (std::vector<float>{0, 2, 2, -0.f, -2, -2, 2, -3}));
  Tensor xd = Tensor::from_vector<double>({3}, {0.5, 1.5, 2.5});
  EXPECT_EQ(run("g (double[3] X) => (double[3] Y) { Y = Round(X) }", {{"X", xd}}).to_vector<double>(),
            (std::vector<double>{0, 2, 2}));
}

TEST(Elementwise, IsInfHonoursDetectFlags) {
  float inf = std::numeric_limits<float>::infinity();
  Tensor x = Tensor::from_vector<float>({4}, {inf, -inf, 1.f, std::nanf("")});
  auto y = run("g (float[4] X) => (bool[4] Y) { Y = IsInf<detect_negative = 0>(X) }", {{"X", x}}).to_vector<bool>();
  EXPECT_EQ(y, (std::vector<bool>{true, false, false, false}));
}

TEST(Cast, FloatToHalfRoundsToNearestEven) {
  std::vector<float> v = {1.f + 0x1p-11f,  1.f + 3 * 0x1p-11f, 65519.f, 65520.f, 0x1p-24f, 0x1p-25f,
                          3 * 0x1p-25f,     -0.f,               1e-10f,  std::numeric_limits<float>::infinity()};
  Tensor x = Tensor::from_vector<float>({10}, v);
  auto y = run("g (float[10] X) => (float16[10] Y) { Y = Cast<to = 10>(X) }", {{"X", x}});
  EXPECT_EQ(bits_of(y), (std::vector<uint16_t>{0x3c00, 0x3c02, 0x7bff, 0x7c00, 0x0001, 0x0000, 0x0002, 0x8000, 0x0000,
                                               0x7c00}));
  Tensor nan = Tensor::from_vector<float>({1}, {std::nanf("")});
  uint16_t h = bits_of(run("g (float[1] X) => (float16[1] Y) { Y = Cast<to = 10>(X) }", {{"X", nan}}))[0];
  EXPECT_EQ(h & 0x7c00, 0x7c00);
  EXPECT_NE(h & 0x3ff, 0);
}

TEST(Cast, DoubleToHalfRoundsOnce) {
  // Through float this would first round to the tie 1 + 2^-11 and then down to 1.0.
  Tensor x = Tensor::from_vector<double>({2}, {1.0 + 0x1p-11 + 0x1p-40, 0x1p-15 + 0x1p-40});
  auto y = run("g (double[2] X) => (float16[2] Y) { Y = Cast<to = 10>(X) }", {{"X", x}});
  EXPECT_EQ(bits_of(y), (std::vector<uint16_t>{0x3c01, 0x0200}));
}

TEST(Cast, HalfAndBFloat16ToFloat) {
  auto h = run("g (float16[4] X) => (float[4] Y) { Y = Cast<to = 1>(X) }",
               {{"X", bits16(DType::Float16, {0x0001, 0x83ff, 0x7bff, 0xfc00})}})
               .to_vector<float>();
  EXPECT_EQ(h, (std::vector<float>{0x1p-24f, -1023 * 0x1p-24f, 65504.f, -std::numeric_limits<float>::infinity()}));
  auto b = run("g (bfloat16[2] X) => (float[2] Y) { Y = Cast<to = 1>(X) }", {{"X", bits16(DType::BFloat16, {0x3f80, 0xc040})}})
               .to_vector<float>();
  EXPECT_EQ(b, (std::vector<float>{1.f, -3.f}));
  Tensor x = Tensor::from_vector<float>({2}, {1.f + 0x1p-8f, 1.f + 3 * 0x1p-8f});  // ties
  EXPECT_EQ(bits_of(run("g (float[2] X) => (bfloat16[2] Y) { Y = Cast<to = 16>(X) }", {{"X", x}})),
            (std::vector<uint16_t>{0x3f80, 0x3f82}));
}

TEST(Cast, FloatToIntegerSaturatesAndBoolIsNonZero) {
  Tensor x = Tensor::from_vector<float>({5}, {1e20f, -1e20f, std::nanf(""), -3.7f, 0.f});
  EXPECT_EQ(run("g (float[5] X) => (int32[5] Y) { Y = Cast<to = 6>(X) }", {{"X", x}}).to_vector<int32_t>(),
            (std::vector<int32_t>{std::numeric_limits<int32_t>::max(), kMin32, 0, -3, 0}));
  EXPECT_EQ(run("g (float[5] X) => (bool[5] Y) { Y = Cast<to = 9>(X) }", {{"X", x}}).to_vector<bool>(),
            (std::vector<bool>{true, true, true, true, false}));
  Tensor i = Tensor::from_vector<int64_t>({2}, {300, -1});
  EXPECT_EQ(run("g (int64[2] X) => (uint8[2] Y) { Y = Cast<to = 2>(X) }", {{"X", i}}).to_vector<uint8_t>(),
            (std::vector<uint8_t>{44, 255}));
}
