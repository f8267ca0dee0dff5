// Behaviour of the binary family (binary.cpp, variadic_where_prelu.cpp) that the ONNX backend
// data does not cover: integer edge cases (division by zero, wrap-around), broadcasting fast
// paths, legacy (opset < 7) broadcast attributes.
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

constexpr int32_t kMin32 = std::numeric_limits<int32_t>::min();

}  // namespace

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
