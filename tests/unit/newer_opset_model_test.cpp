// A model in opset 21 form (GroupNormalization-21, Gelu-20, ReduceMean-18 with axes as an
// input, Pad-18 with axes, Split-18 num_outputs) loads, reports what it uses, differentiates
// correctly end to end, trains, and exports keeping its opset.
#include <gtest/gtest.h>

#include <filesystem>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/gradcheck.h"
#include "tests/support/node_case.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

const char* kBody = R"(
  {
    pads = Constant <value = int64[4] {1, 1, 1, 1}> ()
    pad_axes = Constant <value = int64[2] {2, 3}> ()
    zero = Constant <value = TYPE {0.0}> ()
    padded = Pad(x, pads, zero, pad_axes)
    c = Conv(padded, w)
    n = GroupNormalization <num_groups = 2> (c, gs, gb)
    a = Gelu(n)
    left, right = Split <axis = 1, num_outputs = 2> (a)
    m = Mul(left, right)
    axes = Constant <value = int64[2] {2, 3}> ()
    p = ReduceMean <keepdims = 0> (m, axes)
    y = Gemm <transB = 1> (p, fc)
  }
)";

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

std::string values(const Tensor& t) {
  std::string s;
  for (int64_t i = 0; i < t.numel(); ++i) s += (i ? ", " : "") + std::to_string(t.data<float>()[i]);
  return s;
}

const std::map<std::string, Shape> kParams = {{"w", {4, 2, 3, 3}}, {"gs", {4}}, {"gb", {4}}, {"fc", {3, 2}}};

// Parameters as graph inputs (for finite differences) or as initializers (for training).
std::string model_text(DType dtype, bool parameters_as_inputs) {
  const std::string t = dtype == DType::Double ? "double" : "float";
  std::string inputs = t + "[N, 2, 4, 4] x", inits;
  uint64_t seed = 7;
  for (const auto& [name, shape] : kParams) {
    std::string dims;
    for (int64_t d : shape) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
    if (parameters_as_inputs) {
      inputs += ", " + t + "[" + dims + "] " + name;
    } else {
      const Tensor v = test::random_tensor(DType::Float, shape, seed++, name == "gs" ? 0.5 : -0.5, name == "gs" ? 1.5 : 0.5);
      inits += std::string(inits.empty() ? "" : ", ") + t + "[" + dims + "] " + name + " = {" + values(v) + "}";
    }
  }
  return std::string("<ir_version: 10, opset_import: [\"\" : 21]>\ng (") + inputs + ") => (" + t + "[N, 3] y)" +
         (inits.empty() ? "" : " <" + inits + ">") + replace_all(kBody, "TYPE", t);
}

TEST(NewerOpsetModel, InfoNamesTheNewerForms) {
  Model model = Model::from_text(model_text(DType::Float, false));
  const auto newer = model.info().newer_opset_ops;
  EXPECT_EQ(newer.at("GroupNormalization"), 21);
  EXPECT_EQ(newer.at("Gelu"), 20);
  EXPECT_EQ(newer.at("ReduceMean"), 18);
  EXPECT_EQ(newer.at("Split"), 18);
  EXPECT_EQ(newer.at("Pad"), 18);
  EXPECT_FALSE(newer.count("Conv"));
  EXPECT_EQ(model.outputs()[0].dims, (std::vector<std::string>{"N", "3"}));
}

TEST(NewerOpsetModel, WholeModelGradientsMatchFiniteDifferences) {
  test::GradCase c;
  c.model_text = model_text(DType::Double, true);
  c.inputs["x"] = test::random_tensor(DType::Double, {2, 2, 4, 4}, 1, -2, 2);
  uint64_t seed = 7;
  for (const auto& [name, shape] : kParams)
    c.inputs[name] = test::random_tensor(DType::Double, shape, seed++, name == "gs" ? 0.5 : -0.5, name == "gs" ? 1.5 : 0.5);
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(NewerOpsetModel, TrainsAndExportsKeepingItsOpset) {
  Model model = Model::from_text(model_text(DType::Float, false));
  TrainingOptions options;
  options.loss.kind = "cross_entropy";
  options.optimizer.kind = "adam";
  options.optimizer.lr = 0.05;
  TrainingSession session(model, options);
  const Tensor x = test::random_tensor(DType::Float, {4, 2, 4, 4}, 3, -2, 2);
  const Tensor labels = Tensor::from_vector<int64_t>({4}, {0, 1, 2, 1});
  const double first = session.train_step({{"x", x}, {"label", labels}}).loss;
  double last = first;
  for (int i = 0; i < 20; ++i) last = session.train_step({{"x", x}, {"label", labels}}).loss;
  EXPECT_LT(last, 0.5 * first);

  const auto path = (std::filesystem::temp_directory_path() /
                     ("onnxtrain_opset21_" + std::to_string(::getpid()) + ".onnx")).string();
  model.save_inference(path);
  Model reloaded = Model::load(path);
  std::filesystem::remove(path);
  EXPECT_EQ(reloaded.info().opsets.at(""), 21);
  const Tensor before = InferenceSession(model).run({{"x", x}}).at("y");
  const Tensor after = InferenceSession(reloaded).run({{"x", x}}).at("y");
  EXPECT_EQ(test::compare_tensors(after, before, 0, 0), "");
}

}  // namespace
