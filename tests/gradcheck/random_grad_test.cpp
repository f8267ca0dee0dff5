// Gradient proofs for Dropout (random.cpp) against finite differences (through local_check:
// a fresh executor per evaluation reproduces the mask).
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <unordered_map>

#include "graph/passes/autodiff.h"
#include "graph/importer.h"
#include "src/executor.h"
#include "tests/support/local_grad.h"
#include "tests/support/node_case.h"

using namespace onnxtrain;
using onnxtrain::test::GradCase;
using onnxtrain::test::model_header;
using namespace onnxtrain::test::local_grad;

namespace {

// ---------------------------------------------------------------------------------------
// Dropout (through local_check: a fresh executor per evaluation reproduces the mask).

struct DropoutCase {
  std::string name;
  int opset;
  std::string body;  // the node
  std::string extra_inputs;
  std::map<std::string, Tensor> extra;
  DType dtype = DType::Double;
};

void PrintTo(const DropoutCase& c, std::ostream* os) { *os << c.name; }

class DropoutGrad : public ::testing::TestWithParam<DropoutCase> {};

TEST_P(DropoutGrad, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  const std::string t = type_name(p.dtype);
  std::string text = model_header(p.opset) + "g (" + t + "[4,6] X" + p.extra_inputs + ") => (" + t + "[4,6] Y) { " +
                     p.body + " }";
  std::map<std::string, Tensor> inputs = p.extra;
  inputs["X"] = test::random_tensor(p.dtype, {4, 6}, 61, -2, 2);
  const bool dbl = p.dtype == DType::Double;
  EXPECT_EQ(local_check(text, inputs, {"X"}, dbl ? 1e-6 : 1e-2, dbl ? 1e-6 : 1e-3, dbl ? 1e-8 : 1e-4), "");
}

std::vector<DropoutCase> dropout_cases() {
  std::vector<DropoutCase> out;
  for (DType dt : {DType::Double, DType::Float}) {
    const std::string s = dt == DType::Double ? "_f64" : "_f32";
    const std::string t = type_name(dt);
    Tensor ratio = dt == DType::Double ? Tensor::scalar<double>(0.3) : Tensor::scalar<float>(0.3f);
    out.push_back({"opset13_training" + s, 13, "Y = Dropout <seed = 7> (X, ratio, mode)",
                   ", " + t + " ratio, bool mode",
                   {{"ratio", ratio}, {"mode", Tensor::scalar<bool>(true)}}, dt});
    out.push_back({"opset13_training_mask_output" + s, 13, "Y, M = Dropout <seed = 3> (X, ratio, mode)",
                   ", " + t + " ratio, bool mode",
                   {{"ratio", ratio}, {"mode", Tensor::scalar<bool>(true)}}, dt});
  }
  out.push_back({"opset13_training_default_ratio", 13, "Y = Dropout <seed = 5> (X, , mode)", ", bool mode",
                 {{"mode", Tensor::scalar<bool>(true)}}});
  out.push_back({"opset13_inference", 13, "Y = Dropout <seed = 5> (X, ratio, mode)", ", double ratio, bool mode",
                 {{"ratio", Tensor::scalar<double>(0.4)}, {"mode", Tensor::scalar<bool>(false)}}});
  out.push_back({"opset13_ratio_zero", 13, "Y = Dropout <seed = 5> (X, ratio, mode)", ", double ratio, bool mode",
                 {{"ratio", Tensor::scalar<double>(0.0)}, {"mode", Tensor::scalar<bool>(true)}}});
  out.push_back({"opset12_no_training_mode", 12, "Y = Dropout <seed = 5> (X)", "", {}});
  out.push_back({"opset10_inference", 10, "Y, M = Dropout <ratio = 0.5> (X)", "", {}});
  out.push_back({"opset7_inference", 7, "Y = Dropout <ratio = 0.5> (X)", "", {}});
  out.push_back({"opset6_is_test0", 6, "Y = Dropout <ratio = 0.4, is_test = 0> (X)", "", {}});
  out.push_back({"opset6_is_test1", 6, "Y = Dropout <ratio = 0.4, is_test = 1> (X)", "", {}});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, DropoutGrad, ::testing::ValuesIn(dropout_cases()),
                         [](const auto& info) { return info.param.name; });

// Training-mode Dropout really drops: the gradient is dY * mask / (1 - ratio), with zeros.
TEST(DropoutGradMask, GradientIsScaledMask) {
  const std::string text = model_header(13) +
                           "g (double[8,8] X, double ratio, bool mode) => (double[8,8] Y, bool[8,8] M) "
                           "{ Y, M = Dropout <seed = 11> (X, ratio, mode) }";
  onnx::ModelProto proto;
  graph::load_model_text(text, proto);
  auto g = graph::import_graph(proto, graph::ImportOptions{});
  auto grads = graph::build_gradient_graph(*g, "Y", {"X"});
  std::unordered_map<std::string, Tensor> feeds{{"X", test::random_tensor(DType::Double, {8, 8}, 71)},
                                                {"ratio", Tensor::scalar<double>(0.25)},
                                                {"mode", Tensor::scalar<bool>(true)}};
  auto out = Executor(*g, {"M", grads.gradient_of["X"]}).run(feeds);
  int dropped = 0;
  for (int64_t i = 0; i < 64; ++i) {
    const bool keep = out[0].data<bool>()[i];
    dropped += !keep;
    EXPECT_DOUBLE_EQ(out[1].data<double>()[i], keep ? 1.0 / 0.75 : 0.0) << i;
  }
  EXPECT_GT(dropped, 0);
  EXPECT_LT(dropped, 64);
}

}  // namespace
