// Behaviour of the normalization, resize and random families that the ONNX backend data
// does not cover: older opsets, double, training outputs, own-loop fallbacks, plan
// caching, seeds and invalid inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

std::vector<float> iota_values(size_t n, float start = 0.f, float step = 1.f) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = start + step * static_cast<float>(i);
  return v;
}

std::vector<float> pseudo_random(size_t n, uint32_t seed = 1) {
  std::vector<float> v(n);
  for (auto& x : v) {
    seed = seed * 1664525u + 1013904223u;
    x = static_cast<float>(seed >> 8) / static_cast<float>(1 << 24) * 4.f - 2.f;
  }
  return v;
}

template <typename T>
Tensor to_tensor(Shape shape, const std::vector<float>& v) {
  return Tensor::from_vector<T>(std::move(shape), std::vector<T>(v.begin(), v.end()));
}

void expect_close(const Tensor& actual, const Tensor& expected, double rtol = 1e-4, double atol = 1e-5) {
  std::string report = test::compare_tensors(actual, expected, rtol, atol);
  EXPECT_TRUE(report.empty()) << report;
}

template <typename F>
void expect_error(F f, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "expected an error mentioning '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(BatchNormalization, Opset9TrainingOutputsRunningAndSavedStatistics) {
  Model model = Model::from_text(R"(
    <ir_version: 4, opset_import: ["" : 9]>
    g (float[2,3,4] X, float[3] S, float[3] B, float[3] M, float[3] V)
      => (float[2,3,4] Y, float[3] RM, float[3] RV, float[3] SM, float[3] SV) {
      Y, RM, RV, SM, SV = BatchNormalization <momentum = 0.8, epsilon = 0.001> (X, S, B, M, V)
    }
  )");
  std::vector<float> x = pseudo_random(24);
  std::vector<float> s{1.f, 2.f, 0.5f}, b{0.f, 1.f, -1.f}, m{0.1f, 0.2f, 0.3f}, v{1.f, 2.f, 3.f};
  InferenceSession session(model);
  auto out = session.run({{"X", to_tensor<float>({2, 3, 4}, x)},
                          {"S", to_tensor<float>({3}, s)},
                          {"B", to_tensor<float>({3}, b)},
                          {"M", to_tensor<float>({3}, m)},
                          {"V", to_tensor<float>({3}, v)}});
  std::vector<float> y(24), rm(3), rv(3), sm(3), sv(3);
  for (int c = 0; c < 3; ++c) {
    double mean = 0, var = 0;
    for (int n = 0; n < 2; ++n)
      for (int i = 0; i < 4; ++i) mean += x[(n * 3 + c) * 4 + i] / 8.0;
    for (int n = 0; n < 2; ++n)
      for (int i = 0; i < 4; ++i) var += std::pow(x[(n * 3 + c) * 4 + i] - mean, 2) / 8.0;
    for (int n = 0; n < 2; ++n)
      for (int i = 0; i < 4; ++i) {
        int k = (n * 3 + c) * 4 + i;
        y[k] = static_cast<float>((x[k] - mean) / std::sqrt(var + 0.001) * s[c] + b[c]);
      }
    rm[c] = static_cast<float>(m[c] * 0.8 + mean * 0.2);
    rv[c] = static_cast<float>(v[c] * 0.8 + var * 0.2);
    sm[c] = static_cast<float>(mean);
    sv[c] = static_cast<float>(var);
  }
  expect_close(out["Y"], to_tensor<float>({2, 3, 4}, y));
  expect_close(out["RM"], to_tensor<float>({3}, rm));
  expect_close(out["RV"], to_tensor<float>({3}, rv));
  expect_close(out["SM"], to_tensor<float>({3}, sm));
  expect_close(out["SV"], to_tensor<float>({3}, sv));
}

TEST(BatchNormalization, DoubleTrainingModeMatchesFloat) {
  const char* text = R"(
    <ir_version: 8, opset_import: ["" : 15]>
    g (%T[2,2,3] X, %T[2] S, %T[2] B, %T[2] M, %T[2] V) => (%T[2,2,3] Y, %T[2] RM, %T[2] RV) {
      Y, RM, RV = BatchNormalization <training_mode = 1> (X, S, B, M, V)
    }
  )";
  auto make = [&](const std::string& type) {
    std::string t = text;
    for (size_t p; (p = t.find("%T")) != std::string::npos;) t.replace(p, 2, type);
    return Model::from_text(t);
  };
  std::vector<float> x = pseudo_random(12, 7), s{1.5f, -1.f}, b{0.5f, 0.f}, m{0.f, 1.f}, v{1.f, 0.5f};
  Model mf = make("float"), md = make("double");
  InferenceSession sf(mf), sd(md);
  auto of = sf.run({{"X", to_tensor<float>({2, 2, 3}, x)},
                    {"S", to_tensor<float>({2}, s)},
                    {"B", to_tensor<float>({2}, b)},
                    {"M", to_tensor<float>({2}, m)},
                    {"V", to_tensor<float>({2}, v)}});
  auto od = sd.run({{"X", to_tensor<double>({2, 2, 3}, x)},
                    {"S", to_tensor<double>({2}, s)},
                    {"B", to_tensor<double>({2}, b)},
                    {"M", to_tensor<double>({2}, m)},
                    {"V", to_tensor<double>({2}, v)}});
  for (const char* name : {"Y", "RM", "RV"}) {
    std::vector<double> d = od[name].to_vector<double>();
    std::vector<float> f = of[name].to_vector<float>();
    ASSERT_EQ(d.size(), f.size());
    for (size_t i = 0; i < d.size(); ++i) EXPECT_NEAR(d[i], f[i], 1e-4) << name << "[" << i << "]";
  }
}

TEST(BatchNormalization, Opset7NonSpatialUsesPerActivationStatistics) {
  Model model = Model::from_text(R"(
    <ir_version: 3, opset_import: ["" : 7]>
    g (float[1,2,2] X, float[2,2] S, float[2,2] B, float[2,2] M, float[2,2] V) => (float[1,2,2] Y) {
      Y = BatchNormalization <spatial = 0, epsilon = 0.0> (X, S, B, M, V)
    }
  )");
  InferenceSession session(model);
  auto out = session.run({{"X", to_tensor<float>({1, 2, 2}, {1, 2, 3, 4})},
                          {"S", to_tensor<float>({2, 2}, {1, 2, 3, 4})},
                          {"B", to_tensor<float>({2, 2}, {0, 0, 0, 1})},
                          {"M", to_tensor<float>({2, 2}, {1, 1, 1, 1})},
                          {"V", to_tensor<float>({2, 2}, {1, 4, 1, 4})}});
  expect_close(out["Y"], to_tensor<float>({1, 2, 2}, {0, 1, 6, 7}));
}

TEST(BatchNormalization, RejectsParametersOfWrongSize) {
  Model model = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 15]>
    g (float[2,3] X, float[2] S, float[3] B, float[3] M, float[3] V) => (float[2,3] Y) {
      Y = BatchNormalization (X, S, B, M, V)
    }
  )");
  InferenceSession session(model);
  Tensor x(DType::Float, {2, 3}), p2(DType::Float, {2}), p3(DType::Float, {3});
  expect_error([&] { session.run({{"X", x}, {"S", p2}, {"B", p3}, {"M", p3}, {"V", p3}}); }, "3 channels");
}

TEST(LayerNormalization, DoubleWithBroadcastScaleAndDoubleStash) {
  Model model = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (double[2,2,3] X, double[3] S) => (double[2,2,3] Y, double[2,1,1] Mean, double[2,1,1] Inv) {
      Y, Mean, Inv = LayerNormalization <axis = 1, stash_type = 11> (X, S)
    }
  )");
  std::vector<float> x = pseudo_random(12, 3);
  std::vector<float> s{2.f, 1.f, 0.5f};
  InferenceSession session(model);
  auto out = session.run({{"X", to_tensor<double>({2, 2, 3}, x)}, {"S", to_tensor<double>({3}, s)}});
  std::vector<double> y(12), mean(2), inv(2);
  for (int o = 0; o < 2; ++o) {
    double m = 0, v = 0;
    for (int i = 0; i < 6; ++i) m += x[o * 6 + i] / 6.0;
    for (int i = 0; i < 6; ++i) v += std::pow(x[o * 6 + i] - m, 2) / 6.0;
    mean[o] = m;
    inv[o] = 1 / std::sqrt(v + 1e-5);
    for (int i = 0; i < 6; ++i) y[o * 6 + i] = (x[o * 6 + i] - m) * inv[o] * s[i % 3];
  }
  expect_close(out["Y"], Tensor::from_vector<double>({2, 2, 3}, y));
  expect_close(out["Mean"], Tensor::from_vector<double>({2, 1, 1}, mean));
  expect_close(out["Inv"], Tensor::from_vector<double>({2, 1, 1}, inv));
}

TEST(LRN, EvenSizeUsesOnnxAsymmetricWindow) {
  // size 2: channel c sums c and c+1 (floor((2-1)/2) = 0 below, ceil((2-1)/2) = 1 above).
  Model model = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[1,3,1,1] X) => (float[1,3,1,1] Y) { Y = LRN <size = 2, alpha = 1.0, beta = 1.0, bias = 1.0> (X) }
  )");
  InferenceSession session(model);
  auto out = session.run({{"X", to_tensor<float>({1, 3, 1, 1}, {1, 2, 3})}});
  expect_close(out["Y"], to_tensor<float>({1, 3, 1, 1}, {1 / (1 + 2.5f), 2 / (1 + 6.5f), 3 / (1 + 4.5f)}));
}

TEST(InstanceNormalization, DoubleMatchesDefinition) {
  Model model = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 6]>
    g (double[2,2,3] X, double[2] S, double[2] B) => (double[2,2,3] Y) { Y = InstanceNormalization (X, S, B) }
  )");
  std::vector<float> x = pseudo_random(12, 5);
  InferenceSession session(model);
  auto out = session.run({{"X", to_tensor<double>({2, 2, 3}, x)},
                          {"S", to_tensor<double>({2}, {2, 3})},
                          {"B", to_tensor<double>({2}, {1, -1})}});
  std::vector<double> y(12);
  for (int k = 0; k < 4; ++k) {
    double m = 0, v = 0;
    for (int i = 0; i < 3; ++i) m += x[k * 3 + i] / 3.0;
    for (int i = 0; i < 3; ++i) v += std::pow(x[k * 3 + i] - m, 2) / 3.0;
    for (int i = 0; i < 3; ++i)
      y[k * 3 + i] = (x[k * 3 + i] - m) / std::sqrt(v + 1e-5) * (k % 2 ? 3 : 2) + (k % 2 ? -1 : 1);
  }
  expect_close(out["Y"], Tensor::from_vector<double>({2, 2, 3}, y));
}

TEST(MeanVarianceNormalization, CustomAxes) {
  Model model = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[2,3] X) => (float[2,3] Y) { Y = MeanVarianceNormalization <axes = [0]> (X) }
  )");
  InferenceSession session(model);
  auto out = session.run({{"X", to_tensor<float>({2, 3}, {1, 2, 3, 3, 6, 3})}});
  expect_close(out["Y"], to_tensor<float>({2, 3}, {-1, -1, 0, 1, 1, 0}));
}

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

TEST(Resize, Opset10LinearIsAsymmetric) {
  Model model = Model::from_text(R"(
    <ir_version: 5, opset_import: ["" : 10]>
    g (float[1,3] X, float[2] S) => (float[1,6] Y) { Y = Resize <mode = "linear"> (X, S) }
  )");
  InferenceSession session(model);
  auto out = session.run({{"X", to_tensor<float>({1, 3}, {0, 2, 4})}, {"S", to_tensor<float>({2}, {1, 2})}});
  expect_close(out["Y"], to_tensor<float>({1, 6}, {0, 1, 2, 3, 4, 4}));
}

TEST(Resize, TrilinearOverThreeAxesAndChangingSizes) {
  Model model = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 13]>
    g (double[1,2,2,2] X, int64[4] Z) => (double[1,?,?,?] Y) {
      Y = Resize <mode = "linear", coordinate_transformation_mode = "align_corners"> (X, , , Z)
    }
  )");
  InferenceSession session(model);
  Tensor x = to_tensor<double>({1, 2, 2, 2}, iota_values(8));
  // align_corners keeps the corners, so a trilinear function of the index is reproduced.
  for (int64_t n : {3, 5}) {
    auto out = session.run({{"X", x}, {"Z", Tensor::from_vector<int64_t>({4}, {1, n, n, n})}});
    ASSERT_EQ(out["Y"].shape(), (Shape{1, n, n, n}));
    const double* y = out["Y"].data<double>();
    const double step = 1.0 / static_cast<double>(n - 1);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t k = 0; k < n; ++k)
          EXPECT_NEAR(y[(i * n + j) * n + k], 4 * i * step + 2 * j * step + k * step, 1e-12);
  }
}

TEST(Resize, NearestOnIntegersAndUpsample7) {
  Model model = Model::from_text(R"(
    <ir_version: 3, opset_import: ["" : 7]>
    g (int32[1,2] X) => (int32[2,4] Y) { Y = Upsample <scales = [2.0, 2.0]> (X) }
  )");
  InferenceSession session(model);
  auto out = session.run({{"X", Tensor::from_vector<int32_t>({1, 2}, {7, 9})}});
  EXPECT_EQ(out["Y"].to_vector<int32_t>(), (std::vector<int32_t>{7, 7, 9, 9, 7, 7, 9, 9}));
}

TEST(Resize, RejectsBothScalesAndSizes) {
  Model model = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[1,2] X, float[2] S, int64[2] Z) => (float[?,?] Y) { Y = Resize (X, , S, Z) }
  )");
  InferenceSession session(model);
  expect_error(
      [&] {
        session.run({{"X", Tensor(DType::Float, {1, 2})},
                     {"S", to_tensor<float>({2}, {1, 2})},
                     {"Z", Tensor::from_vector<int64_t>({2}, {1, 4})}});
      },
      "scales and sizes are both given");
}

TEST(GridSample, DoubleBorderPaddingClampsOutsidePoints) {
  Model model = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 16]>
    g (double[1,1,2,2] X, double[1,1,3,2] G) => (double[1,1,1,3] Y) {
      Y = GridSample <padding_mode = "border", align_corners = 1> (X, G)
    }
  )");
  InferenceSession session(model);
  auto out = session.run({{"X", to_tensor<double>({1, 1, 2, 2}, {1, 2, 3, 4})},
                          {"G", to_tensor<double>({1, 1, 3, 2}, {-5, -5, 0, 0, 5, 5})}});
  expect_close(out["Y"], Tensor::from_vector<double>({1, 1, 1, 3}, {1, 2.5, 4}));
}

TEST(LRN, OneDnnMatchesOwnLoopForRanks3To5) {
  for (const char* dims : {"2,5,3", "2,5,3,2", "1,5,2,2,2"}) {
    auto make = [&](const std::string& type) {
      return Model::from_text(std::string(R"(<ir_version: 8, opset_import: ["" : 13]> g ()") + type + "[" + dims +
                              "] X) => (" + type + "[" + dims +
                              R"(] Y) { Y = LRN <size = 3, alpha = 0.5, beta = 0.75, bias = 2.0> (X) })");
    };
    Model mf = make("float"), md = make("double");
    InferenceSession sf(mf), sd(md);
    Shape shape;
    for (char ch : std::string(dims))
      if (ch != ',') shape.push_back(ch - '0');
    std::vector<float> x = pseudo_random(static_cast<size_t>(shape_numel(shape)), 11);
    auto yf = sf.run({{"X", to_tensor<float>(shape, x)}})["Y"].to_vector<float>();
    auto yd = sd.run({{"X", to_tensor<double>(shape, x)}})["Y"].to_vector<double>();
    for (size_t i = 0; i < yf.size(); ++i) EXPECT_NEAR(yf[i], yd[i], 1e-5) << dims << " [" << i << "]";
  }
}

TEST(Normalization, OneDnnMatchesOwnLoopForUnusualRanks) {
  struct Case {
    const char* op;
    const char* dims;
  };
  for (Case c : {Case{"BatchNormalization", "4,3"}, Case{"BatchNormalization", "2,3,2,1,2,2"},
                 Case{"InstanceNormalization", "2,3,4"}, Case{"InstanceNormalization", "1,3,2,2,2,2"}}) {
    const bool bn = std::string(c.op) == "BatchNormalization";
    auto make = [&](const std::string& t) {
      std::string params = bn ? ", " + t + "[3] M, " + t + "[3] V" : "";
      return Model::from_text(std::string(R"(<ir_version: 8, opset_import: ["" : 15]> g ()") + t + "[" + c.dims +
                              "] X, " + t + "[3] S, " + t + "[3] B" + params + ") => (" + t + "[" + c.dims +
                              "] Y) { Y = " + c.op + (bn ? "(X, S, B, M, V) }" : "(X, S, B) }"));
    };
    Model mf = make("float"), md = make("double");
    InferenceSession sf(mf), sd(md);
    Shape shape;
    for (char ch : std::string(c.dims))
      if (ch != ',') shape.push_back(ch - '0');
    std::vector<float> x = pseudo_random(static_cast<size_t>(shape_numel(shape)), 13);
    std::vector<float> s{1.f, -2.f, 0.5f}, b{0.f, 1.f, 2.f}, m{0.1f, -0.2f, 0.3f}, v{1.f, 0.5f, 2.f};
    auto feeds = [&](auto tag) {
      using T = decltype(tag);
      std::map<std::string, Tensor> f{
          {"X", to_tensor<T>(shape, x)}, {"S", to_tensor<T>({3}, s)}, {"B", to_tensor<T>({3}, b)}};
      if (bn) f["M"] = to_tensor<T>({3}, m), f["V"] = to_tensor<T>({3}, v);
      return f;
    };
    auto yf = sf.run(feeds(float{}))["Y"].to_vector<float>();
    auto yd = sd.run(feeds(double{}))["Y"].to_vector<double>();
    for (size_t i = 0; i < yf.size(); ++i) EXPECT_NEAR(yf[i], yd[i], 1e-4) << c.op << " " << c.dims << " [" << i << "]";
  }
}
