// Autodiff parity with PyTorch: for each sample model (TRAINING export, opsets 13 and 17),
// the loss and the gradient of every parameter on the golden batch match PyTorch's
// (models/<model>/grads.npz), compared tensor by tensor with a readable report.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <sstream>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

struct Variant {
  std::string model, opset;
  std::string name() const { return model + "_op" + opset + "_train"; }
};

void PrintTo(const Variant& v, std::ostream* os) { *os << v.name(); }

class GradientParity : public ::testing::TestWithParam<Variant> {};

TEST_P(GradientParity, MatchesPyTorch) {
  const Variant& v = GetParam();
  const std::string dir = test::source_dir() + "/models/" + v.model + "/";
  Model model = Model::load(dir + v.name() + ".onnx");
  auto golden = read_npz(dir + "golden.npz");
  auto grads = read_npz(dir + "grads.npz");
  TrainingOptions options;
  options.loss.kind = v.model == "unet" ? "mse" : "cross_entropy";
  options.bn_running_var = "pytorch";
  // Start BatchNorm from the statistics PyTorch's step started from (the TRAINING export
  // stores them after its tracing pass).
  for (const auto& [key, t] : grads)
    if (key.rfind("buffer_before.", 0) == 0) model.set_initializer(key.substr(14), t);
  TrainingSession session(model, options);

  std::set<std::string> expected;
  for (const auto& [key, t] : grads)
    if (key.rfind("grad.", 0) == 0) expected.insert(key.substr(5));
  std::set<std::string> trainable(session.trainable().begin(), session.trainable().end());
  EXPECT_EQ(trainable, expected) << "trainable parameters differ from PyTorch's";

  auto result = session.compute_gradients({{"input", golden.at("input.input")}, {"label", grads.at("target")}});
  const double loss = grads.at("loss").as_double()[0];
  EXPECT_NEAR(result.loss, loss, 1e-5 * std::abs(loss)) << "loss";

  std::ostringstream report;
  bool ok = true;
  for (const auto& name : expected) {
    auto it = result.gradients.find(name);
    if (it == result.gradients.end()) continue;
    const Tensor& want = grads.at("grad." + name);
    if (it->second.shape() != want.shape()) {
      report << "  " << name << ": shape " << shape_str(it->second.shape()) << " vs " << shape_str(want.shape()) << "\n";
      ok = false;
      continue;
    }
    double err = test::scaled_error(it->second, want);
    report << "  " << (err <= 1e-4 ? "ok  " : "BAD ") << name << shape_str(want.shape()) << " scaled error " << err
           << "\n";
    ok = ok && err <= 1e-4;
  }
  // Running statistics after the step, written back to the model (PyTorch's unbiased update).
  int buffers = 0;
  for (const auto& [key, t] : grads) {
    if (key.rfind("buffer.", 0) != 0 || key.find("num_batches") != std::string::npos) continue;
    ++buffers;
    double err = test::scaled_error(model.initializer(key.substr(7)), t);
    report << "  " << (err <= 1e-5 ? "ok  " : "BAD ") << key << " scaled error " << err << "\n";
    ok = ok && err <= 1e-5;
  }
  if (v.model == "resnet") {
    EXPECT_EQ(buffers, 18) << "9 BatchNorm layers, mean and variance each";
  }
  EXPECT_TRUE(ok) << v.name() << " gradients vs PyTorch:\n" << report.str();
}

std::vector<Variant> variants() {
  std::vector<Variant> out;
  for (const char* m : {"mlp", "lenet", "resnet", "transformer", "gru", "unet"})
    for (const char* o : {"13", "17"}) out.push_back({m, o});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Models, GradientParity, ::testing::ValuesIn(variants()),
                         [](const auto& info) { return info.param.name(); });

}  // namespace
