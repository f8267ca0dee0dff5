#include <gtest/gtest.h>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/gradcheck.h"
#include "tests/support/node_case.h"

using namespace onnxtrain;

namespace {

// ai.onnxtrain.ReduceSumTo against a naive sum, on both kernel paths: many outputs
// (parallel over outputs) and few outputs with long reductions (per-thread partial sums).
void check_sum_to(const Shape& x_shape, const Shape& target) {
  std::string dims;
  for (size_t i = 0; i < x_shape.size(); ++i) dims += (i ? "," : "") + std::to_string(x_shape[i]);
  test::NodeCase sum_to{"ai.onnxtrain.ReduceSumTo", "",
                        {"float[" + dims + "] X", "int64[" + std::to_string(target.size()) + "] S"}, {"float[?] Y"}};
  sum_to.domains = {{"ai.onnxtrain", 1}};
  Tensor x = test::random_tensor(DType::Float, x_shape, 7);
  Tensor s = Tensor::from_vector<int64_t>({static_cast<int64_t>(target.size())}, target);
  Tensor y = test::run_node_case(sum_to, {{"X", x}, {"S", s}}).at("Y");
  ASSERT_EQ(y.shape(), target);
  Shape padded(x_shape.size() - target.size(), 1);
  padded.insert(padded.end(), target.begin(), target.end());
  std::vector<double> want(y.numel(), 0.0);
  Shape idx(x_shape.size(), 0);
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t o = 0;
    for (size_t d = 0; d < x_shape.size(); ++d) o = o * padded[d] + (padded[d] == 1 ? 0 : idx[d]);
    want[o] += x.data<float>()[i];
    for (int d = static_cast<int>(x_shape.size()) - 1; d >= 0 && ++idx[d] == x_shape[d]; --d) idx[d] = 0;
  }
  for (int64_t o = 0; o < y.numel(); ++o) EXPECT_NEAR(y.data<float>()[o], want[o], 1e-3) << o;
}

TEST(ReduceSumTo, ManyOutputs) { check_sum_to({4, 300, 5}, {300, 1}); }
TEST(ReduceSumTo, FewOutputsLongReduction) { check_sum_to({64, 16, 8, 8}, {16, 1, 1}); }
TEST(ReduceSumTo, LeadingDimsOnly) { check_sum_to({3, 2, 70}, {70}); }
TEST(ReduceSumTo, ToScalar) { check_sum_to({50, 200}, {}); }

}  // namespace
