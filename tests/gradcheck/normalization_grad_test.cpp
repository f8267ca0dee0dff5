// Gradient proofs for the normalization family (BatchNormalization, InstanceNormalization,
// LayerNormalization, LRN, MeanVarianceNormalization) against finite differences.
#include <gtest/gtest.h>

#include <cmath>

#include "tests/support/local_grad.h"
#include "tests/support/node_case.h"

using namespace onnxtrain;
using onnxtrain::test::GradCase;
using onnxtrain::test::model_header;
using namespace onnxtrain::test::local_grad;

namespace {

// BatchNormalization

struct BnCase {
  std::string name;
  int opset;
  std::string attrs;    // e.g. "<training_mode = 1>"
  std::string outputs;  // the node's outputs, e.g. "Y, rm, rv"
  Shape x, param;
  DType dtype = DType::Double;
};

void PrintTo(const BnCase& c, std::ostream* os) { *os << c.name; }

class BatchNormGrad : public ::testing::TestWithParam<BnCase> {};

GradCase bn_case(const BnCase& p) {
  const std::string t = type_name(p.dtype);
  GradCase c;
  c.model_text = model_header(p.opset) + "g (" + t + dims(p.x) + " X, " + t + dims(p.param) + " scale, " + t +
                 dims(p.param) + " B, " + t + dims(p.param) + " mean, " + t + dims(p.param) + " var) => (" + t +
                 dims(p.x) + " Y) { " + p.outputs + " = BatchNormalization " + p.attrs +
                 "(X, scale, B, mean, var) }";
  c.inputs = {{"X", test::random_tensor(p.dtype, p.x, 1, -2, 2)},
              {"scale", test::random_tensor(p.dtype, p.param, 2, 0.5, 1.5)},
              {"B", test::random_tensor(p.dtype, p.param, 3)},
              {"mean", test::random_tensor(p.dtype, p.param, 4, -0.5, 0.5)},
              {"var", test::random_tensor(p.dtype, p.param, 5, 0.5, 1.5)}};
  c.wrt = {"X", "scale", "B"};
  loosen_for_float(c, p.dtype);
  return c;
}

TEST_P(BatchNormGrad, MatchesFiniteDifferences) { EXPECT_EQ(check(bn_case(GetParam()), GetParam().opset), ""); }

// The running statistics are never trained, in either mode.
TEST_P(BatchNormGrad, RunningStatisticsAreNotDifferentiable) {
  GradCase c = bn_case(GetParam());
  c.wrt = {"mean"};
  EXPECT_NE(check(c, GetParam().opset).find("no gradient was built for 'mean'"), std::string::npos);
}

std::vector<BnCase> bn_cases() {
  std::vector<BnCase> out;
  for (DType dt : {DType::Double, DType::Float}) {
    const std::string s = dt == DType::Double ? "_f64" : "_f32";
    out.push_back({"opset15_training" + s, 15, "<training_mode = 1>", "Y, rm, rv", {3, 3, 4, 5}, {3}, dt});
    out.push_back({"opset15_inference" + s, 15, "<training_mode = 0>", "Y", {2, 3, 4, 5}, {3}, dt});
    out.push_back({"opset9_five_outputs" + s, 9, "", "Y, rm, rv, sm, sv", {4, 3, 5}, {3}, dt});
  }
  out.push_back({"opset14_training_rank2", 14, "<training_mode = 1>", "Y, rm, rv", {6, 4}, {4}});
  out.push_back({"opset14_training_rank5", 14, "<training_mode = 1, epsilon = 0.01>", "Y, rm, rv",
                 {2, 2, 3, 2, 3}, {2}});
  // Saved statistics the model does not declare are created by the rule.
  out.push_back({"opset9_omitted_saved", 9, "", "Y, rm, rv, , ", {4, 3, 5}, {3}});
  out.push_back({"opset9_omitted_saved_f32", 9, "", "Y, rm, rv, , ", {4, 3, 5}, {3}, DType::Float});
  out.push_back({"opset15_training_only_Y", 15, "<training_mode = 1>", "Y", {3, 2, 4}, {2}});
  out.push_back({"opset9_inference", 9, "<epsilon = 0.001>", "Y", {2, 3, 4}, {3}});
  out.push_back({"opset6_is_test0", 6, "<is_test = 0>", "Y, rm, rv, sm, sv", {4, 2, 3}, {2}});
  out.push_back({"opset6_is_test1", 6, "<is_test = 1>", "Y", {4, 2, 3}, {2}});
  out.push_back({"opset7_spatial0_training", 7, "<spatial = 0>", "Y, rm, rv, sm, sv", {5, 2, 3}, {2, 3}});
  out.push_back({"opset7_spatial0_inference", 7, "<spatial = 0>", "Y", {5, 2, 3}, {2, 3}});
  out.push_back({"opset15_training_f32_big", 15, "<training_mode = 1>", "Y, rm, rv", {8, 4, 6, 6}, {4},
                 DType::Float});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, BatchNormGrad, ::testing::ValuesIn(bn_cases()),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------
// InstanceNormalization, LRN, MeanVarianceNormalization: single-input-ish ops.

struct SimpleCase {
  std::string name;
  std::string model_text;
  std::map<std::string, Tensor> inputs;
  DType dtype = DType::Double;
};

void PrintTo(const SimpleCase& c, std::ostream* os) { *os << c.name; }

class NormGrad : public ::testing::TestWithParam<SimpleCase> {};

TEST_P(NormGrad, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  GradCase c;
  c.model_text = p.model_text;
  c.inputs = p.inputs;
  loosen_for_float(c, p.dtype);
  const int opset = std::stoi(p.model_text.substr(p.model_text.find("\"\" : ") + 5));
  EXPECT_EQ(check(c, opset), "");
}

std::vector<SimpleCase> norm_cases() {
  std::vector<SimpleCase> out;
  for (DType dt : {DType::Double, DType::Float}) {
    const std::string t = type_name(dt), s = dt == DType::Double ? "_f64" : "_f32";
    // InstanceNormalization.
    out.push_back({"instancenorm" + s,
                   model_header(15) + "g (" + t + "[2,3,4,5] X, " + t + "[3] scale, " + t + "[3] B) => (" + t +
                       "[2,3,4,5] Y) { Y = InstanceNormalization <epsilon = 0.01> (X, scale, B) }",
                   {{"X", test::random_tensor(dt, {2, 3, 4, 5}, 11, -2, 2)},
                    {"scale", test::random_tensor(dt, {3}, 12, 0.5, 1.5)},
                    {"B", test::random_tensor(dt, {3}, 13)}},
                   dt});
    out.push_back({"instancenorm_rank3" + s,
                   model_header(6) + "g (" + t + "[3,2,7] X, " + t + "[2] scale, " + t + "[2] B) => (" + t +
                       "[3,2,7] Y) { Y = InstanceNormalization (X, scale, B) }",
                   {{"X", test::random_tensor(dt, {3, 2, 7}, 14, -2, 2)},
                    {"scale", test::random_tensor(dt, {2}, 15, 0.5, 1.5)},
                    {"B", test::random_tensor(dt, {2}, 16)}},
                   dt});
    // GroupNormalization: scale/bias per group (opset 18) and per channel (opset 21).
    for (int opset : {18, 21}) {
      const std::string params = opset >= 21 ? "6" : "3";
      out.push_back({"groupnorm_op" + std::to_string(opset) + s,
                     model_header(opset) + "g (" + t + "[2,6,2,3] X, " + t + "[" + params + "] scale, " + t + "[" +
                         params + "] B) => (" + t + "[2,6,2,3] Y) { Y = GroupNormalization <num_groups = 3, epsilon = 0.01> (X, scale, B) }",
                     {{"X", test::random_tensor(dt, {2, 6, 2, 3}, 31, -2, 2)},
                      {"scale", test::random_tensor(dt, {std::stoll(params)}, 32, 0.5, 1.5)},
                      {"B", test::random_tensor(dt, {std::stoll(params)}, 33)}},
                     dt});
    }
    // LRN: odd sizes (oneDNN for float32), even sizes (own loop, asymmetric window).
    for (int size : {3, 2, 5}) {
      out.push_back({"lrn_size" + std::to_string(size) + s,
                     model_header(13) + "g (" + t + "[2,6,3,4] X) => (" + t + "[2,6,3,4] Y) { Y = LRN <size = " +
                         std::to_string(size) + ", alpha = 0.5, beta = 0.75, bias = 1.5> (X) }",
                     {{"X", test::random_tensor(dt, {2, 6, 3, 4}, 17 + size, -2, 2)}},
                     dt});
    }
    out.push_back({"lrn_rank2" + s,
                   model_header(13) + "g (" + t + "[3,5] X) => (" + t + "[3,5] Y) { Y = LRN <size = 3, alpha = 0.3> (X) }",
                   {{"X", test::random_tensor(dt, {3, 5}, 21, -2, 2)}},
                   dt});
    // MeanVarianceNormalization.
    out.push_back({"mvn_default_axes" + s,
                   model_header(13) + "g (" + t + "[3,2,3,4] X) => (" + t +
                       "[3,2,3,4] Y) { Y = MeanVarianceNormalization (X) }",
                   {{"X", test::random_tensor(dt, {3, 2, 3, 4}, 22, -2, 2)}},
                   dt});
    out.push_back({"mvn_axes_last" + s,
                   model_header(13) + "g (" + t + "[3,4,5] X) => (" + t +
                       "[3,4,5] Y) { Y = MeanVarianceNormalization <axes = [1, 2]> (X) }",
                   {{"X", test::random_tensor(dt, {3, 4, 5}, 23, -2, 2)}},
                   dt});
    out.push_back({"mvn_axis_middle" + s,
                   model_header(9) + "g (" + t + "[3,4,5] X) => (" + t +
                       "[3,4,5] Y) { Y = MeanVarianceNormalization <axes = [1]> (X) }",
                   {{"X", test::random_tensor(dt, {3, 4, 5}, 24, -2, 2)}},
                   dt});
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, NormGrad, ::testing::ValuesIn(norm_cases()),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------
// LayerNormalization

struct LnCase {
  std::string name;
  Shape x, scale;
  int axis;
  bool bias;
  int stash;  // 1 float, 11 double
  DType dtype = DType::Double;
};

void PrintTo(const LnCase& c, std::ostream* os) { *os << c.name; }

class LayerNormGrad : public ::testing::TestWithParam<LnCase> {};

TEST_P(LayerNormGrad, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  const std::string t = type_name(p.dtype);
  GradCase c;
  c.model_text = model_header(17) + "g (" + t + dims(p.x) + " X, " + t + dims(p.scale) + " scale" +
                 (p.bias ? ", " + t + dims(p.scale) + " B" : std::string()) + ") => (" + t + dims(p.x) +
                 " Y) { Y = LayerNormalization <axis = " + std::to_string(p.axis) +
                 ", stash_type = " + std::to_string(p.stash) + "> (X, scale" + (p.bias ? ", B" : "") + ") }";
  c.inputs = {{"X", test::random_tensor(p.dtype, p.x, 31, -2, 2)},
              {"scale", test::random_tensor(p.dtype, p.scale, 32, 0.5, 1.5)}};
  if (p.bias) c.inputs["B"] = test::random_tensor(p.dtype, p.scale, 33);
  loosen_for_float(c, p.dtype);
  EXPECT_EQ(test::check_gradients(c), "");
}

// A model that already fetches Mean and InvStdDev works the same.
TEST(LayerNormGrad, WithDeclaredStatistics) {
  GradCase c;
  c.model_text = model_header(17) +
                 "g (double[3,4] X, double[4] scale, double[4] B) => (double[3,4] Y, double[3,1] M, double[3,1] "
                 "S) { Y, M, S = LayerNormalization <stash_type = 11> (X, scale, B) }";
  c.inputs = {{"X", test::random_tensor(DType::Double, {3, 4}, 34, -2, 2)},
              {"scale", test::random_tensor(DType::Double, {4}, 35, 0.5, 1.5)},
              {"B", test::random_tensor(DType::Double, {4}, 36)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

std::vector<LnCase> ln_cases() {
  std::vector<LnCase> out;
  for (DType dt : {DType::Double, DType::Float}) {
    const std::string s = dt == DType::Double ? "_f64" : "_f32";
    out.push_back({"axis_last" + s, {2, 3, 5}, {5}, -1, true, 1, dt});
    out.push_back({"axis1" + s, {2, 3, 5}, {3, 5}, 1, true, 1, dt});
    out.push_back({"axis0" + s, {3, 4}, {3, 4}, 0, true, 1, dt});
    out.push_back({"no_bias" + s, {4, 6}, {6}, -1, false, 1, dt});
    out.push_back({"scale_broadcast" + s, {2, 3, 4}, {4}, 1, true, 1, dt});
    out.push_back({"stash_double" + s, {2, 3, 5}, {5}, -1, true, 11, dt});
  }
  out.push_back({"axis_neg2_rank4_f64", {2, 2, 3, 4}, {3, 4}, -2, true, 11});
  out.push_back({"scale_broadcast_rows_f64", {2, 3, 4}, {3, 1}, 1, false, 11});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, LayerNormGrad, ::testing::ValuesIn(ln_cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
