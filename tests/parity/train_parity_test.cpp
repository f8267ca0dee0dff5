// Training-step parity with PyTorch: 10 steps of each optimizer configuration on a fixed
// batch give PyTorch's loss at every step and its parameters at the end
// (tests/data/optim/train_<model>.npz, made by make_train_goldens.py).
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

struct TrainCase {
  std::string model, config;
  std::string name() const { return model + "_" + config; }
};

void PrintTo(const TrainCase& c, std::ostream* os) { *os << c.name(); }

OptimizerOptions optimizer_for(const std::string& config) {
  OptimizerOptions o;
  if (config == "sgd") o.lr = 0.1;
  if (config == "sgd_momentum") o = {.kind = "sgd", .lr = 0.05, .momentum = 0.9, .dampening = 0.1, .weight_decay = 1e-3};
  if (config == "sgd_nesterov") o = {.kind = "sgd", .lr = 0.05, .momentum = 0.9, .nesterov = true};
  if (config == "adam" || config == "adam_cosine_clip") o = {.kind = "adam", .lr = 1e-2};
  if (config == "adam_amsgrad") o = {.kind = "adam", .lr = 1e-2, .weight_decay = 1e-3, .amsgrad = true};
  if (config == "adamw") o = {.kind = "adamw", .lr = 1e-2, .weight_decay = 0.05};
  if (config == "adagrad") o = {.kind = "adagrad", .lr = 0.05, .lr_decay = 0.01};
  if (config == "rmsprop") o = {.kind = "rmsprop", .lr = 1e-3, .momentum = 0.5, .centered = true};
  return o;
}

class TrainParity : public ::testing::TestWithParam<TrainCase> {};

TEST_P(TrainParity, TenStepsMatchPyTorch) {
  const TrainCase& c = GetParam();
  const std::string dir = test::source_dir() + "/models/" + c.model + "/";
  auto golden = read_npz(dir + "golden.npz");
  auto target = read_npz(dir + "grads.npz").at("target");
  auto want = read_npz(test::source_dir() + "/tests/data/optim/train_" + c.model + ".npz");
  Model model = Model::load(dir + c.model + "_op17_train.onnx");
  TrainingOptions options;
  options.loss.kind = c.model == "unet" ? "mse" : "cross_entropy";
  options.optimizer = optimizer_for(c.config);
  if (c.config == "adam_cosine_clip") {
    options.schedule.kind = ScheduleOptions::Kind::Cosine;
    options.total_steps = 10;
    options.clip_grad_norm = 0.5;
  }
  TrainingSession session(model, options);
  auto losses = want.at(c.config + ".loss").as_double();
  std::ostringstream report;
  bool ok = true;
  // Loss errors are relative to the first step's loss: once a model fits the batch, the loss
  // is tiny and float32 accumulation-order noise (our GEMMs vs PyTorch's) dominates its
  // relative error; the parameters below are compared at their own scale.
  const double loss_scale = std::abs(losses.at(0));
  for (size_t step = 0; step < losses.size(); ++step) {
    StepResult r = session.train_step({{"input", golden.at("input.input")}, {"label", target}});
    const double err = std::abs(r.loss - losses[step]) / loss_scale;
    if (err > 1e-5) {
      ok = false;
      report << "  step " << step + 1 << ": loss " << r.loss << ", PyTorch " << losses[step] << "\n";
    }
  }
  for (const auto& name : session.trainable()) {
    double err = test::scaled_error(model.initializer(name), want.at(c.config + ".param." + name));
    if (err > 1e-4) {
      ok = false;
      report << "  " << name << ": scaled error " << err << "\n";
    }
  }
  EXPECT_TRUE(ok) << c.name() << " vs PyTorch:\n" << report.str();
}

std::vector<TrainCase> cases() {
  std::vector<TrainCase> out;
  for (const char* m : {"mlp", "unet"})
    for (const char* c : {"sgd", "sgd_momentum", "sgd_nesterov", "adam", "adam_amsgrad", "adamw", "adagrad", "rmsprop",
                          "adam_cosine_clip"})
      out.push_back({m, c});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Optimizers, TrainParity, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name(); });

}  // namespace
