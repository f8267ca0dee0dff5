// Forward parity with PyTorch: every sample model in models/ (exported at opsets 13 and 17,
// in TRAINING and EVAL mode) gives PyTorch's outputs on the golden input.
#include <gtest/gtest.h>

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

INSTANTIATE_TEST_SUITE_P(Models, ForwardParity, ::testing::ValuesIn(all_variants()),
                         [](const auto& info) { return info.param.name(); });

}  // namespace
