// TrainingOptions::conv_algorithm: "auto" takes oneDNN's Winograd kernel for the gradients of
// 3x3 stride-1 convolutions with enough channels and output tiles, "direct" keeps the direct
// algorithm; both agree to float32 rounding, and the per-node marker never reaches a file.
// The reference test (tests/reference/conv_reference_test.cpp) checks Winograd against
// float64, the family harness (docs/numerics.md) a whole resnet18 against PyTorch.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <stdlib.h>

#include "onnxtrain/onnxtrain.h"
#include "ops/dnnl_utils.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

// Y = Relu(Conv(X, W, B)) with 32 channels over 64x64 at batch 2: 512 output tiles, on
// Winograd's side of the rule.
Model make_model() {
  std::mt19937 rng(5);
  std::normal_distribution<double> n(0.0, std::sqrt(2.0 / (32 * 9)));
  std::ostringstream w, b;
  for (int i = 0; i < 32 * 32 * 9; ++i) w << (i ? ", " : "") << n(rng);
  for (int i = 0; i < 32; ++i) b << (i ? ", " : "") << 0.01 * (i % 7);
  return Model::from_text(R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[2, 32, 64, 64] X) => (float[2, 32, 64, 64] Y)
<float[32, 32, 3, 3] W = {)" + w.str() + "}, float[32] B = {" + b.str() + R"(}>
{
  c = Conv <pads = [1, 1, 1, 1]> (X, W, B)
  Y = Relu (c)
}
)");
}

std::map<std::string, Tensor> batch() {
  return {{"X", test::as_float({2, 32, 64, 64}, test::random_values(2 * 32 * 64 * 64, -1, 1, 3))},
          {"T", test::as_float({2, 32, 64, 64}, test::random_values(2 * 32 * 64 * 64, 0, 1, 4))}};
}

TrainingOptions options(const std::string& algorithm) {
  TrainingOptions o;
  o.loss.kind = "mse";
  o.loss.target = "T";
  o.optimizer.kind = "sgd";
  o.optimizer.lr = 0.1;
  o.conv_algorithm = algorithm;
  return o;
}

// oneDNN 2.6 has its Winograd kernel for AVX-512 only.
bool winograd_cpu() { return ops::effective_cpu_isa_name().find("avx512_core") != std::string::npos; }

TEST(ConvAlgorithm, AutoAndDirectAgreeToFloat32Rounding) {
  Model a = make_model(), d = make_model();
  TrainingSession automatic(a, options("auto")), direct(d, options("direct"));
  const StepGradients ga = automatic.compute_gradients(batch()), gd = direct.compute_gradients(batch());
  EXPECT_EQ(ga.loss, gd.loss) << "the forward is direct either way";
  for (const char* name : {"W", "B"}) EXPECT_LT(test::scaled_error(ga.gradients.at(name), gd.gradients.at(name)), 1e-5) << name;
  if (!winograd_cpu()) GTEST_SKIP() << "no Winograd kernel on " << ops::effective_cpu_isa_name() << ": both were direct";
  EXPECT_GT(test::scaled_error(ga.gradients.at("W"), gd.gradients.at("W")), 0) << "auto computed exactly like direct";
}

TEST(ConvAlgorithm, DirectIsPerSessionAndNeverReachesAFile) {
  std::string pattern = (std::filesystem::temp_directory_path() / "conv_algorithm.XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const std::filesystem::path dir = pattern;
  Model a = make_model(), d = make_model(), a2 = make_model();
  TrainingSession first(a, options("auto")), direct(d, options("direct"));
  const double before = first.compute_gradients(batch()).loss;
  direct.train_step(batch());
  TrainingSession later(a2, options("auto"));
  EXPECT_EQ(later.compute_gradients(batch()).loss, before);
  direct.export_training_graph((dir / "graph.onnx").string());
  direct.export_inference_model((dir / "model.onnx").string());
  for (const char* name : {"graph.onnx", "model.onnx"}) {
    std::ifstream in(dir / name, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    ASSERT_FALSE(bytes.empty()) << name;
    EXPECT_EQ(bytes.find(graph::kConvAlgorithmAttr), std::string::npos) << name;
  }
  std::filesystem::remove_all(dir);
}

TEST(ConvAlgorithm, AnUnknownNameIsRefusedWithTheChoices) {
  Model m = make_model();
  try {
    TrainingSession s(m, options("winograd"));
    FAIL() << "accepted conv_algorithm 'winograd'";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("conv_algorithm"), std::string::npos) << what;
    EXPECT_NE(what.find("direct"), std::string::npos) << what;
  }
}

}  // namespace
