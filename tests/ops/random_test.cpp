// Behaviour of the random family (Dropout, RandomUniform/Normal, Multinomial) that the ONNX
// backend data does not cover: seeds, older opsets and invalid ratios.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;
using test::expect_close;
using test::expect_error;
using test::iota_values;
using test::to_tensor;

TEST(Dropout, TrainingMaskIsSeededAndScalesKeptValues) {
  Model model = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[1000] X, float R, bool T) => (float[1000] Y, bool[1000] M) { Y, M = Dropout (X, R, T) }
  )");
  Tensor x = to_tensor<float>({1000}, iota_values(1000, 1.f));
  std::map<std::string, Tensor> feeds{{"X", x}, {"R", Tensor::scalar<float>(0.25f)}, {"T", Tensor::scalar<bool>(true)}};
  InferenceSession a(model, {.seed = 42}), b(model, {.seed = 42}), c(model, {.seed = 43});
  auto ra = a.run(feeds), rb = b.run(feeds), rc = c.run(feeds);
  std::vector<bool> ma(1000), mb(1000), mc(1000);
  int kept = 0;
  for (int i = 0; i < 1000; ++i) {
    ma[i] = ra["M"].data<bool>()[i], mb[i] = rb["M"].data<bool>()[i], mc[i] = rc["M"].data<bool>()[i];
    kept += ma[i];
    EXPECT_FLOAT_EQ(ra["Y"].data<float>()[i], ma[i] ? (i + 1) / 0.75f : 0.f);
  }
  EXPECT_EQ(ma, mb);
  EXPECT_NE(ma, mc);
  EXPECT_NEAR(kept, 750, 60);
}

// Threads fill the mask in chunks from a counter-based stream: the same seed gives the same
// mask at any thread count, and the kept fraction is 1 - ratio within sampling error.
TEST(Dropout, MaskIsTheSameAtEveryThreadCount) {
  Model model = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[200000] X, float R, bool T) => (bool[200000] M) { Y, M = Dropout (X, R, T) }
  )");
  std::map<std::string, Tensor> feeds{
      {"X", Tensor(DType::Float, {200000})}, {"R", Tensor::scalar<float>(0.3f)}, {"T", Tensor::scalar<bool>(true)}};
  InferenceSession one(model, {.threads = 1, .seed = 9});
  const auto serial = one.run(feeds)["M"].to_vector<bool>();
  InferenceSession two(model, {.threads = 2, .seed = 9});
  const auto first = two.run(feeds)["M"].to_vector<bool>();
  EXPECT_EQ(first, serial);
  EXPECT_NE(two.run(feeds)["M"].to_vector<bool>(), first);  // each run draws a new stream
  const double kept = static_cast<double>(std::count(first.begin(), first.end(), true)) / 200000;
  EXPECT_NEAR(kept, 0.7, 5 * std::sqrt(0.7 * 0.3 / 200000));
}

TEST(Dropout, SeedAttributeMakesNodeIndependentOfSessionSeed) {
  Model model = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[64] X, float R, bool T) => (bool[64] M) { Y, M = Dropout <seed = 5> (X, R, T) }
  )");
  std::map<std::string, Tensor> feeds{
      {"X", Tensor(DType::Float, {64})}, {"R", Tensor::scalar<float>(0.5f)}, {"T", Tensor::scalar<bool>(true)}};
  InferenceSession a(model, {.seed = 1}), b(model, {.seed = 2});
  EXPECT_EQ(a.run(feeds)["M"].to_vector<bool>(), b.run(feeds)["M"].to_vector<bool>());
}

TEST(Dropout, Opset7IsIdentityWithFloatMask) {
  Model model = Model::from_text(R"(
    <ir_version: 3, opset_import: ["" : 7]>
    g (float[3] X) => (float[3] Y, float[3] M) { Y, M = Dropout <ratio = 0.5> (X) }
  )");
  InferenceSession session(model);
  auto out = session.run({{"X", to_tensor<float>({3}, {1, 2, 3})}});
  EXPECT_EQ(out["Y"].to_vector<float>(), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(out["M"].to_vector<float>(), (std::vector<float>{1, 1, 1}));
}

TEST(Dropout, RejectsRatioOutsideUnitInterval) {
  Model model = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[3] X, float R, bool T) => (float[3] Y) { Y = Dropout (X, R, T) }
  )");
  InferenceSession session(model);
  expect_error(
      [&] {
        session.run(
            {{"X", Tensor(DType::Float, {3})}, {"R", Tensor::scalar<float>(1.5f)}, {"T", Tensor::scalar<bool>(true)}});
      },
      "ratio must be in [0, 1]");
}

TEST(RandomOps, ShapesRangesAndSeeds) {
  Model model = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 15]>
    g (float[4,5] X) => (double[3,4] U, float[4,5] N, int64[4,8] S) {
      U = RandomUniform <shape = [3, 4], dtype = 11, low = 2.0, high = 3.0> ()
      N = RandomNormalLike <seed = 3.0> (X)
      S = Multinomial <sample_size = 8, dtype = 7> (X)
    }
  )");
  InferenceSession a(model, {.seed = 1}), b(model, {.seed = 2});
  Tensor x = to_tensor<float>({4, 5}, {0, 0, 0, 0, -1e9f, 0, -1e9f, -1e9f, -1e9f, -1e9f, 1, 1, 1, 1, 1, 5, 4, 3, 2, 1});
  auto ra = a.run({{"X", x}}), rb = b.run({{"X", x}});
  for (double u : ra["U"].to_vector<double>()) EXPECT_TRUE(u >= 2.0 && u < 3.0) << u;
  EXPECT_NE(ra["U"].to_vector<double>(), rb["U"].to_vector<double>());
  EXPECT_EQ(ra["N"].to_vector<float>(), rb["N"].to_vector<float>());  // own seed
  std::vector<int64_t> s = ra["S"].to_vector<int64_t>();
  for (size_t i = 0; i < s.size(); ++i) {
    EXPECT_TRUE(s[i] >= 0 && s[i] < 5);
    if (i / 8 == 0) {
      EXPECT_NE(s[i], 4);  // zero probability
    }
    if (i / 8 == 1) {
      EXPECT_EQ(s[i], 0);  // the only possible class
    }
  }
}
