// Indexing ops (Gather*, Scatter*, OneHot, NonZero, Trilu, Compress, ReverseSequence, Unique,
// NonMaxSuppression): behaviour the ONNX backend data does not cover (index errors, int32
// and rank-0 indices, other dtypes, reductions, edge sizes).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/node_case.h"

using namespace onnxtrain;
using test::run_error;
using test::run_model;

namespace {

const char* kGather = R"(
  <ir_version: 8, opset_import: ["" : 13]>
  g (float[3, 2] X, int64[N] I) => (float[N, 2] Y) { Y = Gather <axis = 0> (X, I) })";

}  // namespace

TEST(Gather, OutOfRangeIndexNamesNodeAndIndex) {
  auto msg = run_error(kGather, {{"X", Tensor(DType::Float, {3, 2})}, {"I", Tensor::from_vector<int64_t>({3}, {0, -3, 3})}});
  EXPECT_CONTAINS(msg, "Gather");
  EXPECT_CONTAINS(msg, "index 3 in 'indices' at [2]");
  EXPECT_CONTAINS(msg, "[-3, 2]");
}

TEST(Gather, ScalarInt32IndexOnInt64DataDropsTheAxis) {
  auto out = run_model(R"(
    <ir_version: 8, opset_import: ["" : 13]>
    g (int64[2, 3] X, int32 I) => (int64[2] Y) { Y = Gather <axis = 1> (X, I) })",
                 {{"X", Tensor::from_vector<int64_t>({2, 3}, {1, 2, 3, 4, 5, 6})}, {"I", Tensor::scalar<int32_t>(-1)}});
  EXPECT_EQ(out["Y"].shape(), (Shape{2}));
  EXPECT_EQ(out["Y"].to_vector<int64_t>(), (std::vector<int64_t>{3, 6}));
}

TEST(Gather, CopiesRowsOfBoolData) {
  auto out = run_model(R"(
    <ir_version: 8, opset_import: ["" : 11]>
    g (bool[2, 2] X, int64[3] I) => (bool[3, 2] Y) { Y = Gather (X, I) })",
                 {{"X", Tensor::from_vector<bool>({2, 2}, {true, false, false, true})},
                  {"I", Tensor::from_vector<int64_t>({3}, {1, 0, 1})}});
  EXPECT_EQ(out["Y"].to_vector<bool>(), (std::vector<bool>{false, true, true, false, false, true}));
}

TEST(GatherElements, SmallerIndexShapeAndErrorOnBadIndex) {
  const char* text = R"(
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[3, 3] X, int32[2, 2] I) => (float[2, 2] Y) { Y = GatherElements <axis = 1> (X, I) })";
  Tensor x = Tensor::from_vector<float>({3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  auto out = run_model(text, {{"X", x}, {"I", Tensor::from_vector<int32_t>({2, 2}, {2, 0, -1, 1})}});
  EXPECT_EQ(out["Y"].to_vector<float>(), (std::vector<float>{3, 1, 6, 5}));
  auto msg = run_error(text, {{"X", x}, {"I", Tensor::from_vector<int32_t>({2, 2}, {0, 0, 0, -4})}});
  EXPECT_CONTAINS(msg, "index -4 in 'indices' at [1,1]");
}

TEST(GatherND, BatchDimsAndIndexError) {
  const char* text = R"(
    <ir_version: 8, opset_import: ["" : 13]>
    g (int32[2, 2, 2] X, int64[2, 1] I) => (int32[2, 2] Y) { Y = GatherND <batch_dims = 1> (X, I) })";
  Tensor x = Tensor::from_vector<int32_t>({2, 2, 2}, {0, 1, 2, 3, 4, 5, 6, 7});
  auto out = run_model(text, {{"X", x}, {"I", Tensor::from_vector<int64_t>({2, 1}, {1, -2})}});
  EXPECT_EQ(out["Y"].to_vector<int32_t>(), (std::vector<int32_t>{2, 3, 4, 5}));
  auto msg = run_error(text, {{"X", x}, {"I", Tensor::from_vector<int64_t>({2, 1}, {1, 2})}});
  EXPECT_CONTAINS(msg, "GatherND");
  EXPECT_CONTAINS(msg, "index 2 in 'indices' at [1,0] is out of range for data dimension 1");
}

TEST(ScatterElements, MulReductionWithDuplicateAndNegativeIndices) {
  const char* text16 = R"(
    <ir_version: 8, opset_import: ["" : 16]>
    g (float[1, 4] X, int64[1, 3] I, float[1, 3] U) => (float[1, 4] Y) {
      Y = ScatterElements <axis = 1, reduction = "mul"> (X, I, U) })";
  std::map<std::string, Tensor> feeds{{"X", Tensor::from_vector<float>({1, 4}, {1, 2, 3, 4})},
                                      {"I", Tensor::from_vector<int64_t>({1, 3}, {1, 1, -1})},
                                      {"U", Tensor::from_vector<float>({1, 3}, {2, 3, 0.5f})}};
  EXPECT_EQ(run_model(text16, feeds)["Y"].to_vector<float>(), (std::vector<float>{1, 12, 3, 2}));
}

TEST(ScatterND, AddsSlicesWithDuplicateIndices) {
  auto out = run_model(R"(
    <ir_version: 8, opset_import: ["" : 16]>
    g (int64[3, 2] X, int64[3, 1] I, int64[3, 2] U) => (int64[3, 2] Y) {
      Y = ScatterND <reduction = "add"> (X, I, U) })",
                 {{"X", Tensor::from_vector<int64_t>({3, 2}, {1, 1, 1, 1, 1, 1})},
                  {"I", Tensor::from_vector<int64_t>({3, 1}, {2, -1, 0})},
                  {"U", Tensor::from_vector<int64_t>({3, 2}, {1, 2, 10, 20, 5, 5})}});
  EXPECT_EQ(out["Y"].to_vector<int64_t>(), (std::vector<int64_t>{6, 6, 1, 1, 12, 23}));
}

TEST(OneHot, FloatIndicesOutOfRangeGiveOffValues) {
  auto out = run_model(R"(
    <ir_version: 8, opset_import: ["" : 11]>
    g (float[4] I, float D, int32[2] V) => (int32[3, 4] Y) { Y = OneHot <axis = 0> (I, D, V) })",
                 {{"I", Tensor::from_vector<float>({4}, {1.7f, -1, 3, std::numeric_limits<float>::quiet_NaN()})},
                  {"D", Tensor::scalar<float>(3)},
                  {"V", Tensor::from_vector<int32_t>({2}, {0, 9})}});
  EXPECT_EQ(out["Y"].shape(), (Shape{3, 4}));
  EXPECT_EQ(out["Y"].to_vector<int32_t>(), (std::vector<int32_t>{0, 0, 0, 0, 9, 0, 0, 0, 0, 9, 0, 0}));
}

TEST(OneHot, NegativeIndicesSelectNothingBeforeOpset11) {
  const char* text = R"(
    <ir_version: 8, opset_import: ["" : 9]>
    g (int64[2] I, int64[1] D, float[2] V) => (float[2, 3] Y) { Y = OneHot (I, D, V) })";
  auto out = run_model(text, {{"I", Tensor::from_vector<int64_t>({2}, {-1, 2})},
                        {"D", Tensor::from_vector<int64_t>({1}, {3})},
                        {"V", Tensor::from_vector<float>({2}, {0, 1})}});
  EXPECT_EQ(out["Y"].to_vector<float>(), (std::vector<float>{0, 0, 0, 0, 0, 1}));
}

TEST(NonZero, BoolAndScalarInputs) {
  const char* text = R"(
    <ir_version: 8, opset_import: ["" : 13]>
    g (bool[2, 2] X) => (int64[2, N] Y) { Y = NonZero (X) })";
  auto out = run_model(text, {{"X", Tensor::from_vector<bool>({2, 2}, {false, true, true, true})}});
  EXPECT_EQ(out["Y"].shape(), (Shape{2, 3}));
  EXPECT_EQ(out["Y"].to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 1, 1, 0, 1}));
  auto scalar = run_model(R"(
    <ir_version: 8, opset_import: ["" : 13]>
    g (float X) => (int64[1, N] Y) { Y = NonZero (X) })",
                    {{"X", Tensor::scalar<float>(-0.0f)}});
  EXPECT_EQ(scalar["Y"].shape(), (Shape{1, 0}));
}

TEST(Trilu, HugeKAndBatchedInt64) {
  const char* text = R"(
    <ir_version: 8, opset_import: ["" : 14]>
    g (int64[2, 2, 3] X, int64 K) => (int64[2, 2, 3] Y) { Y = Trilu <upper = 0> (X, K) })";
  Tensor x = Tensor::from_vector<int64_t>({2, 2, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  auto all = run_model(text, {{"X", x}, {"K", Tensor::scalar<int64_t>(std::numeric_limits<int64_t>::max())}});
  EXPECT_EQ(all["Y"].to_vector<int64_t>(), x.to_vector<int64_t>());
  auto none = run_model(text, {{"X", x}, {"K", Tensor::scalar<int64_t>(std::numeric_limits<int64_t>::min())}});
  EXPECT_EQ(none["Y"].to_vector<int64_t>(), std::vector<int64_t>(12, 0));
  auto lower = run_model(text, {{"X", x}, {"K", Tensor::scalar<int64_t>(0)}});
  EXPECT_EQ(lower["Y"].to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 0, 4, 5, 0, 7, 0, 0, 10, 11, 0}));
}

TEST(Compress, ShortConditionTruncatesAndTooLongFails) {
  const char* text = R"(
    <ir_version: 8, opset_import: ["" : 11]>
    g (float[2, 3] X, bool[N] C) => (float[2, M] Y) { Y = Compress <axis = -1> (X, C) })";
  Tensor x = Tensor::from_vector<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  auto out = run_model(text, {{"X", x}, {"C", Tensor::from_vector<bool>({2}, {false, true})}});
  EXPECT_EQ(out["Y"].shape(), (Shape{2, 1}));
  EXPECT_EQ(out["Y"].to_vector<float>(), (std::vector<float>{2, 5}));
  auto msg = run_error(text, {{"X", x}, {"C", Tensor::from_vector<bool>({4}, {true, false, false, true})}});
  EXPECT_CONTAINS(msg, "condition selects index 3 but the axis 1 has size 3");
}

TEST(ReverseSequence, RejectsTooLongSequence) {
  auto msg = run_error(R"(
    <ir_version: 8, opset_import: ["" : 10]>
    g (float[2, 3] X, int64[3] L) => (float[2, 3] Y) { Y = ReverseSequence (X, L) })",
                       {{"X", Tensor(DType::Float, {2, 3})}, {"L", Tensor::from_vector<int64_t>({3}, {1, 3, 2})}});
  EXPECT_CONTAINS(msg, "sequence_lens[1] = 3 is outside [0, 2]");
}

TEST(Unique, UnsortedAlongAxisWithAllOutputs) {
  auto out = run_model(R"(
    <ir_version: 8, opset_import: ["" : 11]>
    g (int32[2, 4] X) => (int32[2, U] Y, int64[U] I, int64[4] V, int64[U] C) {
      Y, I, V, C = Unique <axis = 1, sorted = 0> (X) })",
                 {{"X", Tensor::from_vector<int32_t>({2, 4}, {5, 1, 5, 1, 0, 2, 0, 3})}});
  EXPECT_EQ(out["Y"].shape(), (Shape{2, 3}));
  EXPECT_EQ(out["Y"].to_vector<int32_t>(), (std::vector<int32_t>{5, 1, 1, 0, 2, 3}));
  EXPECT_EQ(out["I"].to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 3}));
  EXPECT_EQ(out["V"].to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 0, 2}));
  EXPECT_EQ(out["C"].to_vector<int64_t>(), (std::vector<int64_t>{2, 1, 1}));
}

TEST(Unique, SortedFloatsPutNansLastAsOneValue) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto out = run_model(R"(
    <ir_version: 8, opset_import: ["" : 11]>
    g (float[5] X) => (float[U] Y) { Y = Unique (X) })",
                 {{"X", Tensor::from_vector<float>({5}, {nan, 2, -1, nan, 2})}});
  auto y = out["Y"].to_vector<float>();
  ASSERT_EQ(y.size(), 3u);
  EXPECT_EQ(y[0], -1);
  EXPECT_EQ(y[1], 2);
  EXPECT_TRUE(std::isnan(y[2]));
}

TEST(NonMaxSuppression, WithoutOptionalInputsSelectsNothing) {
  const char* text = R"(
    <ir_version: 8, opset_import: ["" : 11]>
    g (float[1, 2, 4] B, float[1, 1, 2] S) => (int64[N, 3] Y) { Y = NonMaxSuppression (B, S) })";
  auto out = run_model(text, {{"B", Tensor::from_vector<float>({1, 2, 4}, {0, 0, 1, 1, 0, 0, 1, 1})},
                        {"S", Tensor::from_vector<float>({1, 1, 2}, {0.5f, 0.9f})}});
  EXPECT_EQ(out["Y"].shape(), (Shape{0, 3}));
}
