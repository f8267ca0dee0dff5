// End-to-end tests of the onnxtrain binary: exit codes and the messages people read.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "onnxtrain/onnxtrain.h"
#include "tests/cli/cli_support.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;
namespace fs = std::filesystem;

namespace {

using Result = test::CliResult;
using test::run_cli;

std::string model_path(const std::string& name) {
  return test::source_dir() + "/models/" + name.substr(0, name.find('_')) + "/" + name + ".onnx";
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("onnxtrain_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(Cli, InfoDescribesTheModel) {
  Result r = run_cli("info " + model_path("mlp_op17_train"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("input"), std::string::npos);
  EXPECT_NE(r.output.find("float32[batch,20]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("parameters: 3,754"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Gemm"), std::string::npos);
  EXPECT_NE(r.output.find("every operator has a kernel"), std::string::npos) << r.output;
}

TEST_F(Cli, InfoListsOperatorsWithoutKernel) {
  Model m = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 17, "custom" : 1]>
    g (float[2] X) => (float[2] Y) { Y = custom.Frobnicate(X) }
  )");
  m.save(file("custom.onnx"));
  Result r = run_cli("info " + file("custom.onnx"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("custom.Frobnicate (opset 1): 1 node(s)"), std::string::npos) << r.output;
}

TEST_F(Cli, RunWritesOutputsMatchingPyTorch) {
  auto golden = read_npz(test::source_dir() + "/models/mlp/golden.npz");
  write_npz(file("in.npz"), {{"input", golden.at("input.input")}});
  Result r = run_cli("run " + model_path("mlp_op17_eval") + " --data " + file("in.npz") + " --out " + file("out.npz"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("output"), std::string::npos);
  auto out = read_npz(file("out.npz"));
  EXPECT_EQ(test::compare_tensors(out.at("output"), golden.at("mlp_op17_eval.output"), 1e-4, 1e-5), "");
}

TEST_F(Cli, MalformedModelIsAClearError) {
  std::ofstream(file("bad.onnx")) << "definitely not onnx";
  Result r = run_cli("info " + file("bad.onnx"));
  EXPECT_EQ(r.code, 3) << r.output;
  EXPECT_NE(r.output.find(file("bad.onnx")), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("terminate"), std::string::npos) << r.output;
}

TEST_F(Cli, MissingInputNameIsAClearError) {
  write_npz(file("in.npz"), {{"pixels", Tensor(DType::Float, {2, 20})}});
  Result r = run_cli("run " + model_path("mlp_op17_eval") + " --data " + file("in.npz"));
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("no array named 'input'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("pixels"), std::string::npos) << r.output;
}

TEST_F(Cli, WrongDtypeAndShapeAreClearErrors) {
  write_npz(file("int.npz"), {{"input", Tensor(DType::Int64, {2, 20})}});
  Result r = run_cli("run " + model_path("mlp_op17_eval") + " --data " + file("int.npz"));
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("input 'input': expected float32[batch,20], got int64[2,20]"), std::string::npos) << r.output;

  write_npz(file("shape.npz"), {{"input", Tensor(DType::Float, {2, 21})}});
  r = run_cli("run " + model_path("mlp_op17_eval") + " --data " + file("shape.npz"));
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("expected float32[batch,20], got float32[2,21]"), std::string::npos) << r.output;
}

TEST_F(Cli, MissingDataFileIsAClearError) {
  Result r = run_cli("run " + model_path("mlp_op17_eval") + " --data " + file("nope.npz"));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("nope.npz"), std::string::npos) << r.output;
}

TEST_F(Cli, TrainExportsAModelThatEvaluates) {
  const std::string digits = test::source_dir() + "/models/digits/";
  Result r = run_cli("train " + digits + "digits_cnn_eval.onnx --data " + digits + "train.npz --val " + digits +
                     "val.npz --epochs 2 --batch-size 64 --lr 3e-3 --threads 2 --out " + file("trained.onnx") +
                     " --run-dir " + file("run"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("epoch 2/2"), std::string::npos) << r.output;
  r = run_cli("eval " + file("trained.onnx") + " --data " + digits + "val.npz");
  ASSERT_EQ(r.code, 0) << r.output;
  const double accuracy = std::stod(r.output.substr(r.output.find("accuracy: ") + 10));
  EXPECT_GT(accuracy, 0.8) << r.output;
}


TEST_F(Cli, OperatorDocsAreCurrent) {
  Result r = run_cli("ops --markdown");
  ASSERT_EQ(r.code, 0) << r.output;
  std::ifstream in(test::source_dir() + "/docs/operators.md");
  std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(r.output, doc) << "docs/operators.md is stale: regenerate it with `onnxtrain ops --markdown`";
}

}  // namespace
