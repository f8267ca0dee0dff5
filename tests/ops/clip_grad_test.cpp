// ai.onnxtrain ClipGradNorm, the clipping node of the training graph: the same numbers as
// torch.nn.utils.clip_grad_norm_ (the public clip_grad_norm, checked against torch goldens
// in tests/unit/clipping_test.cpp), gradients passed on unchanged below the bound.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/node_case.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

Tensor random_tensor(const Shape& shape, uint64_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, scale);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (auto& e : v) e = dist(rng);
  return Tensor::from_vector<float>(shape, v);
}

// Two gradients (one large enough for several reduction blocks) through one ClipGradNorm node.
std::map<std::string, Tensor> run_clip(float max_norm, const Tensor& a, const Tensor& b) {
  const test::NodeCase clip{"ai.onnxtrain.ClipGradNorm", "max_norm = " + std::to_string(max_norm),
                            {"float[3,5] A", "float[20000] B"}, {"float[3,5] A2", "float[20000] B2", "double N"}, 17,
                            {{"ai.onnxtrain", 1}}};
  return test::run_node_case(clip, {{"A", a}, {"B", b}});
}

}  // namespace

TEST(ClipGradNorm, ScalesLikeClipGradNormAbove) {
  const Tensor a = random_tensor({3, 5}, 1, 2.f), b = random_tensor({20000}, 2, 0.5f);
  auto out = run_clip(1.5f, a, b);
  Tensor ea = a.clone(), eb = b.clone();
  const double norm = clip_grad_norm(std::vector<Tensor*>{&ea, &eb}, 1.5);
  ASSERT_GT(norm, 1.5);
  EXPECT_EQ(out.at("N").as_double().at(0), norm);
  EXPECT_EQ(std::memcmp(out.at("A2").raw(), ea.raw(), ea.nbytes()), 0);
  EXPECT_EQ(std::memcmp(out.at("B2").raw(), eb.raw(), eb.nbytes()), 0);
}

TEST(ClipGradNorm, PassesGradientsOnBelowTheBound) {
  const Tensor a = random_tensor({3, 5}, 3, 1e-3f), b = random_tensor({20000}, 4, 1e-4f);
  auto out = run_clip(100.f, a, b);
  EXPECT_LT(out.at("N").as_double().at(0), 100.0);
  EXPECT_EQ(std::memcmp(out.at("A2").raw(), a.raw(), a.nbytes()), 0);
  EXPECT_EQ(std::memcmp(out.at("B2").raw(), b.raw(), b.nbytes()), 0);
}

TEST(ClipGradNorm, RejectsAMissingBound) {
  const test::NodeCase clip{"ai.onnxtrain.ClipGradNorm", "", {"float[3] A"}, {"float[3] A2", "double N"}, 17,
                            {{"ai.onnxtrain", 1}}};
  // Loading succeeds; the missing attribute is a ModelError when the node runs.
  Model model = Model::from_text(clip.text());
  InferenceSession session(model);
  const std::string message = test::error_of<ModelError>([&] { session.run({{"A", random_tensor({3}, 5, 1.f)}}); });
  EXPECT_CONTAINS(message, "max_norm");
}
