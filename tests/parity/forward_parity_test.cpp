// Forward parity with PyTorch: every sample model in models/ (exported at opsets 13 and 17,
// in TRAINING and EVAL mode) gives PyTorch's outputs on the golden input.
#include <gtest/gtest.h>

#include <cstring>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

struct Variant {
  std::string model, opset, mode;
  std::string name() const { return model + "_op" + opset + "_" + mode; }
};

std::vector<Variant> all_variants() {
  std::vector<Variant> out;
  for (const char* m : {"mlp", "lenet", "resnet", "transformer", "gru", "unet"})
    for (const char* o : {"13", "17"})
      for (const char* mode : {"train", "eval"}) out.push_back({m, o, mode});
  return out;
}

void PrintTo(const Variant& v, std::ostream* os) { *os << v.name(); }

class ForwardParity : public ::testing::TestWithParam<Variant> {};

TEST_P(ForwardParity, MatchesPyTorch) {
  const Variant& v = GetParam();
  const std::string dir = test::source_dir() + "/models/" + v.model + "/";
  Model model = Model::load(dir + v.name() + ".onnx");
  auto golden = read_npz(dir + "golden.npz");
  InferenceSession session(model);
  auto out = session.run({{"input", golden.at("input.input")}});
  std::string diff = test::compare_tensors(out.at("output"), golden.at(v.name() + ".output"), 1e-4, 1e-5);
  EXPECT_TRUE(diff.empty()) << v.name() << ": " << diff;
}

// Dynamic batch: one session runs batch 4 and then batch 2 (a new input signature: new
// kernels, same plan) and batch 4 again (cached kernels); every run matches PyTorch.
TEST(ForwardParity, DynamicBatchReusesTheSession) {
  const std::string dir = test::source_dir() + "/models/resnet/";
  Model model = Model::load(dir + "resnet_op17_eval.onnx");
  auto golden = read_npz(dir + "golden.npz");
  const Tensor& x = golden.at("input.input");
  const Tensor& want = golden.at("resnet_op17_eval.output");
  InferenceSession session(model);
  auto first_two = [](const Tensor& t) {
    Shape s = t.shape();
    s[0] = 2;
    Tensor out(t.dtype(), s);
    std::memcpy(out.raw(), t.raw(), out.nbytes());
    return out;
  };
  EXPECT_EQ(test::compare_tensors(session.run({{"input", x}}).at("output"), want, 1e-4, 1e-5), "");
  EXPECT_EQ(test::compare_tensors(session.run({{"input", first_two(x)}}).at("output"), first_two(want), 1e-4, 1e-5), "");
  EXPECT_EQ(test::compare_tensors(session.run({{"input", x}}).at("output"), want, 1e-4, 1e-5), "");
}

// A TRAINING export evaluated with inference_mode: BatchNorm uses its running statistics,
// as PyTorch's eval() does. The export stores statistics after its own tracing pass, so the
// state PyTorch evaluated with is loaded first (grads.npz: buffer_before.*).
TEST(ForwardParity, TrainingExportInInferenceModeMatchesEval) {
  const std::string dir = test::source_dir() + "/models/resnet/";
  auto golden = read_npz(dir + "golden.npz");
  auto grads = read_npz(dir + "grads.npz");
  for (const char* opset : {"13", "17"}) {
    Model model = Model::load(dir + "resnet_op" + opset + "_train.onnx");
    for (const auto& [key, t] : grads)
      if (key.rfind("buffer_before.", 0) == 0) model.set_initializer(key.substr(14), t);
    InferenceSession eval(model, SessionOptions{.inference_mode = true});
    auto out = eval.run({{"input", golden.at("input.input")}}).at("output");
    EXPECT_EQ(test::compare_tensors(out, golden.at(std::string("resnet_op") + opset + "_eval.output"), 1e-4, 1e-5), "")
        << "opset " << opset;
    // As written, the same file keeps computing batch statistics.
    InferenceSession as_written(model);
    auto train_out = as_written.run({{"input", golden.at("input.input")}}).at("output");
    EXPECT_EQ(test::compare_tensors(train_out, golden.at(std::string("resnet_op") + opset + "_train.output"), 1e-4, 1e-5),
              "");
  }
}

INSTANTIATE_TEST_SUITE_P(Models, ForwardParity, ::testing::ValuesIn(all_variants()),
                         [](const auto& info) { return info.param.name(); });

}  // namespace
