// Training-step parity with PyTorch: 10 steps of each optimizer configuration on a fixed
// batch give PyTorch's loss at every step, its parameters at the end and, for models with
// BatchNormalization, its running statistics at the end
// (tests/data/optim/train_<model>.npz, made by make_train_goldens.py).
#include <gtest/gtest.h>

#include <cmath>
#include <iomanip>
#include <set>
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

OptimizerOptions optimizer_for(const TrainCase& c) {
  const std::string& config = c.config;
  OptimizerOptions o;
  if (config == "sgd") o.lr = 0.1;
  if (config == "sgd_momentum") o = {.kind = "sgd", .lr = 0.05, .momentum = 0.9, .dampening = 0.1, .weight_decay = 1e-3};
  if (config == "sgd_nesterov") o = {.kind = "sgd", .lr = 0.05, .momentum = 0.9, .nesterov = true};
  if (config == "adam" || config == "adam_cosine_clip") o = {.kind = "adam", .lr = 1e-2};
  if (config == "adam_amsgrad") o = {.kind = "adam", .lr = 1e-2, .weight_decay = 1e-3, .amsgrad = true};
  if (config == "adamw") o = {.kind = "adamw", .lr = 1e-2, .weight_decay = 0.05};
  if (config == "adagrad") o = {.kind = "adagrad", .lr = 0.05, .lr_decay = 0.01};
  if (config == "rmsprop") o = {.kind = "rmsprop", .lr = 1e-3, .momentum = 0.5, .centered = true};
  // MODEL_OVERRIDES of make_train_goldens.py: settings where PyTorch's float32 result is
  // not dominated by rounding noise (its docstring says why each is needed).
  const bool conv = c.model == "lenet" || c.model == "resnet";
  const bool adam = config == "adam" || config == "adamw";
  if (adam && (conv || c.model == "transformer")) o.eps = 1e-3;
  if (adam && conv) o.lr = 3e-3;
  if (config == "sgd" && conv) o.lr = c.model == "lenet" ? 0.05 : 0.01;
  if (config.starts_with("sgd_") && c.model == "lenet") o.lr = 0.02;
  return o;
}

// The configuration's hyperparameters under the names of the golden's `<config>.hp.<name>`
// (booleans as 0/1, an unset eps as -1).
std::map<std::string, double> hyperparameters(const TrainingOptions& t) {
  const OptimizerOptions& o = t.optimizer;
  return {{"lr", o.lr},
          {"momentum", o.momentum},
          {"dampening", o.dampening},
          {"weight_decay", o.weight_decay},
          {"nesterov", o.nesterov},
          {"amsgrad", o.amsgrad},
          {"centered", o.centered},
          {"lr_decay", o.lr_decay},
          {"eps", o.eps.value_or(-1)},
          {"clip", t.clip_grad_norm}};
}

// Names of the golden's arrays "<config>.<kind>.<name>", without the prefix.
std::set<std::string> golden_names(const std::map<std::string, Tensor>& want, const std::string& prefix) {
  std::set<std::string> out;
  for (const auto& [key, value] : want)
    if (key.starts_with(prefix)) out.insert(key.substr(prefix.size()));
  return out;
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
  options.optimizer = optimizer_for(c);
  // The goldens are PyTorch's BatchNorm running statistics (unbiased batch variance).
  options.bn_running_var = "pytorch";
  if (c.config == "adam_cosine_clip") {
    options.schedule.kind = ScheduleOptions::Kind::Cosine;
    options.total_steps = 10;
    options.clip_grad_norm = 0.5;
  }
  // The configuration must be the one the golden was made with. The golden stores the
  // settings its configuration names; the others are torch's defaults (0, eps unset).
  const auto hp = hyperparameters(options);
  for (const auto& key : golden_names(want, c.config + ".hp."))
    ASSERT_TRUE(hp.contains(key)) << "the golden has hyperparameter '" << key << "', which this test does not know";
  for (const auto& [key, value] : hp) {
    auto it = want.find(c.config + ".hp." + key);
    const double expected = it != want.end() ? it->second.as_double().at(0) : key == "eps" ? -1 : 0;
    ASSERT_EQ(value, expected) << key;
  }
  TrainingSession session(model, options);
  // Every PyTorch parameter must be trained here too, or it would escape the comparison.
  const auto& trainable = session.trainable();
  ASSERT_EQ(std::set<std::string>(trainable.begin(), trainable.end()), golden_names(want, c.config + ".param."));

  auto losses = want.at(c.config + ".loss").as_double();
  ASSERT_EQ(losses.size(), 10u);
  std::ostringstream report;
  bool ok = true;
  double worst_loss = 0, worst_param = 0, worst_buffer = 0;
  // Loss errors are relative to the first step's loss: once a model fits the batch, the loss
  // is tiny and float32 accumulation-order noise (our GEMMs vs PyTorch's) dominates its
  // relative error; the parameters below are compared at their own scale.
  const double loss_scale = std::abs(losses.at(0));
  for (size_t step = 0; step < losses.size(); ++step) {
    StepResult r = session.train_step({{"input", golden.at("input.input")}, {"label", target}});
    const double err = std::abs(r.loss - losses[step]) / loss_scale;
    worst_loss = std::max(worst_loss, err);
    if (err > 1e-5) {
      ok = false;
      report << "  step " << step + 1 << ": loss " << r.loss << ", PyTorch " << losses[step] << "\n";
    }
  }
  auto check = [&](const std::string& kind, const std::string& name, double& worst) {
    const double err = test::scaled_error(model.initializer(name), want.at(c.config + kind + name));
    worst = std::max(worst, err);
    if (err > 1e-4) {
      ok = false;
      report << "  " << name << ": scaled error " << err << "\n";
    }
  };
  for (const auto& name : trainable) check(".param.", name, worst_param);
  for (const auto& name : golden_names(want, c.config + ".buffer.")) check(".buffer.", name, worst_buffer);
  auto sci = [](double v) {
    std::ostringstream s;
    s << std::scientific << std::setprecision(1) << v;
    return s.str();
  };
  // The margins, in the XML report (--gtest_output=xml).
  RecordProperty("max_loss_error", sci(worst_loss));
  RecordProperty("max_param_error", sci(worst_param));
  RecordProperty("max_buffer_error", sci(worst_buffer));
  EXPECT_TRUE(ok) << c.name() << " vs PyTorch:\n" << report.str();
}

std::vector<TrainCase> cases() {
  // Keep in sync with MODEL_CONFIGS in make_train_goldens.py.
  const std::vector<std::string> basic = {"sgd", "sgd_momentum", "sgd_nesterov", "adam", "adamw"};
  std::vector<std::string> all = basic;
  all.insert(all.end(), {"adam_amsgrad", "adagrad", "rmsprop", "adam_cosine_clip"});
  const std::vector<std::pair<std::string, const std::vector<std::string>*>> models = {
      {"mlp", &all}, {"unet", &all}, {"gru", &all}, {"transformer", &basic}, {"lenet", &basic}, {"resnet", &basic}};
  std::vector<TrainCase> out;
  for (const auto& [m, configs] : models)
    for (const auto& c : *configs) out.push_back({m, c});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Optimizers, TrainParity, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name(); });

}  // namespace
