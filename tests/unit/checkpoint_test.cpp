#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;
namespace fs = std::filesystem;

namespace {

struct Fixture {
  std::string model_path = test::source_dir() + "/models/mlp/mlp_op17_train.onnx";
  std::map<std::string, Tensor> batch;
  Fixture() {
    auto golden = read_npz(test::source_dir() + "/models/mlp/golden.npz");
    batch = {{"input", golden.at("input.input")}, {"label", read_npz(test::source_dir() + "/models/mlp/grads.npz").at("target")}};
  }
};

TrainingOptions adam() {
  TrainingOptions o;
  o.optimizer.kind = "adam";
  o.optimizer.lr = 1e-2;
  return o;
}

bool bit_identical(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

TEST(Checkpoint, ResumeContinuesBitIdentically) {
  Fixture f;
  const std::string ckpt = (fs::temp_directory_path() / "onnxtrain_ckpt_resume.npz").string();
  Model straight = Model::load(f.model_path);
  TrainingSession a(straight, adam());
  for (int i = 0; i < 3; ++i) a.train_step(f.batch);
  a.save_checkpoint(ckpt);
  for (int i = 0; i < 2; ++i) a.train_step(f.batch);

  Model resumed = Model::load(f.model_path);
  TrainingSession b(resumed, adam());
  b.load_checkpoint(ckpt);
  EXPECT_EQ(b.step(), 3);
  for (int i = 0; i < 2; ++i) b.train_step(f.batch);
  EXPECT_EQ(b.step(), 5);
  for (const auto& name : a.trainable())
    EXPECT_TRUE(bit_identical(straight.initializer(name), resumed.initializer(name))) << name;
  fs::remove(ckpt);
}

TEST(Checkpoint, FailedSaveLeavesThePreviousCheckpointIntact) {
  Fixture f;
  const std::string ckpt = (fs::temp_directory_path() / "onnxtrain_ckpt_atomic.npz").string();
  Model model = Model::load(f.model_path);
  TrainingSession s(model, adam());
  s.train_step(f.batch);
  s.save_checkpoint(ckpt);
  auto before = read_npz(ckpt);
  s.train_step(f.batch);
  // Make the write fail half way (a file size limit; permissions would not stop root):
  // the error must be clean and leave neither a broken checkpoint nor a temporary file.
  rlimit old_limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  rlimit small = old_limit;
  small.rlim_cur = 256;
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  EXPECT_THROW(s.save_checkpoint(ckpt), BackendError);
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  std::signal(SIGXFSZ, old_handler);
  for (const auto& entry : fs::directory_iterator(fs::temp_directory_path()))
    EXPECT_NE(entry.path().filename().string().rfind(fs::path(ckpt).filename().string() + ".tmp", 0), 0u)
        << "temporary file left behind: " << entry.path();
  auto after = read_npz(ckpt);
  ASSERT_EQ(before.size(), after.size());
  for (const auto& [key, t] : before) EXPECT_TRUE(bit_identical(t, after.at(key))) << key;
  fs::remove(ckpt);
}

TEST(Checkpoint, RejectsADifferentOptimizerOrFile) {
  Fixture f;
  const std::string ckpt = (fs::temp_directory_path() / "onnxtrain_ckpt_mismatch.npz").string();
  Model model = Model::load(f.model_path);
  TrainingSession s(model, adam());
  s.train_step(f.batch);
  s.save_checkpoint(ckpt);
  Model other = Model::load(f.model_path);
  TrainingOptions sgd;
  sgd.optimizer.kind = "sgd";
  TrainingSession t(other, sgd);
  EXPECT_THROW(t.load_checkpoint(ckpt), DataError);
  EXPECT_EQ(t.step(), 0);
  write_npz(ckpt, {{"x", Tensor(DType::Float, {1})}});
  EXPECT_THROW(t.load_checkpoint(ckpt), DataError);
  fs::remove(ckpt);
}

TEST(TrainingSession, NaNLossStopsWithoutTouchingParameters) {
  // Log of a negative product: the loss is NaN on the first step.
  Model model = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[N, 2] X) => (float[N, 2] Y) <float[2, 2] W = {1, 0, 0, 1}> { H = MatMul(X, W) Y = Log(H) })");
  TrainingOptions options;
  options.loss.kind = "mse";
  TrainingSession s(model, options);
  Tensor before = model.initializer("W").clone();
  try {
    s.train_step({{"X", Tensor::from_vector<float>({1, 2}, {-1, 2})}, {"label", Tensor(DType::Float, {1, 2})}});
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("step 1"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(bit_identical(before, model.initializer("W")));
  EXPECT_EQ(s.step(), 0);
}

}  // namespace
