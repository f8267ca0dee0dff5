// MatMul and Gemm: broadcasting, vectors, integer MatMul, Gemm's transposes and every C
// broadcast form, and clear errors. tests/reference/matmul_reference_test.cpp covers random
// shapes and MatMulGrad.
#include <gtest/gtest.h>

#include <random>

#include "onnxtrain/onnxtrain.h"
#include "ops/reference/matmul.h"
#include "tests/reference/reference_support.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;
using test::random_float_tensor;
using test::run_node;

TEST(MatMul, MatMulBroadcastsBatchesAndVectors) {
  std::mt19937 rng(3);
  Tensor a = random_float_tensor({2, 1, 3, 4}, rng), b = random_float_tensor({5, 4, 2}, rng), v = random_float_tensor({4}, rng);
  Tensor y = run_node("MatMul", "", {{"A", a}, {"B", b}}, 4)["Y"];
  ASSERT_EQ(y.shape(), (Shape{2, 5, 3, 2}));
  const reference::Array expected = reference::matmul(test::to_array(a), test::to_array(b));
  ASSERT_EQ(expected.shape, y.shape());
  for (int64_t i = 0; i < y.numel(); ++i) EXPECT_NEAR(y.data<float>()[i], expected[i], 1e-5) << "at " << i;
  Tensor yv = run_node("MatMul", "", {{"A", v}, {"B", b}}, 2)["Y"];
  EXPECT_EQ(yv.shape(), (Shape{5, 2}));
  Tensor yvv = run_node("MatMul", "", {{"A", v}, {"B", v}}, 0)["Y"];
  EXPECT_EQ(yvv.shape(), Shape{});
  Tensor ai = Tensor::from_vector<int64_t>({2, 2}, {1, 2, 3, 4}), bi = Tensor::from_vector<int64_t>({2}, {5, 6});
  EXPECT_EQ(run_node("MatMul", "", {{"A", ai}, {"B", bi}}, 1, "int64")["Y"].to_vector<int64_t>(), (std::vector<int64_t>{17, 39}));
}

TEST(MatMul, GemmDoubleWithTransposesAndBroadcastC) {
  Tensor a = Tensor::from_vector<double>({3, 2}, {1, 2, 3, 4, 5, 6});  // A' = [[1,3,5],[2,4,6]]
  Tensor b = Tensor::from_vector<double>({2, 3}, {1, 0, 2, 0, 1, 1});  // B' = [[1,0],[0,1],[2,1]]
  Tensor c = Tensor::from_vector<double>({2, 1}, {10, 20});
  Tensor y = run_node("Gemm", "transA = 1, transB = 1, alpha = 2.0, beta = 0.5", {{"A", a}, {"B", b}, {"C", c}}, 2, "double")["Y"];
  // A'B' = [[11, 8], [14, 10]]
  EXPECT_EQ(y.to_vector<double>(), (std::vector<double>{27, 21, 38, 30}));
  // float (oneDNN) with every C broadcast form
  const std::vector<float> af{1, 2, 3, 4, 5, 6}, bf{1, 0, 2, 0, 1, 1};
  const std::vector<std::pair<Shape, std::vector<float>>> cs{
      {{2, 1}, {10, 20}}, {{1, 2}, {10, 20}}, {{2}, {10, 20}}, {{}, {10}}, {{2, 2}, {1, 2, 3, 4}}};
  const std::vector<std::vector<float>> expected{{32, 26, 48, 40}, {32, 36, 38, 40}, {32, 36, 38, 40}, {32, 26, 38, 30},
                                                 {23, 18, 31, 24}};
  for (size_t i = 0; i < cs.size(); ++i)
    for (float beta : {1.f, 0.5f}) {
      Tensor yf = run_node("Gemm", "transA = 1, transB = 1, alpha = 2.0, beta = " + std::to_string(beta),
                           {{"A", Tensor::from_vector<float>({3, 2}, af)}, {"B", Tensor::from_vector<float>({2, 3}, bf)},
                            {"C", Tensor::from_vector<float>(cs[i].first, cs[i].second)}}, 2)["Y"];
      std::vector<float> want = expected[i];
      const std::vector<float> ab{22, 16, 28, 20};
      for (size_t j = 0; j < 4; ++j) want[j] = ab[j] + beta * (want[j] - ab[j]);
      EXPECT_EQ(yf.to_vector<float>(), want) << "C " << shape_str(cs[i].first) << " beta " << beta;
    }
}

TEST(MatMul, MismatchedInnerDimsGiveAClearError) {
  std::mt19937 rng(1);
  EXPECT_THROW(run_node("MatMul", "", {{"A", random_float_tensor({2, 3}, rng)}, {"B", random_float_tensor({4, 2}, rng)}}, 2), Error);
}
