// Behaviour of the elementwise families that the ONNX backend data does not cover: 16-bit
// float rounding, integer edge cases (division by zero, wrap-around), broadcasting fast
// paths, legacy (opset < 7) broadcast attributes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "onnxtrain/onnxtrain.h"

using namespace onnxtrain;

namespace {

// Runs a one-graph model text and returns output Y.
Tensor run(const std::string& graph, const std::map<std::string, Tensor>& feeds, int opset = 17) {
  Model model = Model::from_text("<ir_version: 8, opset_import: [\"\" : " + std::to_string(opset) + "]>\n" + graph);
  InferenceSession session(model);
  return session.run(feeds)["Y"];
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

TEST(Binary, IntegerDivisionAndModuloByZeroGiveZero) {
  Tensor a = Tensor::from_vector<int32_t>({4}, {7, -7, kMin32, -7});
  Tensor b = Tensor::from_vector<int32_t>({4}, {0, 3, -1, 0});
  std::string sig = "g (int32[4] A, int32[4] B) => (int32[4] Y) ";
  EXPECT_EQ(run(sig + "{ Y = Div(A, B) }", {{"A", a}, {"B", b}}).to_vector<int32_t>(),
            (std::vector<int32_t>{0, -2, kMin32, 0}));
  EXPECT_EQ(run(sig + "{ Y = Mod(A, B) }", {{"A", a}, {"B", b}}).to_vector<int32_t>(),
            (std::vector<int32_t>{0, 2, 0, 0}));
  EXPECT_EQ(run(sig + "{ Y = Mod<fmod = 1>(A, B) }", {{"A", a}, {"B", b}}).to_vector<int32_t>(),
            (std::vector<int32_t>{0, -1, 0, 0}));
  EXPECT_EQ(run(sig + "{ Y = Add(A, B) }", {{"A", a}, {"B", b}}).to_vector<int32_t>(),
            (std::vector<int32_t>{7, -4, std::numeric_limits<int32_t>::max(), -7}));
}

TEST(Binary, FloatModRequiresFmod) {
  Tensor a = Tensor::from_vector<float>({1}, {1.f});
  EXPECT_THROW(run("g (float[1] A, float[1] B) => (float[1] Y) { Y = Mod(A, B) }", {{"A", a}, {"B", a}}), Error);
}

TEST(Binary, BroadcastPathsMatchNaiveIndexing) {
  // Inner-contiguous ([2,3,4] + [3,1]), outer broadcast of both ([2,1,4] + [3,1]) and a
  // long single row: every path against explicit indexing.
  struct Case {
    Shape a, b, out;
  };
  for (const Case& c : {Case{{2, 3, 4}, {3, 1}, {2, 3, 4}}, Case{{2, 1, 4}, {3, 1}, {2, 3, 4}},
                        Case{{1, 4}, {3, 1}, {3, 4}}, Case{{40000}, {1}, {40000}}, Case{{3, 1}, {2, 3, 20000}, {2, 3, 20000}}}) {
    auto fill = [](const Shape& s, int seed) {
      std::vector<int32_t> v(shape_numel(s));
      for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int32_t>((i * 7 + seed) % 101);
      return Tensor::from_vector<int32_t>(s, v);
    };
    Tensor a = fill(c.a, 1), b = fill(c.b, 5);
    auto t = [](const Shape& s) {
      std::string r = "int32[";
      for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
      return r + "]";
    };
    Tensor y = run("g (" + t(c.a) + " A, " + t(c.b) + " B) => (" + t(c.out) + " Y) { Y = Sub(A, B) }", {{"A", a}, {"B", b}});
    ASSERT_EQ(y.shape(), c.out);
    auto at = [&](const Tensor& x, const Shape& idx) {
      int64_t off = 0, pad = c.out.size() - x.rank();
      for (size_t d = 0; d < x.rank(); ++d) off = off * x.dim(d) + (x.dim(d) == 1 ? 0 : idx[pad + d]);
      return x.data<int32_t>()[off];
    };
    Shape idx(c.out.size(), 0);
    for (int64_t i = 0; i < y.numel(); ++i) {
      ASSERT_EQ(y.data<int32_t>()[i], at(a, idx) - at(b, idx)) << "case " << shape_str(c.a) << " - " << shape_str(c.b);
      for (int d = static_cast<int>(idx.size()) - 1; d >= 0 && ++idx[d] == c.out[d]; --d) idx[d] = 0;
    }
  }
}

TEST(Binary, LargeFloatBroadcastUsesSameSemantics) {
  // Large enough for the oneDNN path; B broadcasts, A broadcasts (swapped operands).
  std::vector<float> av(2 * 150000), bv(150000);
  for (size_t i = 0; i < av.size(); ++i) av[i] = static_cast<float>(i % 13);
  for (size_t i = 0; i < bv.size(); ++i) bv[i] = static_cast<float>(i % 7) + 1;
  Tensor a = Tensor::from_vector<float>({2, 150000}, av), b = Tensor::from_vector<float>({150000}, bv);
  auto y = run("g (float[2,150000] A, float[150000] B) => (float[2,150000] Y) { Y = Div(A, B) }", {{"A", a}, {"B", b}});
  auto z = run("g (float[150000] B, float[2,150000] A) => (float[2,150000] Y) { Y = Mul(B, A) }", {{"A", a}, {"B", b}});
  for (int64_t i = 0; i < y.numel(); i += 997) {
    EXPECT_EQ(y.data<float>()[i], av[i] / bv[i % 150000]);
    EXPECT_EQ(z.data<float>()[i], av[i] * bv[i % 150000]);
  }
}

TEST(Binary, LegacyBroadcastAttributes) {
  Tensor a = Tensor::from_vector<float>({2, 3, 2}, {0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1});
  Tensor b = Tensor::from_vector<float>({3}, {10, 20, 30});
  auto y = run("g (float[2,3,2] A, float[3] B) => (float[2,3,2] Y) { Y = Add<broadcast = 1, axis = 1>(A, B) }",
               {{"A", a}, {"B", b}}, 6);
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{10, 10, 20, 20, 30, 30, 11, 11, 21, 21, 31, 31}));
  EXPECT_THROW(run("g (float[2,3,2] A, float[3] B) => (float[2,3,2] Y) { Y = Add(A, B) }", {{"A", a}, {"B", b}}, 6),
               Error);
}

TEST(Binary, PReluSlopeIsPerChannelBeforeOpset7) {
  Tensor x = Tensor::from_vector<float>({1, 2, 2}, {-1, -1, -1, 2});
  Tensor s = Tensor::from_vector<float>({2}, {0.5f, 0.25f});
  auto y6 = run("g (float[1,2,2] X, float[2] S) => (float[1,2,2] Y) { Y = PRelu(X, S) }", {{"X", x}, {"S", s}}, 6);
  EXPECT_EQ(y6.to_vector<float>(), (std::vector<float>{-0.5f, -0.5f, -0.25f, 2}));
  auto y9 = run("g (float[1,2,2] X, float[2] S) => (float[1,2,2] Y) { Y = PRelu(X, S) }", {{"X", x}, {"S", s}}, 9);
  EXPECT_EQ(y9.to_vector<float>(), (std::vector<float>{-0.5f, -0.25f, -0.5f, 2}));
  Tensor big = Tensor::from_vector<float>({2, 2, 2}, std::vector<float>(8, 1.f));
  EXPECT_THROW(run("g (float[1,2,2] X, float[2,2,2] S) => (float[1,2,2] Y) { Y = PRelu(X, S) }", {{"X", x}, {"S", big}}),
               Error);
}

TEST(Binary, PowIntegerAndMixedTypes) {
  Tensor base = Tensor::from_vector<int64_t>({4}, {3, 2, -1, 1});
  Tensor e = Tensor::from_vector<int64_t>({4}, {40, -1, -3, -5});
  EXPECT_EQ(run("g (int64[4] A, int64[4] B) => (int64[4] Y) { Y = Pow(A, B) }", {{"A", base}, {"B", e}}).to_vector<int64_t>(),
            (std::vector<int64_t>{static_cast<int64_t>(12157665459056928801ULL), 0, -1, 1}));  // 3^40 wraps
  Tensor ef = Tensor::from_vector<float>({4}, {0.5f, 2.f, 2.f, 3.f});
  EXPECT_EQ(run("g (int64[4] A, float[4] B) => (int64[4] Y) { Y = Pow(A, B) }", {{"A", base}, {"B", ef}}).to_vector<int64_t>(),
            (std::vector<int64_t>{1, 4, 1, 1}));
}

TEST(Binary, BitShiftBeyondWidthGivesZero) {
  Tensor a = Tensor::from_vector<uint8_t>({3}, {0xff, 0x81, 1});
  Tensor b = Tensor::from_vector<uint8_t>({3}, {8, 1, 7});
  EXPECT_EQ(run("g (uint8[3] A, uint8[3] B) => (uint8[3] Y) { Y = BitShift<direction = \"LEFT\">(A, B) }", {{"A", a}, {"B", b}})
                .to_vector<uint8_t>(),
            (std::vector<uint8_t>{0, 2, 128}));
}

TEST(Binary, MaxPropagatesNaNAndSumBroadcastsManyInputs) {
  float nan = std::nanf("");
  Tensor a = Tensor::from_vector<float>({3}, {nan, 1, 2});
  Tensor b = Tensor::from_vector<float>({3}, {0, nan, 1});
  auto m = run("g (float[3] A, float[3] B) => (float[3] Y) { Y = Max(A, B) }", {{"A", a}, {"B", b}}).to_vector<float>();
  EXPECT_TRUE(std::isnan(m[0]) && std::isnan(m[1]));
  EXPECT_EQ(m[2], 2.f);
  Tensor c = Tensor::from_vector<float>({2, 1}, {100, 200});
  auto s = run("g (float[3] A, float[2,1] C, float[1] D) => (float[2,3] Y) { Y = Mean(A, C, D) }",
               {{"A", Tensor::from_vector<float>({3}, {0, 3, 6})}, {"C", c}, {"D", Tensor::from_vector<float>({1}, {3})}});
  EXPECT_EQ(s.to_vector<float>(), (std::vector<float>{103.f / 3, 106.f / 3, 109.f / 3, 203.f / 3, 206.f / 3, 209.f / 3}));
}

TEST(Binary, WhereBroadcastsAllThree) {
  Tensor c = Tensor::from_vector<bool>({2, 1}, {true, false});
  Tensor x = Tensor::from_vector<int64_t>({3}, {1, 2, 3});
  Tensor y = Tensor::from_vector<int64_t>({1}, {-1});
  EXPECT_EQ(run("g (bool[2,1] C, int64[3] X, int64[1] Z) => (int64[2,3] Y) { Y = Where(C, X, Z) }",
                {{"C", c}, {"X", x}, {"Z", y}})
                .to_vector<int64_t>(),
            (std::vector<int64_t>{1, 2, 3, -1, -1, -1}));
}
