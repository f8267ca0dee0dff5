// BatchNormalization (oneDNN batch_normalization: training and inference forward, and the
// BatchNormalizationGrad backward in both modes) against the naive reference on random
// odd-shaped inputs of rank 2 to 5, batch 1, channel counts that are not multiples of 8.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/reference/batch_norm.h"
#include "tests/reference/reference_support.h"

using namespace onnxtrain;
using namespace onnxtrain::test;

namespace {

void check(bool training, std::mt19937& rng) {
  const int64_t rank = pick(rng, {2, 3, 4, 4, 5});
  Dims x{pick(rng, {1, 2, 3, 5}), pick(rng, {1, 3, 5, 7, 13, 17})};
  while (static_cast<int64_t>(x.size()) < rank) x.push_back(pick(rng, rank == 5 ? std::initializer_list<int64_t>{1, 2, 3} : std::initializer_list<int64_t>{1, 3, 5, 7}));
  // One value per channel needs a batch of 2 to have a variance worth normalising by.
  if (training && reference::numel_of(x) / x[1] < 2) x[0] = 2;
  const int64_t c = x[1];
  const double eps = 1e-5, momentum = 0.9;
  const std::string attrs = "epsilon = 1e-5, momentum = 0.9, training_mode = " + std::to_string(training);
  SCOPED_TRACE("BatchNormalization X " + ints(x) + " <" + attrs + ">");
  // A shifted, scaled input: the statistics are not the trivial 0 and 1.
  const Array xa = random_array(x, rng, -2.0, 3.0);
  const Array scale = random_array({c}, rng, 0.5, 1.5), bias = random_array({c}, rng);
  const Array mean = random_array({c}, rng), var = random_array({c}, rng, 0.2, 2.0);
  const reference::BatchNormResult want = reference::batch_norm(xa, scale, bias, mean, var, eps, momentum, training);
  const int64_t count = xa.numel() / c;
  // The statistics sum `count` values of magnitude ~3; y is normalised (|xhat| <~ 4), and
  // the normalisation multiplies their rounding errors by scale / sqrt(var + eps), large
  // for a channel of nearly equal values.
  double gain = 1;
  for (int64_t k = 0; k < c; ++k)
    gain = std::max(gain, scale[k] / std::sqrt((training ? want.batch_var : var)[k] + eps));
  const double tol = accumulation_tolerance(count, 4.0) * gain;
  std::vector<std::pair<std::string, size_t>> outs{{"Y", x.size()}};
  if (training) outs.insert(outs.end(), {{"RM", 1}, {"RV", 1}});
  auto got = run_node("BatchNormalization", attrs, {{"X", xa}, {"S", scale}, {"B", bias}, {"M", mean}, {"V", var}}, outs);
  EXPECT_EQ(compare(got["Y"], want.y, tol), "") << "Y";
  if (training) {
    EXPECT_EQ(compare(got["RM"], want.running_mean, tol), "") << "running_mean";
    EXPECT_EQ(compare(got["RV"], want.running_var, tol), "") << "running_var";
  }
  // The backward takes the statistics the forward normalised with: the batch's in training
  // (given, as the opset < 14 rule passes them, or recomputed from X when left out), the
  // running ones in inference.
  const Array dy = random_array(x, rng);
  const Array& m = training ? want.batch_mean : mean;
  const Array& v = training ? want.batch_var : var;
  const reference::BatchNormGrads g = reference::batch_norm_backward(dy, xa, scale, m, v, eps, training);
  const bool pass_stats = !training || pick(rng, {0, 1});
  std::vector<NodeInput> in{{"dY", dy}, {"X", xa}, {"S", scale}};
  if (pass_stats) in.insert(in.end(), {{"M", m}, {"V", v}});
  SCOPED_TRACE(pass_stats ? "statistics given" : "statistics recomputed");
  auto grads = run_node("ai.onnxtrain.BatchNormalizationGrad", "epsilon = 1e-5, training_mode = " + std::to_string(training),
                        in, {{"dX", x.size()}, {"dS", 1}, {"dB", 1}});
  EXPECT_EQ(compare(grads["dX"], g.dx, tol), "") << "dX";
  EXPECT_EQ(compare(grads["dS"], g.dscale, tol), "") << "dScale";
  EXPECT_EQ(compare(grads["dB"], g.dbias, accumulation_tolerance(count)), "") << "dBias";
}

}  // namespace

TEST(BatchNormReference, TrainingForwardAndGradMatchOnRandomOddShapes) {
  std::mt19937 rng(91);
  for (int i = 0; i < 60; ++i) check(true, rng);
}

TEST(BatchNormReference, InferenceForwardAndGradMatchOnRandomOddShapes) {
  std::mt19937 rng(92);
  for (int i = 0; i < 40; ++i) check(false, rng);
}
