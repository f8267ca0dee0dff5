// Models exported with a fixed batch (torch.onnx.export without dynamic_axes) take any batch
// after loading, or say which node pins the batch (graph/relax_batch.h).
#include <gtest/gtest.h>

#include <filesystem>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/node_case.h"

using namespace onnxtrain;

namespace {

// Conv -> GlobalAveragePool -> Reshape(x, [1, -1]) -> Gemm, as PyTorch writes x.view(1, -1).
const char* kFixedCnn = R"(
  <ir_version: 8, opset_import: ["" : 13]>
  g (float[1, 2, 4, 4] x) => (float[1, 3] y)
  <float[2, 2, 1, 1] w = {0.5, -0.25, 0.75, 1.0}, int64[2] flat = {1, -1},
   float[3, 2] fc = {0.1, -0.2, 0.3, 0.4, -0.5, 0.6}, float[3] bias = {0.01, 0.02, 0.03}>
  { c = Conv(x, w) r = Relu(c) p = GlobalAveragePool(r) f = Reshape(p, flat) y = Gemm<transB = 1>(f, fc, bias) }
)";

// A constant [1, 2] row concatenated beside the batch: the batch cannot be relaxed.
const char* kPinnedBatch = R"(
  <ir_version: 8, opset_import: ["" : 13]>
  g (float[1, 2] x) => (float[1, 4] y)
  <float[2] row = {1, 2}, int64[2] s = {1, 2}, float[4] scale = {1, 1, 1, 1}>
  { e = Expand(row, s) cat = Concat<axis = 1>(x, e) y = Mul(cat, scale) }
)";

Tensor images(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n * 32));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(static_cast<int>(i * 37 % 19) - 9) / 7.0f;
  return Tensor::from_vector<float>({n, 2, 4, 4}, v);
}

Tensor rows(const Tensor& t, int64_t first, int64_t count) {
  const int64_t per = t.numel() / t.dim(0);
  std::vector<float> v(t.data<float>() + first * per, t.data<float>() + (first + count) * per);
  Shape shape = t.shape();
  shape[0] = count;
  return Tensor::from_vector<float>(shape, v);
}

TEST(FixedBatch, RelaxedModelRunsAnyBatchLikeOneSampleAtATime) {
  Model model = Model::from_text(kFixedCnn);
  EXPECT_CONTAINS(model.info().batch_note, "fixed at 1");
  EXPECT_CONTAINS(model.info().batch_note, "relaxed");
  EXPECT_EQ(model.inputs()[0].dims[0], "batch");
  EXPECT_EQ(model.outputs()[0].dims[0], "batch");
  InferenceSession session(model);
  Tensor x = images(3);
  Tensor y = session.run({{"x", x}}).at("y");
  ASSERT_EQ(y.shape(), (Shape{3, 3}));
  for (int64_t i = 0; i < 3; ++i) {
    Tensor one = session.run({{"x", rows(x, i, 1)}}).at("y");
    for (int j = 0; j < 3; ++j) EXPECT_FLOAT_EQ(one.data<float>()[j], y.data<float>()[i * 3 + j]) << i << "," << j;
  }
}

TEST(FixedBatch, RelaxedModelTrainsAndExportsWithADynamicBatch) {
  Model model = Model::from_text(kFixedCnn);
  TrainingOptions options;
  options.loss.kind = "mse";
  TrainingSession session(model, options);
  Tensor target(DType::Float, {4, 3});
  const double first = session.train_step({{"x", images(4)}, {"label", target}}).loss;
  double last = first;
  for (int i = 0; i < 5; ++i) last = session.train_step({{"x", images(4)}, {"label", target}}).loss;
  EXPECT_LT(last, first);
  const auto path = (std::filesystem::temp_directory_path() /
                     ("onnxtrain_fixed_batch_" + std::to_string(::getpid()) + ".onnx")).string();
  model.save_inference(path);
  Model reloaded = Model::load(path);
  std::filesystem::remove(path);
  EXPECT_EQ(reloaded.inputs()[0].dims[0], "batch");
  EXPECT_EQ(reloaded.info().batch_note, "");  // nothing fixed is left
  EXPECT_EQ(InferenceSession(reloaded).run({{"x", images(5)}}).at("y").dim(0), 5);
}

TEST(FixedBatch, PinnedBatchStaysFixedAndTheFeedErrorNamesTheNode) {
  Model model = Model::from_text(kPinnedBatch);
  const std::string note = model.info().batch_note;
  EXPECT_CONTAINS(note, "fixed at 1");
  EXPECT_CONTAINS(note, "dynamic_axes");
  EXPECT_CONTAINS(note, "node 'cat' (Concat)");
  EXPECT_EQ(model.inputs()[0].dims[0], "1");
  InferenceSession session(model);
  EXPECT_EQ(session.run({{"x", Tensor(DType::Float, {1, 2})}}).at("y").dim(1), 4);
  try {
    session.run({{"x", Tensor(DType::Float, {4, 2})}});
    FAIL() << "a batch of 4 ran through a model pinned to 1";
  } catch (const DataError& e) {
    EXPECT_CONTAINS(e.what(), "expected float32[1,2]");
    EXPECT_CONTAINS(e.what(), note);
  }
}

TEST(FixedBatch, DynamicModelsAreLeftAlone) {
  Model model = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[N, 2] x) => (float[N, 2] y) { y = Relu(x) }
  )");
  EXPECT_EQ(model.info().batch_note, "");
  EXPECT_EQ(model.inputs()[0].dims[0], "N");
}

}  // namespace
