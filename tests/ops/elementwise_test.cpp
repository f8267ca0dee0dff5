// Behaviour of the elementwise families that the ONNX backend data does not cover.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "onnxtrain/onnxtrain.h"

using namespace onnxtrain;

namespace {

Tensor run1(const std::string& text, const std::map<std::string, Tensor>& feeds) {
  Model model = Model::from_text(text);
  InferenceSession session(model);
  return session.run(feeds)["Y"];
}

std::string unary_model(const std::string& type, const std::string& op, int opset = 17) {
  return "<ir_version: 8, opset_import: [\"\" : " + std::to_string(opset) + "]>\ng (" + type + "[N] X) => (" + type +
         "[N] Y) { Y = " + op + "(X) }";
}

}  // namespace

TEST(Elementwise, DnnlChainsOnSmallShapes) {
  Tensor x = Tensor::from_vector<float>({3}, {-1, 0, 1});
  auto hs = run1(unary_model("float", "HardSigmoid<alpha = 0.5, beta = 0.6>"), {{"X", x}}).to_vector<float>();
  EXPECT_FLOAT_EQ(hs[0], 0.1f);
  EXPECT_FLOAT_EQ(hs[1], 0.6f);
  EXPECT_FLOAT_EQ(hs[2], 1.0f);
  auto selu = run1(unary_model("float", "Selu<alpha = 2.0, gamma = 3.0>"), {{"X", x}}).to_vector<float>();
  EXPECT_NEAR(selu[0], 3 * 2 * (std::exp(-1.0) - 1), 1e-5);
  EXPECT_FLOAT_EQ(selu[1], 0.f);
  EXPECT_FLOAT_EQ(selu[2], 3.f);
}

TEST(Elementwise, RoundIsHalfToEven) {
  Tensor x = Tensor::from_vector<float>({8}, {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 2.4f, -2.6f});
  EXPECT_EQ(run1(unary_model("float", "Round"), {{"X", x}}).to_vector<float>(),
            (std::vector<float>{0, 2, 2, -0.f, -2, -2, 2, -3}));
  Tensor xd = Tensor::from_vector<double>({3}, {0.5, 1.5, 2.5});
  EXPECT_EQ(run1(unary_model("double", "Round"), {{"X", xd}}).to_vector<double>(), (std::vector<double>{0, 2, 2}));
}
