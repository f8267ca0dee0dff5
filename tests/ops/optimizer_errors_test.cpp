// Optimizer op errors: counts, shapes, dtypes, steps, attributes, aliasing.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "onnxtrain/npy.h"
#include "onnxtrain/onnxtrain.h"
#include "tests/support/optimizer_node.h"

using namespace onnxtrain;
using namespace onnxtrain::test::optim;
using test::expect_error;

namespace {

// ---- errors ----------------------------------------------------------------------------------

TEST(OptimizerErrors, CountsShapesTypesStepsAndAttributes) {
  auto run_text = [](const std::string& body, const std::string& decl, const std::string& outs,
                     std::map<std::string, Tensor> feeds, const std::string& domain = "ai.onnxtrain") {
    Model model = Model::from_text(test::model_header(17, {{domain, 1}}) + "g (" + decl + ") => (" + outs + ") {\n" +
                                   body + "\n}");
    InferenceSession session(model);
    session.run(feeds);
  };
  Tensor r = Tensor::scalar<float>(0.1f), t1 = Tensor::scalar<int64_t>(1);
  auto v3 = [] { return Tensor::from_vector<float>({3}, {1.f, 2.f, 3.f}); };
  // Momentum buffers missing: 2 + 2k inputs where 2 + 3k are needed.
  expect_error([&] {
    run_text("Xn, Yn = ai.onnxtrain.SGD <momentum = 0.9> (R, T, X, Y, G, H)",
             "float R, int64 T, float[3] X, float[3] Y, float[3] G, float[3] H", "float[3] Xn, float[3] Yn",
             {{"R", r}, {"T", t1}, {"X", v3()}, {"Y", v3()}, {"G", v3()}, {"H", v3()}});
  }, "momentum_buffer");
  // Output count.
  expect_error([&] {
    run_text("Xn = ai.onnxtrain.Adagrad (R, T, X, G, S)", "float R, int64 T, float[3] X, float[3] G, float[3] S",
             "float[3] Xn", {{"R", r}, {"T", t1}, {"X", v3()}, {"G", v3()}, {"S", v3()}});
  }, "outputs");
  // Gradient shape.
  expect_error([&] {
    run_text("Xn = ai.onnxtrain.SGD (R, T, X, G)", "float R, int64 T, float[3] X, float[2] G", "float[3] Xn",
             {{"R", r}, {"T", t1}, {"X", v3()}, {"G", Tensor::from_vector<float>({2}, {1.f, 2.f})}});
  }, "G[0] has shape [2] but X[0] has [3]");
  // Gradient dtype.
  expect_error([&] {
    run_text("Xn = ai.onnxtrain.SGD (R, T, X, G)", "float R, int64 T, float[3] X, double[3] G", "float[3] Xn",
             {{"R", r}, {"T", t1}, {"X", v3()}, {"G", Tensor::from_vector<double>({3}, {1, 2, 3})}});
  }, "G[0] is float64 but X[0] is float32");
  // Integer parameters.
  expect_error([&] {
    run_text("Xn = ai.onnxtrain.SGD (R, T, X, G)", "float R, int64 T, int64[3] X, int64[3] G", "int64[3] Xn",
             {{"R", r}, {"T", t1}, {"X", Tensor::from_vector<int64_t>({3}, {1, 2, 3})},
              {"G", Tensor::from_vector<int64_t>({3}, {1, 2, 3})}});
  }, "must be float or double");
  // Non-scalar learning rate, non-int64 step.
  expect_error([&] {
    run_text("Xn = ai.onnxtrain.SGD (R, T, X, G)", "float[2] R, int64 T, float[3] X, float[3] G", "float[3] Xn",
             {{"R", Tensor::from_vector<float>({2}, {0.1f, 0.2f})}, {"T", t1}, {"X", v3()}, {"G", v3()}});
  }, "learning rate R must be a scalar");
  expect_error([&] {
    run_text("Xn = ai.onnxtrain.SGD (R, T, X, G)", "float R, int32 T, float[3] X, float[3] G", "float[3] Xn",
             {{"R", r}, {"T", Tensor::scalar<int32_t>(1)}, {"X", v3()}, {"G", v3()}});
  }, "step T must be int64");
  // Steps are 1-based for the torch-style ops; negative learning rates are rejected.
  expect_error([&] {
    run_text("Xn = ai.onnxtrain.SGD (R, T, X, G)", "float R, int64 T, float[3] X, float[3] G", "float[3] Xn",
             {{"R", r}, {"T", Tensor::scalar<int64_t>(0)}, {"X", v3()}, {"G", v3()}});
  }, "step T must be >= 1");
  expect_error([&] {
    run_text("Xn = ai.onnxtrain.SGD (R, T, X, G)", "float R, int64 T, float[3] X, float[3] G", "float[3] Xn",
             {{"R", Tensor::scalar<float>(-0.1f)}, {"T", t1}, {"X", v3()}, {"G", v3()}});
  }, "invalid learning rate");
  // Attribute checks as torch.optim makes them.
  expect_error([&] {
    run_text("Xn, Bn = ai.onnxtrain.SGD <momentum = 0.9, dampening = 0.1, nesterov = 1> (R, T, X, G, B)",
             "float R, int64 T, float[3] X, float[3] G, float[3] B", "float[3] Xn, float[3] Bn",
             {{"R", r}, {"T", t1}, {"X", v3()}, {"G", v3()}, {"B", v3()}});
  }, "nesterov momentum requires");
  expect_error([&] {
    run_text("Xn, Mn, Vn = ai.onnxtrain.Adam <beta2 = 1.0> (R, T, X, G, M, V)",
             "float R, int64 T, float[3] X, float[3] G, float[3] M, float[3] V", "float[3] Xn, float[3] Mn, float[3] Vn",
             {{"R", r}, {"T", t1}, {"X", v3()}, {"G", v3()}, {"M", v3()}, {"V", v3()}});
  }, "invalid beta2");
  // Written buffers may not share memory (X fed again as its own state).
  expect_error([&] {
    Tensor x = v3();
    run_text("Xn, Sn = ai.onnxtrain.Adagrad (R, T, X, G, S)", "float R, int64 T, float[3] X, float[3] G, float[3] S",
             "float[3] Xn, float[3] Sn", {{"R", r}, {"T", t1}, {"X", x}, {"G", v3()}, {"S", x}});
  }, "share memory");
  // ONNX Momentum: every attribute is required; mode is standard or nesterov.
  const std::string p = "ai.onnx.preview.training";
  expect_error([&] {
    run_text("Xn, Vn = ai.onnx.preview.training.Momentum <alpha = 0.9, beta = 0.1, norm_coefficient = 0.0> (R, T, X, G, V)",
             "float R, int64 T, float[3] X, float[3] G, float[3] V", "float[3] Xn, float[3] Vn",
             {{"R", r}, {"T", t1}, {"X", v3()}, {"G", v3()}, {"V", v3()}}, p);
  }, "'mode' is missing");
  expect_error([&] {
    run_text("Xn, Vn = ai.onnx.preview.training.Momentum <alpha = 0.9, beta = 0.1, norm_coefficient = 0.0, mode = \"heavy\"> (R, T, X, G, V)",
             "float R, int64 T, float[3] X, float[3] G, float[3] V", "float[3] Xn, float[3] Vn",
             {{"R", r}, {"T", t1}, {"X", v3()}, {"G", v3()}, {"V", v3()}}, p);
  }, "\"standard\" or \"nesterov\"");
  expect_error([&] {
    run_text("Xn, Vn = ai.onnx.preview.training.Adam (R, T, X, G, V)",
             "float R, int64 T, float[3] X, float[3] G, float[3] V", "float[3] Xn, float[3] Vn",
             {{"R", r}, {"T", t1}, {"X", v3()}, {"G", v3()}, {"V", v3()}}, p);
  }, "expects inputs (R, T, X..., G..., V..., H...)");
}

}  // namespace
