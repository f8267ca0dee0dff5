// Losses (loss.cpp): behaviour the ONNX backend data does not cover (ignored targets, edge
// cases, float vs double with and without log-probabilities).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/node_case.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;
using test::as_float;
using test::graph_model;
using test::random_values;
using test::run_model;

TEST(Loss, MeanOverNonIgnoredWeightsAndEdgeCases) {
  // log-probabilities [N=3, C=2]; target 1 is ignored.
  const Tensor logp = Tensor::from_vector<double>({3, 2}, {-1, -2, -3, -4, -5, -6});
  const Tensor target = Tensor::from_vector<int64_t>({3}, {0, -1, 1});
  const Tensor weight = Tensor::from_vector<double>({2}, {2, 3});
  auto out = run_model(graph_model("L = NegativeLogLikelihoodLoss <ignore_index = -1> (X, T, W)", "double[3, 2] X, int64[3] T, double[2] W",
                       "double L"),
                 {{"X", logp}, {"T", target}, {"W", weight}});
  EXPECT_DOUBLE_EQ(out.at("L").as_double()[0], (1 * 2 + 6 * 3) / 5.0);
  auto all_ignored = run_model(graph_model("L = NegativeLogLikelihoodLoss <ignore_index = 0> (X, T)", "double[1, 2] X, int64[1] T", "double L"),
                         {{"X", Tensor::from_vector<double>({1, 2}, {-1, -2})}, {"T", Tensor::from_vector<int64_t>({1}, {0})}});
  EXPECT_TRUE(std::isnan(all_ignored.at("L").as_double()[0]));
  EXPECT_THROW(run_model(graph_model("L = NegativeLogLikelihoodLoss (X, T)", "double[1, 2] X, int64[1] T", "double L"),
                   {{"X", Tensor::from_vector<double>({1, 2}, {-1, -2})}, {"T", Tensor::from_vector<int64_t>({1}, {2})}}),
               Error);
  EXPECT_THROW(run_model(graph_model("L = NegativeLogLikelihoodLoss <reduction = \"avg\"> (X, T)", "double[1, 2] X, int64[1] T", "double L"),
                   {{"X", Tensor::from_vector<double>({1, 2}, {-1, -2})}, {"T", Tensor::from_vector<int64_t>({1}, {0})}}),
               Error);
}

TEST(Loss, SoftmaxCrossEntropyFloatMatchesDoubleWithAndWithoutLogProb) {
  const Shape shape = {2, 3, 4};
  const auto x = random_values(24, -50, 50, 5);  // large logits: needs the stable log-softmax
  const Tensor labels = Tensor::from_vector<int32_t>({2, 4}, {0, 1, 2, 1, 2, 2, 0, 1});
  const std::string body = "L, P = SoftmaxCrossEntropyLoss <reduction = \"sum\"> (X, T) M = SoftmaxCrossEntropyLoss (X, T)";
  auto f = run_model(graph_model(body, "float[2, 3, 4] X, int32[2, 4] T", "float L, float[2, 3, 4] P, float M"), {{"X", as_float(shape, x)}, {"T", labels}});
  auto d = run_model(graph_model(body, "double[2, 3, 4] X, int32[2, 4] T", "double L, double[2, 3, 4] P, double M"),
               {{"X", Tensor::from_vector<double>(shape, x)}, {"T", labels}});
  EXPECT_EQ(test::compare_tensors(f.at("P"), as_float(shape, d.at("P").as_double()), 1e-5, 1e-4), "");
  EXPECT_NEAR(f.at("L").as_double()[0], d.at("L").as_double()[0], 1e-3);
  EXPECT_NEAR(f.at("M").as_double()[0], d.at("L").as_double()[0] / 8, 1e-4);
  double reference = 0;
  const auto p = d.at("P").as_double();
  const auto t = labels.as_int64();
  for (int n = 0; n < 2; ++n)
    for (int j = 0; j < 4; ++j) reference -= p[(n * 3 + t[n * 4 + j]) * 4 + j];
  EXPECT_NEAR(d.at("L").as_double()[0], reference, 1e-9);
}
