// Behaviour of the resize family (Resize, Upsample, GridSample) that the ONNX backend data
// does not cover: older opsets, double, changing sizes and invalid inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;
using test::expect_close;
using test::expect_error;
using test::iota_values;
using test::to_tensor;

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
