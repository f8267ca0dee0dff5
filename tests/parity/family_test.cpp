// The model families people fine-tune (models/families/make_families.py): torchvision's
// efficientnet, convnext, vision transformer, densenet, shufflenet_v2, regnet, mnasnet,
// googlenet, swin and deeplabv3 on mobilenet_v3; a YOLO-style detector with three heads and
// a custom loss; a bidirectional LSTM, a GPT-style decoder with a tied LM head, a 3-D and a
// 1-D CNN. All exported from PyTorch in training mode.
//
// Float64: one step's loss and gradients, and ten optimizer steps' losses and parameters,
// match PyTorch's float64 run. Both sides are exact up to float32 attributes (the epsilon
// of BatchNorm/LayerNorm), so the tolerance is tight.
//
// Float32: judged against the float64 run, with PyTorch float32's own distance from it as
// the scale (its largest over runs that differ only in rounding: thread count, a one-ulp
// nudge of the parameters). onnxtrain passes a tensor when its distance is no more than a
// few times PyTorch's. Where PyTorch's own float32 runs land far from float64 the tensor is
// chaotic in float32 (an amplified rounding difference: a ReLU mask or max-pool winner
// flips) and is reported, not judged.
//
// ONNXTRAIN_FAMILY_DIR and ONNXTRAIN_FAMILIES (comma-separated) run the same checks on
// files made elsewhere, e.g. full-size torchvision models (make_families.py --out DIR).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

constexpr int kSteps = 10;
// A float32 distance passes at this many times PyTorch float32's ...
constexpr double kTimesPyTorch = 4;
// ... or below this many float32 unit roundoffs (2^-24) of the tensor's scale, where
// PyTorch's own distance happens to be tiny (e.g. an exact sum).
constexpr double kRoundoffFloor = 16 * 5.960464477539063e-08;
// PyTorch float32 farther than this fraction of the tensor's scale from float64: chaotic.
constexpr double kChaotic = 1e-3;

std::string family_dir() {
  const char* dir = std::getenv("ONNXTRAIN_FAMILY_DIR");
  return dir ? dir : test::source_dir() + "/models/families";
}

std::vector<std::string> family_names() {
  if (const char* names = std::getenv("ONNXTRAIN_FAMILIES")) {
    std::vector<std::string> out;
    std::stringstream in(names);
    for (std::string name; std::getline(in, name, ',');)
      if (!name.empty()) out.push_back(name);
    return out;
  }
  return {"efficientnet", "convnext", "vit",  "densenet", "shufflenet_v2", "regnet", "mnasnet", "googlenet",
          "swin",         "deeplabv3", "yolo", "bilstm",   "gpt_tied",      "conv3d", "conv1d"};
}

Tensor to_float(const Tensor& t) {
  if (t.dtype() != DType::Double) return t;
  Tensor out(DType::Float, t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) out.data<float>()[i] = static_cast<float>(t.data<double>()[i]);
  return out;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.as_double()) m = std::max(m, std::abs(v));
  return m;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  auto av = a.as_double(), bv = b.as_double();
  double m = 0;
  for (size_t i = 0; i < av.size(); ++i) m = std::max(m, std::abs(av[i] - bv[i]));
  return m;
}

double scalar(const Tensor& t) { return t.as_double().at(0); }

struct Family {
  std::string name, base;
  std::map<std::string, Tensor> golden;

  explicit Family(std::string n) : name(std::move(n)), base(family_dir() + "/" + name), golden(read_npz(base + ".npz")) {}

  std::map<std::string, Tensor> feeds(bool float32) const {
    std::map<std::string, Tensor> out;
    for (const auto& [key, value] : golden)
      if (key.rfind("feed.", 0) == 0) out[key.substr(5)] = float32 ? to_float(value) : value;
    return out;
  }

  // Cross-entropy on the single output, or the family's own loss model (in the model's
  // float type) next to it.
  TrainingOptions options(bool float32) const {
    TrainingOptions options;
    const std::string loss_model = base + (float32 ? ".loss.f32.onnx" : ".loss.onnx");
    if (std::filesystem::exists(loss_model)) {
      options.loss.kind = "custom";
      options.loss.model_path = loss_model;
    } else {
      options.loss.kind = "cross_entropy";
    }
    const auto opt = golden.at("opt").as_double();  // [adam?, lr, momentum]
    options.optimizer.kind = opt.at(0) != 0 ? "adam" : "sgd";
    options.optimizer.lr = opt.at(1);
    options.optimizer.momentum = opt.at(2);
    return options;
  }

  // PyTorch float32's distance from float64 for a golden key (make_families.py).
  double f32err(const std::string& key) const { return scalar(golden.at("f32err." + key)); }

  std::vector<std::string> keys(const std::string& prefix) const {
    std::vector<std::string> out;
    for (const auto& [key, value] : golden)
      if (key.rfind(prefix, 0) == 0) out.push_back(key.substr(prefix.size()));
    return out;
  }
};

// Ten steps on the family's batch: the first step's gradients, every loss, the parameters.
struct TrainingRun {
  StepGradients first;
  std::vector<double> losses;
  std::map<std::string, Tensor> params;
};

TrainingRun train(Model& model, const TrainingOptions& options, const std::map<std::string, Tensor>& feeds,
          const std::vector<std::string>& param_names) {
  TrainingSession session(model, options);
  TrainingRun run;
  run.first = session.compute_gradients(feeds);
  for (int i = 0; i < kSteps; ++i) run.losses.push_back(session.train_step(feeds).loss);
  for (const auto& name : param_names) run.params[name] = session.parameter(name);
  return run;
}

// Verdicts on a set of tensors: each passes when its distance from float64 is within
// max(kTimesPyTorch x PyTorch float32's distance, floor x the tensor's scale); tensors where
// PyTorch float32 itself is chaotic are counted and named, not judged.
struct Verdict {
  double floor;
  int judged = 0, chaotic = 0, failed = 0;
  double worst_ratio = 0;  // onnxtrain's distance / the allowed distance, over judged tensors
  std::string failures, chaos;

  void judge(const std::string& what, double ours, double pytorch, double scale) {
    if (pytorch > kChaotic * scale) {
      if (++chaotic <= 4) chaos += " " + what;
      if (chaotic == 5) chaos += " ...";
      return;
    }
    ++judged;
    const double allowed = std::max(kTimesPyTorch * pytorch, floor * scale);
    worst_ratio = std::max(worst_ratio, ours / allowed);
    if (ours > allowed) {
      ++failed;
      char line[400];
      std::snprintf(line, sizeof line, "\n  %s: onnxtrain %.3g, PyTorch float32 %.3g (scale %.3g)", what.c_str(), ours, pytorch, scale);
      failures += line;
    }
  }
};

// The losses of the ten steps and the parameters after them; returns the largest loss error.
double judge_ten_steps(const Family& f, const TrainingRun& run, Verdict& verdict) {
  const auto losses = f.golden.at("loss10").as_double();
  EXPECT_EQ(losses.size(), run.losses.size());
  double loss10 = 0;
  for (size_t i = 0; i < losses.size() && i < run.losses.size(); ++i) loss10 = std::max(loss10, std::abs(run.losses[i] - losses[i]));
  verdict.judge("loss10", loss10, f.f32err("loss10"), std::abs(losses.front()));
  for (const auto& [name, value] : run.params) {
    const Tensor& expected = f.golden.at("param10." + name);
    verdict.judge("param10." + name, max_abs_diff(value, expected), f.f32err("param10." + name), max_abs(expected));
  }
  return loss10;
}

class FamilyParity : public ::testing::TestWithParam<std::string> {};

TEST_P(FamilyParity, Float64StepAndTenStepsMatchPyTorch) {
  const Family f(GetParam());
  Model model = Model::load(f.base + ".onnx");
  const TrainingRun run = train(model, f.options(false), f.feeds(false), f.keys("param10."));

  const double loss = scalar(f.golden.at("loss"));
  EXPECT_NEAR(run.first.loss, loss, 1e-7 * std::abs(loss));
  int compared = 0;
  for (const auto& name : f.keys("grad.")) {
    auto it = run.first.gradients.find(name);
    ASSERT_NE(it, run.first.gradients.end()) << "no gradient for " << name;
    // Relative to the tensor's largest gradient: tiny entries carry no meaning alone.
    const Tensor& expected = f.golden.at("grad." + name);
    EXPECT_EQ(test::compare_tensors(it->second, expected, 0, 1e-6 * max_abs(expected) + 1e-12), "") << name;
    ++compared;
  }
  for (const auto& [name, grad] : run.first.gradients)
    EXPECT_TRUE(f.golden.count("grad." + name)) << "a gradient PyTorch has none for: " << name;
  EXPECT_EQ(compared, static_cast<int>(run.first.gradients.size()));

  // Ten steps amplify the differences float32 attributes (epsilons, HardSigmoid's alpha)
  // make even in float64 wherever the training trajectory amplifies rounding: judged like
  // float32 below, with PyTorch float32's distance as the measure of that amplification.
  Verdict tenth{1e-6};
  judge_ten_steps(f, run, tenth);
  if (!tenth.chaos.empty()) std::printf("[float64] %s after %d steps, chaotic in PyTorch float32:%s\n", f.name.c_str(), kSteps, tenth.chaos.c_str());
  EXPECT_EQ(tenth.failed, 0) << "after " << kSteps << " steps, farther from PyTorch float64 than allowed:" << tenth.failures;
}

TEST_P(FamilyParity, Float32AsCloseToFloat64AsPyTorchFloat32) {
  const Family f(GetParam());
  Model model = Model::load(f.base + ".f32.onnx");
  const TrainingRun run = train(model, f.options(true), f.feeds(true), f.keys("param10."));
  const auto err = [&](const std::string& key) { return f.f32err(key); };

  Verdict first{kRoundoffFloor}, tenth{kRoundoffFloor};
  const double loss = scalar(f.golden.at("loss"));
  first.judge("loss", std::abs(run.first.loss - loss), err("loss"), std::abs(loss));
  for (const auto& name : f.keys("grad.")) {
    const Tensor& expected = f.golden.at("grad." + name);
    first.judge("grad." + name, max_abs_diff(run.first.gradients.at(name), expected), err("grad." + name), max_abs(expected));
  }
  const double loss10 = judge_ten_steps(f, run, tenth);
  // The table of the closing note: ctest -L parity -V shows it.
  std::printf("[float32] %-14s step 1: %3d judged, %3d chaotic, worst %.2f of allowed | 10 steps: %3d judged, %3d chaotic, worst %.2f; loss10 error onnxtrain %.2e, PyTorch %.2e\n",
              f.name.c_str(), first.judged, first.chaotic, first.worst_ratio, tenth.judged, tenth.chaotic, tenth.worst_ratio, loss10,
              err("loss10"));
  if (!tenth.chaos.empty() || !first.chaos.empty())
    std::printf("[float32] %s chaotic in PyTorch float32:%s%s\n", f.name.c_str(), first.chaos.c_str(), tenth.chaos.c_str());
  EXPECT_EQ(first.failed, 0) << "first step, farther from float64 than PyTorch float32:" << first.failures;
  EXPECT_EQ(tenth.failed, 0) << "after " << kSteps << " steps, farther from float64 than PyTorch float32:" << tenth.failures;
}

INSTANTIATE_TEST_SUITE_P(Models, FamilyParity, ::testing::ValuesIn(family_names()), [](const auto& info) { return info.param; });

}  // namespace
