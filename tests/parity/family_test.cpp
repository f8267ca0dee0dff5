// The model families people fine-tune (models/families/make_families.py): torchvision's
// efficientnet, convnext, vision transformer, densenet, shufflenet_v2, regnet, swin and
// deeplabv3 on mobilenet_v3; a bidirectional LSTM, a GPT-style decoder with a tied LM head,
// a 3-D and a 1-D CNN. Exported from PyTorch in training mode and float64: one training
// step's loss and every parameter's gradient match PyTorch's float64 run. In float64 both
// sides are exact up to float32 attributes (BatchNorm/LayerNorm epsilon), so the tolerance
// is tight and no float32 chaos is judged.
#include <gtest/gtest.h>

#include <cmath>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

class FamilyGradients : public ::testing::TestWithParam<std::string> {};

TEST_P(FamilyGradients, OneStepMatchesPyTorchFloat64) {
  const std::string base = test::source_dir() + "/models/families/" + GetParam();
  Model model = Model::load(base + ".onnx");
  const auto golden = read_npz(base + ".npz");
  TrainingOptions options;
  options.loss.kind = "cross_entropy";
  TrainingSession session(model, options);
  const auto step = session.compute_gradients({{"input", golden.at("input")}, {"label", golden.at("label")}});
  const double loss = golden.at("loss").data<double>()[0];
  EXPECT_NEAR(step.loss, loss, 1e-7 * std::abs(loss));
  int compared = 0;
  for (const auto& [key, expected] : golden) {
    if (key.rfind("grad.", 0) != 0) continue;
    const std::string name = key.substr(5);
    auto it = step.gradients.find(name);
    ASSERT_NE(it, step.gradients.end()) << "no gradient for " << name;
    // Relative to the tensor's largest gradient: tiny entries carry no meaning alone.
    double scale = 0;
    for (int64_t i = 0; i < expected.numel(); ++i) scale = std::max(scale, std::abs(expected.data<double>()[i]));
    EXPECT_EQ(test::compare_tensors(it->second, expected, 0, 1e-6 * scale + 1e-12), "") << name;
    ++compared;
  }
  for (const auto& [name, grad] : step.gradients)
    EXPECT_TRUE(golden.count("grad." + name)) << "a gradient PyTorch has none for: " << name;
  EXPECT_EQ(compared, static_cast<int>(step.gradients.size()));
}

INSTANTIATE_TEST_SUITE_P(Models, FamilyGradients,
                         ::testing::Values("efficientnet", "convnext", "vit", "densenet", "shufflenet_v2", "regnet", "swin", "deeplabv3",
                                           "bilstm", "gpt_tied", "conv3d", "conv1d"),
                         [](const auto& info) { return info.param; });

}  // namespace
