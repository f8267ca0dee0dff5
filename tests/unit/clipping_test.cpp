#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "onnxtrain/clipping.h"
#include "onnxtrain/errors.h"

using namespace onnxtrain;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

struct ClipGolden {
  const char* name;
  const char* mode;  // norm | value
  bool is_double;
  double bound;  // max_norm or clip_value
  double norm_type;
  std::vector<std::vector<double>> inputs;
  double total_norm;
  std::vector<std::vector<double>> outputs;
};

struct LargeClipGolden {
  const char* name;
  bool is_double;
  std::vector<int64_t> sizes;
  double scale, max_norm, norm_type, total_norm, output_sum, output_sum_sq;
};

// torch.nn.utils.clip_grad_norm_ / clip_grad_value_ (PyTorch 1.13) results;
// tests/data/optim/make_schedule_goldens.py.
const std::vector<ClipGolden> kGoldens = {
#include "tests/data/optim/clipping_goldens.inc"
};
const std::vector<LargeClipGolden> kLargeGoldens = {
#include "tests/data/optim/clipping_large_goldens.inc"
};

Tensor make_tensor(bool is_double, const std::vector<double>& values) {
  if (is_double) return Tensor::from_vector<double>({static_cast<int64_t>(values.size())}, values);
  std::vector<float> f(values.begin(), values.end());
  return Tensor::from_vector<float>({static_cast<int64_t>(values.size())}, f);
}

bool close(double actual, double expected, double rtol) {
  if (std::isnan(expected)) return std::isnan(actual);
  if (std::isinf(expected)) return actual == expected;
  return std::abs(actual - expected) <= rtol * std::abs(expected) + 1e-30;
}

TEST(Clipping, MatchesTorch) {
  ASSERT_GE(kGoldens.size(), 20u);
  for (const auto& g : kGoldens) {
    SCOPED_TRACE(g.name);
    // torch reduces float gradients in float; we accumulate in double.
    const double rtol = g.is_double ? 1e-13 : 2e-6;
    std::vector<Tensor> grads;
    for (const auto& v : g.inputs) grads.push_back(make_tensor(g.is_double, v));
    std::vector<Tensor*> ptrs;
    for (auto& t : grads) ptrs.push_back(&t);
    if (std::string(g.mode) == "norm") {
      const double total = clip_grad_norm(ptrs, g.bound, g.norm_type);
      EXPECT_TRUE(close(total, g.total_norm, rtol)) << total << " vs " << g.total_norm;
    } else {
      clip_grad_value(ptrs, g.bound);
    }
    for (size_t i = 0; i < grads.size(); ++i) {
      auto got = grads[i].as_double();
      ASSERT_EQ(got.size(), g.outputs[i].size());
      for (size_t j = 0; j < got.size(); ++j) {
        EXPECT_TRUE(close(got[j], g.outputs[i][j], rtol)) << "tensor " << i << " [" << j << "]: " << got[j]
                                                          << " vs " << g.outputs[i][j];
        if (g.outputs[i][j] == 0) {
          EXPECT_EQ(std::signbit(got[j]), std::signbit(g.outputs[i][j]));
        }
      }
    }
  }
}

std::vector<Tensor> large_inputs(const LargeClipGolden& g) {
  std::vector<Tensor> grads;
  for (size_t k = 0; k < g.sizes.size(); ++k) {
    std::vector<double> v(static_cast<size_t>(g.sizes[k]));
    for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.37 * static_cast<double>(i) + static_cast<double>(k)) * g.scale;
    grads.push_back(make_tensor(g.is_double, v));
  }
  return grads;
}

TEST(Clipping, LargeGradientsMatchTorchForAnyThreadCount) {
  ASSERT_EQ(kLargeGoldens.size(), 8u);
  const int saved = omp_get_max_threads();
  for (const auto& g : kLargeGoldens) {
    SCOPED_TRACE(g.name);
    const double rtol = g.is_double ? 1e-12 : 2e-6;
    std::vector<double> totals;
    std::vector<std::vector<double>> results;
    for (int threads : {1, 2, 3, 4}) {
      omp_set_num_threads(threads);
      auto grads = large_inputs(g);
      std::vector<Tensor*> ptrs;
      for (auto& t : grads) ptrs.push_back(&t);
      totals.push_back(clip_grad_norm(ptrs, g.max_norm, g.norm_type));
      double sum = 0, sum_sq = 0;
      std::vector<double> flat;
      for (auto& t : grads)
        for (double v : t.as_double()) {
          sum += v;
          sum_sq += v * v;
          flat.push_back(v);
        }
      results.push_back(std::move(flat));
      EXPECT_TRUE(close(totals.back(), g.total_norm, rtol)) << totals.back() << " vs " << g.total_norm;
      EXPECT_TRUE(close(sum, g.output_sum, g.is_double ? 1e-10 : 1e-5)) << sum << " vs " << g.output_sum;
      EXPECT_TRUE(close(sum_sq, g.output_sum_sq, rtol * 2)) << sum_sq << " vs " << g.output_sum_sq;
    }
    // Bit-identical whatever the thread count.
    for (size_t i = 1; i < totals.size(); ++i) {
      EXPECT_EQ(totals[i], totals[0]);
      EXPECT_TRUE(results[i] == results[0]);
    }
  }
  omp_set_num_threads(saved);
}

TEST(Clipping, MixedTypesMapsAndSkippedEntries) {
  Tensor a = Tensor::from_vector<float>({2}, {3, 0});
  Tensor b = Tensor::from_vector<double>({1}, {4});
  Tensor undefined;
  EXPECT_DOUBLE_EQ(clip_grad_norm({&a, nullptr, &undefined, &b}, 1.0), 5.0);
  EXPECT_FLOAT_EQ(a.data<float>()[0], static_cast<float>(3.0 / (5.0 + 1e-6)));
  EXPECT_DOUBLE_EQ(b.data<double>()[0], 4.0 / (5.0 + 1e-6));
  EXPECT_DOUBLE_EQ(grad_norm({&a, &b}, kInf), b.data<double>()[0]);

  std::map<std::string, Tensor> step{{"w", Tensor::from_vector<float>({2}, {-6, 8})}};
  EXPECT_DOUBLE_EQ(clip_grad_norm(step, 20.0), 10.0);  // unclipped
  EXPECT_EQ(step.at("w").to_vector<float>(), (std::vector<float>{-6, 8}));
  clip_grad_value(step, 7.0);
  EXPECT_EQ(step.at("w").to_vector<float>(), (std::vector<float>{-6, 7}));

  EXPECT_EQ(clip_grad_norm(std::vector<Tensor*>{}, 1.0), 0.0);
  EXPECT_EQ(clip_grad_norm({nullptr}, 1.0), 0.0);
}

TEST(Clipping, BadArgumentsAreDataErrors) {
  Tensor a = Tensor::from_vector<float>({2}, {3, 4});
  Tensor i = Tensor::from_vector<int64_t>({1}, {3});
  EXPECT_THROW(clip_grad_norm({&i}, 1.0), DataError);
  EXPECT_THROW(clip_grad_value({&i}, 1.0), DataError);
  EXPECT_THROW(clip_grad_norm({&a}, -1.0), DataError);
  EXPECT_THROW(clip_grad_norm({&a}, kNaN), DataError);
  EXPECT_THROW(clip_grad_norm({&a}, 1.0, 0.0), DataError);
  EXPECT_THROW(clip_grad_norm({&a}, 1.0, -kInf), DataError);
  EXPECT_THROW(clip_grad_value({&a}, -0.5), DataError);
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{3, 4}));
  Tensor bad = Tensor::from_vector<double>({2}, {1, kInf});
  EXPECT_THROW(clip_grad_norm({&bad}, 1.0, 2.0, /*error_if_nonfinite=*/true), DataError);
  EXPECT_EQ(bad.data<double>()[0], 1.0);
}

}  // namespace
