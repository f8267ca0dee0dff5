// Behaviour of the normalization family that the ONNX backend data does not cover: older
// opsets, double, training outputs, own-loop fallbacks, plan caching and invalid inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/node_case.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;
using test::expect_close;
using test::expect_error;
using test::iota_values;
using test::to_tensor;

namespace {

std::vector<float> pseudo_random(size_t n, uint32_t seed = 1) {
  std::vector<float> v(n);
  for (auto& x : v) {
    seed = seed * 1664525u + 1013904223u;
    x = static_cast<float>(seed >> 8) / static_cast<float>(1 << 24) * 4.f - 2.f;
  }
  return v;
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

// Training-mode BatchNormalization over a volume of 32768 values a channel, as in 3-D CNNs:
// the float32 gradients of scale and bias stay within float32 rounding of the exact ones.
// The loss sum(Y * T) makes dY = T exactly, so only the kernel's own sums can err; oneDNN's
// single-precision sums were ~1e-5 off here (4-5x PyTorch's error).
TEST(BatchNormalization, Float32GradientSumsOverLargeVolumesAreAccurate) {
  const std::string text = R"(
    <ir_version: 8, opset_import: ["" : 15]>
    g (%T[2,2,16,32,32] X, %T[2,2,16,32,32] W) => (%T L) <%T[2] S = {1.5, -0.5}, %T[2] B = {0.25, 0}, %T[2] M = {0, 0}, %T[2] V = {1, 1}> {
      Y, RM, RV = BatchNormalization <training_mode = 1> (X, S, B, M, V)
      P = Mul(Y, W)
      L = ReduceSum <keepdims = 0> (P)
    }
  )";
  auto make = [&](const std::string& type) {
    std::string t = text;
    for (size_t p; (p = t.find("%T")) != std::string::npos;) t.replace(p, 2, type);
    return Model::from_text(t);
  };
  const Shape shape = {2, 2, 16, 32, 32};
  const auto x = test::random_values(static_cast<size_t>(shape_numel(shape)), 2.0, 4.0, 5);
  const auto w = test::random_values(x.size(), -1.0, 1.0, 6);
  std::map<std::string, StepGradients> grads;
  for (const std::string type : {"float", "double"}) {
    Model model = make(type);
    TrainingOptions options;
    options.loss.kind = "output";
    options.loss.output = "L";
    TrainingSession session(model, options);
    // Both runs see the same (float-rounded) values.
    auto feed = [&](const std::vector<double>& v) {
      Tensor f = test::as_float(shape, v);
      return type == "float" ? f : Tensor::from_vector<double>(shape, f.as_double());
    };
    grads[type] = session.compute_gradients({{"X", feed(x)}, {"W", feed(w)}});
  }
  for (const char* name : {"S", "B"}) {
    const auto f = grads["float"].gradients.at(name).as_double(), d = grads["double"].gradients.at(name).as_double();
    for (size_t c = 0; c < d.size(); ++c) EXPECT_NEAR(f[c], d[c], 2e-7 * std::abs(d[c]) + 1e-9) << name << "[" << c << "]";
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

TEST(LRN, OneDnnMatchesOwnLoopForRanks3To5) {
  for (const char* dims : {"2,5,3", "2,5,3,2", "1,5,2,2,2"}) {
    auto make = [&](const std::string& type) {
      const std::string decl = type + "[" + dims + "] ";
      const test::NodeCase lrn{"LRN", "size = 3, alpha = 0.5, beta = 0.75, bias = 2.0", {decl + "X"}, {decl + "Y"}, 13};
      return Model::from_text(lrn.text());
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
      const std::string x = t + "[" + c.dims + "] ";
      test::NodeCase node{c.op, "", {x + "X", t + "[3] S", t + "[3] B"}, {x + "Y"}, 15};
      if (bn) node.inputs.insert(node.inputs.end(), {t + "[3] M", t + "[3] V"});
      return Model::from_text(node.text());
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
