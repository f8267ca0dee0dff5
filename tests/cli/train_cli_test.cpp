// End-to-end tests of `onnxtrain train/eval/export/artifacts`: each data format, the run
// directory, resume after Ctrl-C, divergence, and the messages bad data gets.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include <onnx/defs/parser.h>
#include <onnx/onnx_pb.h>

#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "onnxtrain/onnxtrain.h"
#include "tests/cli/cli_support.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;
namespace fs = std::filesystem;

namespace {

using Result = test::CliResult;
using test::run_cli;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

size_t line_count(const fs::path& path) {
  std::ifstream in(path);
  return static_cast<size_t>(std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n'));
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

double value_after(const std::string& text, const std::string& key) {
  const size_t at = text.find(key);
  return at == std::string::npos ? -1 : std::stod(text.substr(at + key.size()));
}

class TrainCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("onnxtrain_train_cli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  const std::string digits = test::source_dir() + "/models/digits/";
  std::string digits_train(const std::string& extra) const {
    return "train " + digits + "digits_cnn_eval.onnx --data " + digits + "train.npz --threads 2 " + extra;
  }
  // Two classes of small PNG/BMP/JPEG images of varied sizes under images/red and images/blue.
  void write_images() const {
    for (int cls = 0; cls < 2; ++cls) {
      const fs::path folder = dir_ / "images" / (cls ? "blue" : "red");
      fs::create_directories(folder);
      for (int i = 0; i < 24; ++i) {
        const int w = 10 + i % 5, h = 9 + i % 4;
        std::vector<unsigned char> px(static_cast<size_t>(w * h * 3));
        for (int p = 0; p < w * h; ++p) {
          const unsigned char noise = static_cast<unsigned char>((p * 37 + i * 11) % 60);
          px[p * 3 + 0] = static_cast<unsigned char>(cls ? noise : 180 + noise);
          px[p * 3 + 1] = static_cast<unsigned char>(60 + noise);
          px[p * 3 + 2] = static_cast<unsigned char>(cls ? 180 + noise : noise);
        }
        const std::string name = (folder / ("img" + std::to_string(i))).string();
        if (i % 3 == 0) stbi_write_png((name + ".png").c_str(), w, h, 3, px.data(), w * 3);
        else if (i % 3 == 1) stbi_write_bmp((name + ".bmp").c_str(), w, h, 3, px.data());
        else stbi_write_jpg((name + ".jpg").c_str(), w, h, 3, px.data(), 95);
      }
    }
  }
  fs::path dir_;
};

TEST_F(TrainCli, NpzRunDirectoryHasEverything) {
  Result r = run_cli(digits_train("--val " + digits + "val.npz --epochs 3 --lr 3e-3 --run-dir " + file("run") +
                                  " --metrics " + file("steps.csv")));
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* name : {"metrics.csv", "results.svg", "last.onnx", "best.onnx", "checkpoint.npz", "config.toml",
                           "training_options.json", "confusion_matrix.csv", "confusion_matrix.svg"})
    EXPECT_TRUE(fs::exists(dir_ / "run" / name)) << name;
  // One row per optimizer step (1437 samples / 32 = 45 per epoch) after the header.
  EXPECT_EQ(line_count(dir_ / "run" / "metrics.csv"), 1u + 3 * 45);
  EXPECT_TRUE(slurp(dir_ / "run" / "metrics.csv") == slurp(file("steps.csv"))) << "--metrics writes the same rows";
  EXPECT_TRUE(contains(slurp(dir_ / "run" / "metrics.csv"), "step,epoch,lr,loss,val_loss,val_accuracy"));
  EXPECT_TRUE(contains(slurp(dir_ / "run" / "results.svg"), "<svg"));
  EXPECT_TRUE(contains(slurp(dir_ / "run" / "config.toml"), "lr=3e-3")) << "config.toml lists the given options";
  r = run_cli("eval " + file("run/best.onnx") + " --data " + digits + "val.npz --metric accuracy --metric top5");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_GT(value_after(r.output, "accuracy: "), 0.85) << r.output;
  EXPECT_GT(value_after(r.output, "top5: "), 0.97) << r.output;
}

TEST_F(TrainCli, CsvWithValidationSplit) {
  Result r = run_cli("train " + digits + "digits_cnn_eval.onnx --data " + digits + "train.csv --val-split 0.2 --epochs 4 "
                     "--lr 3e-3 --threads 2 --run-dir " + file("run") + " --out " + file("csv.onnx"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "on 1,150 samples (287 for validation)")) << r.output;
  r = run_cli("eval " + file("csv.onnx") + " --data " + digits + "val.csv");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_GT(value_after(r.output, "accuracy: "), 0.85) << r.output;
}

// Regression from a CSV file: the label column [N] is served as the output's [N, 1].
TEST_F(TrainCli, CsvRegression) {
  std::ofstream csv(file("reg.csv"));
  csv << "a,b,c,target\n";
  for (int i = 0; i < 120; ++i) {
    const double a = std::sin(i * 0.7), b = std::cos(i * 1.3), c = (i % 7) / 7.0;
    csv << a << "," << b << "," << c << "," << (1.5 * a - 2 * b + 0.5 * c + 0.25) << "\n";
  }
  csv.close();
  Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    reg (float[N, 3] x) => (float[N, 1] y) <float[3, 1] w = {0.0, 0.0, 0.0}, float[1] b = {0.0}> {
      m = MatMul(x, w)
      y = Add(m, b)
    })").save(file("reg.onnx"));
  Result r = run_cli("train " + file("reg.onnx") + " --data " + file("reg.csv") + " --label-column target --loss mse " +
                     "--optimizer sgd --lr 0.2 --epochs 40 --val-split 0.25 --threads 2 --run-dir " + file("run"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(slurp(dir_ / "run" / "metrics.csv"), "val_loss,val_mse"));
  r = run_cli("eval " + file("run/last.onnx") + " --data " + file("reg.csv") + " --label-column target --metric mae");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_LT(value_after(r.output, "mae: "), 0.01) << r.output;
}

// Two colour classes as PNG/BMP/JPEG files of different sizes; a small conv net on 3x8x8.
TEST_F(TrainCli, ImageFolder) {
  write_images();
  Model net = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    net (float[N, 3, 8, 8] image) => (float[N, 2] logits)
        <float[4, 3, 3, 3] w = {0.1, -0.1, 0.05, 0.2, -0.2, 0.1, 0.0, 0.1, -0.05, 0.1, 0.1, 0.1, -0.1, 0.05, 0.0, 0.2, 0.1, -0.1,
                                0.05, 0.0, 0.1, -0.1, 0.2, 0.1, 0.0, -0.1, 0.1, 0.2, 0.1, -0.1, 0.05, 0.0, 0.1, -0.2, 0.1, 0.0,
                                0.1, 0.0, -0.1, 0.1, 0.05, 0.1, 0.0, 0.1, 0.1, -0.1, 0.2, 0.0, 0.1, 0.1, 0.0, -0.1, 0.05, 0.1,
                                -0.1, 0.1, 0.0, 0.2, 0.05, -0.1, 0.1, 0.0, 0.1, 0.1, -0.05, 0.1, 0.0, 0.1, 0.2, 0.1, -0.1, 0.0,
                                0.1, 0.05, 0.0, 0.1, -0.1, 0.1, 0.0, 0.2, 0.1, 0.0, -0.1, 0.1, 0.05, 0.0, 0.1, 0.1, -0.1, 0.0,
                                0.1, 0.1, 0.0, -0.05, 0.1, 0.2, 0.0, 0.1, 0.1, -0.1, 0.05, 0.1, 0.0, 0.1, 0.1, 0.0, -0.1, 0.1},
         float[4] b = {0.0, 0.0, 0.0, 0.0}, float[2, 4] fw = {0.1, -0.1, 0.2, 0.0, -0.1, 0.1, 0.0, 0.2},
         float[2] fb = {0.0, 0.0}> {
      c = Conv <pads = [1, 1, 1, 1]> (image, w, b)
      r = Relu(c)
      g = GlobalAveragePool(r)
      f = Flatten(g)
      logits = Gemm <transB = 1> (f, fw, fb)
    })");
  net.save(file("net.onnx"));
  Result r = run_cli("train " + file("net.onnx") + " --data " + file("images") + " --val " + file("images") +
                     " --augment --resize 9 --epochs 15 --batch-size 8 --optimizer adam --lr 0.05 --threads 2 --run-dir " +
                     file("run") + " --out " + file("images.onnx"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(slurp(dir_ / "run" / "classes.txt"), "blue\nred\n");
  EXPECT_TRUE(contains(slurp(dir_ / "run" / "confusion_matrix.csv"), "blue"));
  r = run_cli("eval " + file("images.onnx") + " --data " + file("images") + " --image-size 8");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_GT(value_after(r.output, "accuracy: "), 0.9) << r.output;
  r = run_cli("eval " + file("images.onnx") + " --data " + file("images") + " --image-size 9");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "--image-size 9,9 differs from the model input 'image'")) << r.output;
}

// A model exported with a fixed batch of 1 (torch.onnx.export without dynamic_axes: [1, ...]
// inputs, Reshape(x, [1, -1])) trains at batch 8, validates and evaluates in batches.
TEST_F(TrainCli, FixedBatchExportTrainsAtAnyBatch) {
  write_images();
  // Written from the text as is: loading it through onnxtrain would already relax it.
  onnx::ModelProto fixed;
  ASSERT_TRUE(onnx::OnnxParser::Parse(fixed, R"(
    <ir_version: 8, opset_import: ["" : 13]>
    net (float[1, 3, 8, 8] image) => (float[1, 2] logits)
        <float[4, 3, 1, 1] w = {0.1, -0.1, 0.05, 0.2, -0.2, 0.1, 0.0, 0.1, -0.05, 0.1, 0.1, 0.1},
         float[4] b = {0.0, 0.0, 0.0, 0.0}, float[2, 4] fw = {0.1, -0.1, 0.2, 0.0, -0.1, 0.1, 0.0, 0.2},
         float[2] fb = {0.0, 0.0}, int64[2] flat = {1, -1}> {
      c = Conv(image, w, b)
      r = Relu(c)
      g = GlobalAveragePool(r)
      f = Reshape(g, flat)
      logits = Gemm <transB = 1> (f, fw, fb)
    })").IsOK());
  std::ofstream(file("fixed.onnx"), std::ios::binary) << fixed.SerializeAsString();
  Result r = run_cli("info " + file("fixed.onnx"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "batch size is fixed at 1; relaxed to any batch")) << r.output;
  r = run_cli("train " + file("fixed.onnx") + " --data " + file("images") + " --val " + file("images") +
              " --image-size 8 --epochs 2 --batch-size 8 --threads 2 --run-dir " + file("run") + " --out " + file("out.onnx"));
  ASSERT_EQ(r.code, 0) << r.output;
  r = run_cli("eval " + file("out.onnx") + " --data " + file("images") + " --image-size 8 --batch-size 5");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "accuracy: ")) << r.output;
}

// Ctrl-C mid-run writes a checkpoint; resuming from it ends with the very model an
// uninterrupted run produces (same threads), and the metrics continue where they stopped.
TEST_F(TrainCli, InterruptAndResumeIsBitIdentical) {
  const std::string args = digits_train("--steps 2500 --batch-size 16 --lr 1e-3 --no-shuffle --accumulate 2 ");
  Result straight = run_cli(args + "--run-dir " + file("straight"));
  ASSERT_EQ(straight.code, 0) << straight.output;

  const std::string cmd = std::string(ONNXTRAIN_CLI) + " " + args + "--run-dir " + file("cut") + " > " + file("cut.log") + " 2>&1";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    setpgid(0, 0);
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Interrupt once a few hundred steps are on record.
  const fs::path csv = dir_ / "cut" / "metrics.csv";
  for (int i = 0; i < 3000 && !(fs::exists(csv) && line_count(csv) > 300); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  const std::string log = slurp(file("cut.log"));
  ASSERT_EQ(WEXITSTATUS(status), 130) << log;
  EXPECT_TRUE(contains(log, "resume with: ")) << log;
  const size_t rows_at_interrupt = line_count(csv);
  EXPECT_LT(rows_at_interrupt, 2501u);

  Result resumed = run_cli(args + "--run-dir " + file("cut") + " --resume " + file("cut/checkpoint.npz"));
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_TRUE(slurp(dir_ / "straight" / "last.onnx") == slurp(dir_ / "cut" / "last.onnx")) << "trained models differ";
  EXPECT_TRUE(slurp(dir_ / "straight" / "metrics.csv") == slurp(csv)) << "metrics differ";
}

TEST_F(TrainCli, DivergenceStopsAndKeepsTheLastGoodCheckpoint) {
  // The learning rate jumps by 1e30 after the first epoch (45 steps).
  Result r = run_cli(digits_train("--epochs 3 --optimizer sgd --lr 0.01 --scheduler step:45:1e30 --run-dir " + file("run")));
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "training stopped: the loss is")) << r.output;
  EXPECT_TRUE(contains(r.output, "lower --lr")) << r.output;
  EXPECT_TRUE(contains(r.output, "last good checkpoint")) << r.output;
  // The checkpoint is the one of epoch 1 and exports.
  r = run_cli("export " + file("run/checkpoint.npz") + " --out " + file("epoch1.onnx"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "(step 45)")) << r.output;
}

TEST_F(TrainCli, EarlyStoppingAfterPatienceEpochs) {
  // With lr 0 nothing improves after the first epoch: patience 2 stops after epoch 3 of 10.
  Result r = run_cli(digits_train("--val " + digits + "val.npz --epochs 10 --optimizer sgd --lr 0 --patience 2 --run-dir " +
                                  file("run")));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "early stopping: no improvement in 2 epochs")) << r.output;
  EXPECT_EQ(line_count(dir_ / "run" / "metrics.csv"), 1u + 3 * 45);
}

TEST_F(TrainCli, ExportAndArtifacts) {
  Result r = run_cli(digits_train("--epochs 1 --lr 3e-3 --run-dir " + file("run")));
  ASSERT_EQ(r.code, 0) << r.output;
  r = run_cli("export " + file("run/checkpoint.npz") + " --out " + file("inference.onnx"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(slurp(file("inference.onnx")) == slurp(dir_ / "run" / "last.onnx")) << "export differs from last.onnx";
  r = run_cli("export " + file("run/checkpoint.npz") + " --training --out " + file("training.onnx"));
  ASSERT_EQ(r.code, 0) << r.output;
  // The training model continues training from its stored state with its stored options.
  r = run_cli("train " + file("training.onnx") + " --data " + digits + "train.npz --epochs 1 --threads 2 --run-dir " +
              file("run2"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(slurp(dir_ / "run2" / "metrics.csv"), "\n46,1,")) << "continues at step 46";

  r = run_cli("artifacts " + digits + "digits_cnn.onnx --optimizer sgd --momentum 0.9 --lr 0.01 --out-dir " + file("art"));
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* name : {"training_model.onnx", "eval_model.onnx", "checkpoint.npz"}) EXPECT_TRUE(fs::exists(dir_ / "art" / name)) << name;
  Model eval_model = Model::load(file("art/eval_model.onnx"));
  EXPECT_EQ(eval_model.outputs().size(), 2u);
  Model training_model = Model::load(file("art/training_model.onnx"));
  EXPECT_EQ(training_options_of(training_model)->optimizer.momentum, 0.9);
}

TEST_F(TrainCli, ConfigFileSuppliesOptions) {
  std::ofstream(file("config.toml")) << "epochs=1\nlr=0.004\nbatch-size=64\n";
  Result r = run_cli(digits_train("--config " + file("config.toml") + " --run-dir " + file("run")));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(line_count(dir_ / "run" / "metrics.csv"), 1u + 23);  // 1437 / 64
  EXPECT_TRUE(contains(slurp(dir_ / "run" / "metrics.csv"), "\n1,1,0.004,"));
}

// Bad data: exit code 2 and a message naming the file, array or sample, before training.
TEST_F(TrainCli, BadDataMessages) {
  auto expect_error = [&](const std::string& args, const std::string& message) {
    Result r = run_cli(args + " --run-dir " + file("run"));
    EXPECT_EQ(r.code, 2) << args << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, message)) << "expected '" << message << "' in:\n" << r.output;
    EXPECT_FALSE(contains(r.output, "epoch 1/")) << "training started:\n" << r.output;
  };
  auto data = read_npz(digits + "val.npz");
  write_npz(file("renamed.npz"), {{"pixels", data.at("input")}, {"label", data.at("label")}});
  expect_error(digits_train("").replace(digits_train("").find(digits + "train.npz"), (digits + "train.npz").size(),
                                        file("renamed.npz")),
               "'input'");
  auto labels = data.at("label").to_vector<int64_t>();
  labels[7] = 12;
  write_npz(file("badlabel.npz"), {{"input", data.at("input")}, {"label", Tensor::from_vector<int64_t>({static_cast<int64_t>(labels.size())}, labels)}});
  expect_error("train " + digits + "digits_cnn_eval.onnx --data " + file("badlabel.npz"), "sample 7: class 12");
  write_npz(file("shape.npz"), {{"input", Tensor(DType::Float, {data.at("input").dim(0), 7, 7})}, {"label", data.at("label")}});
  expect_error("train " + digits + "digits_cnn_eval.onnx --data " + file("shape.npz"), "has samples of shape [7,7]");
  std::ofstream(file("bad.csv")) << "a,b,label\n1,2,0\n3,x,1\n";
  expect_error("train " + digits + "digits_cnn_eval.onnx --data " + file("bad.csv"), "line 3");
  fs::create_directories(dir_ / "imgs" / "cat");
  std::ofstream(dir_ / "imgs" / "cat" / "broken.png") << "not a png";
  expect_error("train " + digits + "digits_cnn_eval.onnx --data " + file("imgs"), "broken.png");
  expect_error(digits_train("--label target"), "'target'");
}

}  // namespace
