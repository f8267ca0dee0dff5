// Generator ops (ConstantOfShape, Range, EyeLike, the window functions): behaviour the ONNX
// backend data does not cover (scalar shapes, integer extremes, other dtypes, errors).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/node_case.h"

using namespace onnxtrain;
using test::run_error;
using test::run_model;

TEST(ConstantOfShape, Int64ValueAndScalarShape) {
  auto out = run_model(R"(
    <ir_version: 8, opset_import: ["" : 11]>
    g (int64[N] S) => (int64 Y) { Y = ConstantOfShape <value = int64[1] {7}> (S) })",
                 {{"S", Tensor::from_vector<int64_t>({0}, {})}});
  EXPECT_EQ(out["Y"].shape(), Shape{});
  EXPECT_EQ(out["Y"].to_vector<int64_t>(), (std::vector<int64_t>{7}));
}

TEST(Range, IntegerExtremesAndZeroDelta) {
  const char* text = R"(
    <ir_version: 8, opset_import: ["" : 11]>
    g (int64 A, int64 B, int64 D) => (int64[N] Y) { Y = Range (A, B, D) })";
  const int64_t lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
  auto out = run_model(text, {{"A", Tensor::scalar<int64_t>(hi)}, {"B", Tensor::scalar<int64_t>(lo)},
                        {"D", Tensor::scalar<int64_t>(lo)}});
  EXPECT_EQ(out["Y"].to_vector<int64_t>(), (std::vector<int64_t>{hi, -1}));
  auto empty = run_model(text, {{"A", Tensor::scalar<int64_t>(0)}, {"B", Tensor::scalar<int64_t>(5)},
                          {"D", Tensor::scalar<int64_t>(-1)}});
  EXPECT_EQ(empty["Y"].shape(), (Shape{0}));
  EXPECT_CONTAINS(run_error(text, {{"A", Tensor::scalar<int64_t>(0)}, {"B", Tensor::scalar<int64_t>(5)},
                                   {"D", Tensor::scalar<int64_t>(0)}}),
                  "delta must not be zero");
}

TEST(EyeLike, NonSquareLowerDiagonalAsBool) {
  auto out = run_model(R"(
    <ir_version: 8, opset_import: ["" : 9]>
    g (float[3, 2] X) => (bool[3, 2] Y) { Y = EyeLike <k = -1, dtype = 9> (X) })",
                 {{"X", Tensor(DType::Float, {3, 2})}});
  EXPECT_EQ(out["Y"].to_vector<bool>(), (std::vector<bool>{false, false, true, false, false, true}));
}

TEST(Windows, OnePointSymmetricAndDoubleOutput) {
  auto out = run_model(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (int32 N) => (double[M] Y) { Y = HannWindow <periodic = 0, output_datatype = 11> (N) })",
                 {{"N", Tensor::scalar<int32_t>(1)}});
  EXPECT_EQ(out["Y"].to_vector<double>(), (std::vector<double>{1.0}));
  auto blackman = run_model(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (int64 N) => (double[M] Y) { Y = BlackmanWindow <output_datatype = 11> (N) })",
                      {{"N", Tensor::scalar<int64_t>(4)}});
  auto y = blackman["Y"].to_vector<double>();
  ASSERT_EQ(y.size(), 4u);
  EXPECT_NEAR(y[0], 0.0, 1e-12);
  EXPECT_NEAR(y[1], 0.34, 1e-12);
  EXPECT_NEAR(y[2], 1.0, 1e-12);
}
