// TrainingOptions::precision "bf16": Conv, ConvTranspose, MatMul and Gemm (forward and their
// gradient nodes) compute from bf16 inputs with float32 results, within bf16 rounding of
// float32; the marker is per session and never reaches a file.
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

// "{v, v, ...}" of n seeded values in [0, scale]: positive weights, inputs and (with targets
// far below the outputs) output gradients make every sum free of cancellation, so bf16's
// error relative to each result is bounded by the rounding of its terms (kBf16Bound).
std::string values(size_t n, uint32_t seed, double scale) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, scale);
  std::ostringstream s;
  s << "{";
  for (size_t i = 0; i < n; ++i) s << (i ? ", " : "") << u(rng);
  s << "}";
  return s.str();
}

// Every eligible op once, with the gradient forms they produce: Conv with bias (ConvGrad with
// dX, dW, dB), a strided ConvTranspose (ConvTransposeGrad), a MatMul whose weights broadcast
// along the batch (MatMulGrad's folded dB) and a Gemm with transB and a bias (Gemm gradients).
// `extra_attr` goes into the Conv's attribute list.
std::string model_text(const std::string& extra_attr = "") {
  return std::string(R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[4, 3, 8, 8] X) => (float[4, 5] Y)
<float[6, 3, 3, 3] W1 = )") + values(162, 1, 0.3) + ", float[6] B1 = " + values(6, 2, 0.1) +
         ", float[6, 4, 2, 2] W2 = " + values(96, 3, 0.3) + ", float[256, 8] W3 = " + values(2048, 4, 0.1) +
         ", float[5, 32] W4 = " + values(160, 5, 0.2) + ", float[5] B4 = " + values(5, 6, 0.1) + R"(, int64[3] S = {4, 4, 256}, int64[2] S2 = {4, 32}>
{
  c1 = Conv <pads = [1, 1, 1, 1])" + extra_attr + R"(> (X, W1, B1)
  r1 = Relu (c1)
  c2 = ConvTranspose <strides = [2, 2]> (r1, W2)
  f = Reshape (c2, S)
  m = MatMul (f, W3)
  f2 = Reshape (m, S2)
  Y = Gemm <transB = 1> (f2, W4, B4)
}
)";
}

std::map<std::string, Tensor> batch() {
  return {{"X", test::as_float({4, 3, 8, 8}, test::random_values(768, 0, 1, 7))},
          {"T", test::as_float({4, 5}, test::random_values(20, -11, -9, 8))}};
}

TrainingOptions options(const std::string& precision) {
  TrainingOptions o;
  o.loss.kind = "mse";
  o.loss.target = "T";
  o.optimizer.kind = "adam";
  o.optimizer.lr = 1e-3;
  o.precision = precision;
  return o;
}

// max |a - b| / |b| over the elements.
double relative_error(const Tensor& a, const Tensor& b) {
  const auto x = a.as_double(), y = b.as_double();
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]) / std::abs(y[i]));
  return worst;
}

bool identical(const Tensor& a, const Tensor& b) { return test::compare_tensors(a, b, 0, 0).empty(); }

bool bf16_cpu() {
  try {
    ops::require_bf16_cpu();
    return true;
  } catch (const BackendError&) {
    return false;
  }
}

#define REQUIRE_BF16_CPU() \
  if (!bf16_cpu()) GTEST_SKIP() << "this CPU has no AVX512-BF16 / AMX (" << ops::effective_cpu_isa_name() << ")"

// A bf16 product rounds both inputs to 8 significant bits (relative error <= 2^-9 each), so
// each term of its float32-accumulated sum is off by at most ~2^-8 of its size, and so is
// a sum of same-signed terms. Errors add along a chain: the deepest results here (the
// loss; W1's and B1's gradients) come out of four bf16 products in a row (Conv,
// ConvTranspose, MatMul, Gemm forward; their three input gradients, then ConvGrad's dW),
// hence <= 4 * 2^-8 = 1.6e-2 elementwise. With mixed signs, cancellation can make the error
// relative to a small result arbitrarily large, which is why the data here are positive.
// Measured on avx512_core_bf16: at most 3.4e-3 (W4's gradient).
const double kBf16Bound = 4 * std::ldexp(1.0, -8);

TEST(MixedPrecision, Bf16StepIsWithinBf16RoundingOfFloat32) {
  REQUIRE_BF16_CPU();
  Model m32 = Model::from_text(model_text()), m16 = Model::from_text(model_text());
  TrainingSession s32(m32, options("fp32")), s16(m16, options("bf16"));
  const StepGradients g32 = s32.compute_gradients(batch()), g16 = s16.compute_gradients(batch());
  EXPECT_NEAR(g16.loss, g32.loss, kBf16Bound * std::abs(g32.loss));
  EXPECT_NE(g16.loss, g32.loss) << "the bf16 session computed in float32";
  ASSERT_EQ(g32.gradients.size(), 6u);
  for (const auto& [name, g] : g32.gradients) {
    const Tensor& h = g16.gradients.at(name);
    EXPECT_EQ(h.dtype(), DType::Float) << name;
    const double err = relative_error(h, g);
    EXPECT_LE(err, kBf16Bound) << name;
    EXPECT_GT(err, 0) << name << ": identical to float32";
  }
}

TEST(MixedPrecision, SessionsOfBothPrecisionsInOneProcessKeepTheirOwn) {
  REQUIRE_BF16_CPU();
  Model a = Model::from_text(model_text()), b = Model::from_text(model_text()), c = Model::from_text(model_text());
  TrainingSession fp32_first(a, options("fp32"));
  TrainingSession bf16(b, options("bf16"));
  const StepGradients before = fp32_first.compute_gradients(batch());
  const StepGradients mixed = bf16.compute_gradients(batch());
  TrainingSession fp32_later(c, options("fp32"));
  const StepGradients after = fp32_later.compute_gradients(batch());
  const StepGradients mixed_again = bf16.compute_gradients(batch());
  EXPECT_EQ(before.loss, after.loss);
  EXPECT_EQ(mixed.loss, mixed_again.loss);
  EXPECT_NE(before.loss, mixed.loss);
  for (const auto& [name, g] : before.gradients) {
    EXPECT_TRUE(identical(after.gradients.at(name), g)) << name;
    EXPECT_TRUE(identical(mixed_again.gradients.at(name), mixed.gradients.at(name))) << name;
    EXPECT_FALSE(identical(mixed.gradients.at(name), g)) << name;
  }
}

std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(MixedPrecision, FilesOfABf16SessionAreFloat32WithoutTheMarker) {
  REQUIRE_BF16_CPU();
  std::string pattern = (std::filesystem::temp_directory_path() / "mixed_precision.XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const std::filesystem::path dir = pattern;
  Model model = Model::from_text(model_text());
  TrainingSession s(model, options("bf16"));
  s.train_step(batch());
  const auto path = [&](const char* name) { return (dir / name).string(); };
  s.export_training_graph(path("graph.onnx"));
  s.export_training_model(path("training.onnx"));
  s.export_inference_model(path("model.onnx"));
  s.save_checkpoint(path("checkpoint.npz"));
  for (const char* name : {"graph.onnx", "training.onnx", "model.onnx", "checkpoint.npz"}) {
    const std::string bytes = file_bytes(dir / name);
    ASSERT_FALSE(bytes.empty()) << name;
    EXPECT_EQ(bytes.find(graph::kComputeTypeAttr), std::string::npos) << name;
  }
  for (const char* name : {"training.onnx", "model.onnx"}) {
    Model m = Model::load(path(name));
    for (const char* w : {"W1", "B1", "W2", "W3", "W4", "B4"}) EXPECT_EQ(m.initializer(w).dtype(), DType::Float) << name << " " << w;
  }
  for (const auto& [key, t] : read_npz(path("checkpoint.npz")))
    EXPECT_TRUE(t.dtype() != DType::BFloat16 && t.dtype() != DType::Float16) << key;
  // The training graph still holds the marked nodes: the marker was left out, not missing.
  EXPECT_NE(file_bytes(dir / "graph.onnx").find("ConvGrad"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(MixedPrecision, AFileCannotSetTheMarker) {
  // The importer ignores "__" attributes: a float32 session of a model that carries one
  // computes exactly as without it.
  Model plain = Model::from_text(model_text()), marked = Model::from_text(model_text(", __compute_type = \"bf16\""));
  TrainingSession a(plain, options("fp32")), b(marked, options("fp32"));
  const StepGradients ga = a.compute_gradients(batch()), gb = b.compute_gradients(batch());
  EXPECT_EQ(ga.loss, gb.loss);
  for (const auto& [name, g] : ga.gradients) EXPECT_TRUE(identical(gb.gradients.at(name), g)) << name;
}

TEST(MixedPrecision, UnknownPrecisionIsRefusedWithTheChoices) {
  Model model = Model::from_text(model_text());
  try {
    TrainingSession s(model, options("fp16"));
    FAIL() << "fp16 accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("allowed: fp32, bf16"), std::string::npos) << e.what();
  }
}

}  // namespace
