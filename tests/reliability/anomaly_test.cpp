// Anomaly mode names the first node producing NaN or Inf; Relu lets NaN through as PyTorch
// does (oneDNN's relu alone would turn it into 0 and hide where it started).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "onnxtrain/onnxtrain.h"

using namespace onnxtrain;

namespace {

// Log of a negative input is NaN; Relu then passes it on to the loss.
const char* const kLogModel = R"(
  <ir_version: 8, opset_import: ["" : 17]>
  g (float[N, 4] X) => (float[N, 3] Y)
  <float[4, 3] W = {0.1, -0.2, 0.3, 0.4, 0.5, -0.6, 0.7, 0.8, -0.9, 1.0, 1.1, 1.2}, float[3] b = {0.1, 0.2, 0.3}>
  { A = Abs(X) S = Sub(A, X) L = Log(S) R = Relu(L) H = MatMul(R, W) Y = Add(H, b) }
)";

std::map<std::string, Tensor> batch(float x0) {
  return {{"X", Tensor::from_vector<float>({2, 4}, {x0, 2, 3, 4, -1, -2, -3, -4})},
          {"label", Tensor::from_vector<float>({2, 3}, {1, 0, 1, 0, 1, 0})}};
}

std::string error_of(TrainingSession& s, const std::map<std::string, Tensor>& feeds) {
  try {
    s.train_step(feeds);
  } catch (const NonFiniteLoss& e) {
    return e.what();
  }
  return "";
}

TrainingOptions mse(bool detect) {
  TrainingOptions o;
  o.loss.kind = "mse";
  o.optimizer.kind = "sgd";
  o.detect_anomaly = detect;
  return o;
}

TEST(DetectAnomaly, NamesTheFirstNodeProducingNaN) {
  Model model = Model::from_text(kLogModel);
  TrainingSession s(model, mse(true));
  const Tensor w_before = model.initializer("W");
  // Row 0: |x| - x = 0 for x >= 0, log(0) = -inf; the first anomaly is the Log node's output.
  const std::string msg = error_of(s, batch(1));
  EXPECT_NE(msg.find("Log"), std::string::npos) << msg;
  EXPECT_NE(msg.find("output 'L'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("inputs were finite"), std::string::npos) << msg;
  EXPECT_EQ(std::memcmp(model.initializer("W").raw(), w_before.raw(), w_before.nbytes()), 0) << "no update applied";
}

// Without anomaly mode: Relu(-inf) = 0 hides the Log node's -inf completely, and a NaN
// input reaches the loss through Relu (as in PyTorch), which is all that is checked.
TEST(DetectAnomaly, WithoutItOnlyTheLossIsChecked) {
  Model model = Model::from_text(kLogModel);
  TrainingSession s(model, mse(false));
  EXPECT_EQ(error_of(s, batch(1)), "");
  const std::string msg = error_of(s, batch(NAN));
  EXPECT_NE(msg.find("the loss is nan"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("Log"), std::string::npos) << msg;
}

TEST(DetectAnomaly, NamesANonFiniteInputAsTheSource) {
  Model model = Model::from_text(kLogModel);
  TrainingSession s(model, mse(true));
  const std::string msg = error_of(s, batch(NAN));
  EXPECT_NE(msg.find("Abs"), std::string::npos) << msg;
  EXPECT_NE(msg.find("input 'X' already was not finite"), std::string::npos) << msg;
}

TEST(Relu, PropagatesNaNLikePyTorch) {
  Model model = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[N] X) => (float[N] Y, float[N] Z)
    { Y = Relu(X) Z = LeakyRelu<alpha = 0.0>(X) }
  )");
  InferenceSession s(model);
  auto out = s.run({{"X", Tensor::from_vector<float>({6}, {NAN, -1, 2, INFINITY, -INFINITY, -0.0f})}});
  for (const char* name : {"Y", "Z"}) {
    const auto y = out.at(name).to_vector<float>();
    SCOPED_TRACE(name);
    EXPECT_TRUE(std::isnan(y[0]));
    EXPECT_EQ(y[1], 0.f);
    EXPECT_EQ(y[2], 2.f);
    EXPECT_EQ(y[3], INFINITY);
    EXPECT_EQ(y[4], 0.f);
    EXPECT_EQ(y[5], 0.f);
  }
}

}  // namespace
