// TrainingSession options beyond the plain step: gradient accumulation, freezing,
// parameter groups, BatchNormalization modes, evaluation and inference-model export.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;
namespace fs = std::filesystem;

namespace {

using Batch = std::map<std::string, Tensor>;

struct Sample {
  std::string path;
  Batch batch;
  explicit Sample(const std::string& m) {
    const std::string dir = test::source_dir() + "/models/" + m + "/";
    path = dir + m + "_op17_train.onnx";
    batch = {{"input", read_npz(dir + "golden.npz").at("input.input")}, {"label", read_npz(dir + "grads.npz").at("target")}};
  }
};

// Samples [begin, end) of every array of a batch.
Batch rows(const Batch& b, int64_t begin, int64_t end) {
  Batch out;
  for (const auto& [name, t] : b) {
    Shape shape = t.shape();
    const size_t row = t.nbytes() / static_cast<size_t>(shape[0]);
    shape[0] = end - begin;
    Tensor part(t.dtype(), shape);
    std::memcpy(part.raw(), static_cast<const std::byte*>(t.raw()) + row * begin, row * (end - begin));
    out[name] = part;
  }
  return out;
}

bool bit_identical(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

TrainingOptions sgd(double lr = 0.1) {
  TrainingOptions o;
  o.optimizer.kind = "sgd";
  o.optimizer.lr = lr;
  return o;
}

TEST(Accumulation, MicroBatchesEqualOneBigBatch) {
  Sample s("mlp");
  for (auto split : {std::vector<int64_t>{0, 2, 4}, std::vector<int64_t>{0, 3, 4}, std::vector<int64_t>{0, 1, 2, 3, 4}}) {
    Model big = Model::load(s.path), micro = Model::load(s.path);
    TrainingOptions o = sgd();
    o.optimizer.momentum = 0.9;
    TrainingSession a(big, o);
    o.accumulate = static_cast<int>(split.size()) - 1;
    TrainingSession b(micro, o);
    for (int step = 0; step < 3; ++step) {
      a.train_step(s.batch);
      for (size_t i = 0; i + 1 < split.size(); ++i) {
        StepResult r = b.train_step(rows(s.batch, split[i], split[i + 1]));
        EXPECT_EQ(r.updated, i + 2 == split.size());
      }
    }
    EXPECT_EQ(a.step(), 3);
    EXPECT_EQ(b.step(), 3);
    for (const auto& name : a.trainable())
      EXPECT_LT(test::scaled_error(micro.initializer(name), big.initializer(name)), 1e-6)
          << name << " with " << split.size() - 1 << " micro-batches";
  }
}

TEST(Accumulation, SumReductionAddsGradients) {
  Sample s("mlp");
  Model big = Model::load(s.path), micro = Model::load(s.path);
  TrainingOptions o = sgd(0.01);
  o.loss.reduction = "sum";
  TrainingSession a(big, o);
  TrainingSession b(micro, o);
  a.train_step(s.batch);
  b.accumulate_gradients(rows(s.batch, 0, 1));
  b.accumulate_gradients(rows(s.batch, 1, 4));
  EXPECT_EQ(b.pending_micro_batches(), 2);
  b.optimizer_step();
  EXPECT_EQ(b.pending_micro_batches(), 0);
  for (const auto& name : a.trainable())
    EXPECT_LT(test::scaled_error(micro.initializer(name), big.initializer(name)), 1e-6) << name;
  EXPECT_THROW(b.optimizer_step(), DataError);
}

TEST(Accumulation, CheckpointKeepsPendingMicroBatches) {
  Sample s("mlp");
  const std::string ckpt = (fs::temp_directory_path() / "onnxtrain_ckpt_accum.npz").string();
  TrainingOptions o = sgd();
  o.accumulate = 2;
  Model m1 = Model::load(s.path), m2 = Model::load(s.path);
  TrainingSession a(m1, o);
  a.train_step(rows(s.batch, 0, 2));
  a.save_checkpoint(ckpt);
  a.train_step(rows(s.batch, 2, 4));
  TrainingSession b(m2, o);
  b.load_checkpoint(ckpt);
  EXPECT_EQ(b.pending_micro_batches(), 1);
  b.train_step(rows(s.batch, 2, 4));
  for (const auto& name : a.trainable()) EXPECT_TRUE(bit_identical(m1.initializer(name), m2.initializer(name))) << name;
  fs::remove(ckpt);
}

TEST(Freezing, FrozenParametersStayBitIdentical) {
  Sample s("mlp");
  Model model = Model::load(s.path);
  TrainingOptions o = sgd();
  o.freeze = "^fc1\\.";
  TrainingSession session(model, o);
  Model original = Model::load(s.path);
  for (const auto& name : session.trainable()) EXPECT_EQ(name.rfind("fc1.", 0), std::string::npos) << name;
  for (int i = 0; i < 3; ++i) session.train_step(s.batch);
  int frozen = 0, moved = 0;
  for (const auto& name : model.initializer_names()) {
    if (name.rfind("fc1.", 0) == 0) {
      EXPECT_TRUE(bit_identical(model.initializer(name), original.initializer(name))) << name;
      ++frozen;
    } else if (!bit_identical(model.initializer(name), original.initializer(name))) {
      ++moved;
    }
  }
  EXPECT_EQ(frozen, 2);
  EXPECT_GT(moved, 0);
}

// One SGD step updates p by -lr * (grad + wd * p): recover each parameter's effective lr
// and weight decay from the gradients.
TEST(ParamGroups, LearningRateAndDecayPerGroup) {
  Sample s("mlp");
  Model model = Model::load(s.path);
  Model reference = Model::load(s.path);
  TrainingOptions o = sgd(0.1);
  o.optimizer.weight_decay = 0.5;
  o.optimizer.no_decay_on_bias_and_norm = true;
  o.optimizer.groups = {{.pattern = "^fc1\\.weight$", .lr = 0.01}, {.pattern = "^fc2\\.bias$", .weight_decay = 0.25}};
  TrainingSession session(model, o);
  StepGradients grads = TrainingSession(reference, sgd()).compute_gradients(s.batch);
  session.train_step(s.batch);
  for (const auto& name : session.trainable()) {
    const Tensor& p0 = reference.initializer(name);
    double lr = name == "fc1.weight" ? 0.01 : 0.1;
    double wd = name == "fc2.bias" ? 0.25 : (p0.rank() <= 1 ? 0.0 : 0.5);
    auto before = p0.as_double(), after = model.initializer(name).as_double(), g = grads.gradients.at(name).as_double();
    double worst = 0, scale = 0;
    for (size_t i = 0; i < before.size(); ++i) {
      double want = before[i] - lr * (g[i] + wd * before[i]);
      worst = std::max(worst, std::abs(after[i] - want));
      scale = std::max(scale, std::abs(want));
    }
    EXPECT_LT(worst, 1e-6 * std::max(scale, 1.0)) << name;
  }
}

TEST(ParamGroups, InvalidPatternIsReported) {
  Sample s("mlp");
  Model model = Model::load(s.path);
  TrainingOptions o = sgd();
  o.optimizer.groups = {{.pattern = "(", .lr = 1}};
  try {
    TrainingSession session(model, o);
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("'('"), std::string::npos) << e.what();
  }
}

std::vector<std::string> running_stat_names(const Model& model) {
  std::vector<std::string> out;
  for (const auto& name : model.initializer_names())
    if (name.find("running_") != std::string::npos) out.push_back(name);
  return out;
}

TEST(BatchNormMode, FrozenKeepsRunningStatisticsAndTrainUpdatesThem) {
  Sample s("resnet");
  Model frozen = Model::load(s.path), trained = Model::load(s.path), original = Model::load(s.path);
  TrainingOptions o = sgd(0.01);
  o.batchnorm = "frozen";
  TrainingSession a(frozen, o);
  a.train_step(s.batch);
  o.batchnorm = "auto";
  TrainingSession b(trained, o);
  b.train_step(s.batch);
  auto stats = running_stat_names(original);
  ASSERT_EQ(stats.size(), 18u);
  for (const auto& name : stats) {
    EXPECT_TRUE(bit_identical(frozen.initializer(name), original.initializer(name))) << name;
    EXPECT_FALSE(bit_identical(trained.initializer(name), original.initializer(name))) << name;
  }
  // Frozen BatchNorm is the evaluation-mode network: its loss is eval_step's loss.
  Model fresh = Model::load(s.path);
  TrainingSession c(fresh, o);
  const double eval_loss = c.eval_step(s.batch).loss;
  o.batchnorm = "frozen";
  Model fresh2 = Model::load(s.path);
  TrainingSession d(fresh2, o);
  EXPECT_NEAR(d.compute_gradients(s.batch).loss, eval_loss, 1e-5 * std::abs(eval_loss));
}

// An EVAL-form model's BatchNormalization trains when asked: batch statistics, updated
// running statistics (ONNX: m * old + (1 - m) * batch).
TEST(BatchNormMode, TrainSwitchesInferenceFormNodes) {
  Model model = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 15]>
    g (float[4, 2, 3] x) => (float[4, 2, 3] y) <float[2] s = {1.0, 2.0}, float[2] b = {0.5, -0.5},
                                                 float[2] mean = {0.0, 0.0}, float[2] var = {1.0, 1.0}> {
      y = BatchNormalization <momentum: float = 0.75> (x, s, b, mean, var)
    })");
  std::vector<float> xs(24);
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<float>(i % 7) - 2.0f;
  Batch batch{{"x", Tensor::from_vector<float>({4, 2, 3}, xs)}, {"label", Tensor::from_vector<float>({4, 2, 3}, std::vector<float>(24, 0.f))}};
  TrainingOptions o = sgd(0.0);
  o.loss.kind = "mse";
  o.batchnorm = "train";
  TrainingSession session(model, o);
  session.train_step(batch);
  auto mean = model.initializer("mean").as_double();
  for (int c = 0; c < 2; ++c) {
    double sum = 0;
    for (int n = 0; n < 4; ++n)
      for (int i = 0; i < 3; ++i) sum += xs[static_cast<size_t>(n * 6 + c * 3 + i)];
    EXPECT_NEAR(mean[c], 0.25 * sum / 12, 1e-6) << "channel " << c;
  }
  o.batchnorm = "sideways";
  EXPECT_THROW(TrainingSession(model, o), DataError);
}

TEST(Export, InferenceModelOfATrainingExportMatchesEvaluation) {
  Sample s("resnet");
  Model model = Model::load(s.path);
  TrainingSession session(model, sgd(0.01));
  for (int i = 0; i < 2; ++i) session.train_step(s.batch);
  const std::string out = (fs::temp_directory_path() / "onnxtrain_export_inference.onnx").string();
  session.export_inference_model(out);
  Model exported = Model::load(out);
  // Run as written (no inference-mode rewrite): the file itself is in inference form.
  InferenceSession as_written(exported, SessionOptions{.inference_mode = false});
  Batch inputs{{"input", s.batch.at("input")}};
  Tensor got = as_written.run(inputs).begin()->second;
  EvalResult want = session.eval_step(s.batch);
  EXPECT_EQ(test::compare_tensors(got, want.outputs.begin()->second, 1e-5, 1e-6), "");
  for (const auto& name : running_stat_names(model))
    EXPECT_TRUE(bit_identical(exported.initializer(name), model.initializer(name))) << name;
  fs::remove(out);
}

}  // namespace

namespace {

// The digits CNN is a TRAINING export with BatchNormalization and Dropout(0.2).
TEST(Export, InferenceFormTurnsOffDropout) {
  const std::string dir = test::source_dir() + "/models/digits/";
  Model model = Model::load(dir + "digits_cnn.onnx");
  const std::string out = (fs::temp_directory_path() / "onnxtrain_export_digits.onnx").string();
  model.save_inference(out);
  Model exported = Model::load(out);
  auto data = read_npz(dir + "val.npz");
  std::map<std::string, Tensor> inputs;
  for (const auto& in : model.inputs()) inputs[in.name] = data.at(in.name);
  InferenceSession reference(model, SessionOptions{.inference_mode = true});
  InferenceSession as_written(exported, SessionOptions{.seed = 7});
  Tensor want = reference.run(inputs).begin()->second;
  EXPECT_EQ(test::compare_tensors(as_written.run(inputs).begin()->second, want, 1e-5, 1e-6), "");
  fs::remove(out);
}

}  // namespace
