// `--precision bf16` on the command line: the digits CNN trains to float32's validation
// accuracy, bench runs with it, and a CPU without bf16 kernels gets a clear error (simulated
// by lowering oneDNN's ISA in the child process).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "ops/dnnl_utils.h"
#include "tests/cli/cli_support.h"
#include "tests/support/test_support.h"

namespace fs = std::filesystem;
using onnxtrain::test::run_cli;

namespace {

double value_after(const std::string& text, const std::string& key) {
  const size_t at = text.find(key);
  return at == std::string::npos ? -1 : std::stod(text.substr(at + key.size()));
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

bool bf16_cpu() {
  try {
    onnxtrain::ops::require_bf16_cpu();
    return true;
  } catch (const onnxtrain::BackendError&) {
    return false;
  }
}

class PrecisionCli : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "precision_cli.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }

  // Trains the bundled digits CNN (BatchNorm, Dropout) as scripts/demo.sh does, shorter, and
  // returns the exported model's validation accuracy by `onnxtrain eval`.
  double digits_accuracy(const std::string& precision) const {
    const std::string out = file(precision + ".onnx"), run = file("run_" + precision);
    auto r = run_cli("train " + digits_ + "digits_cnn.onnx --data " + digits_ + "train.npz --optimizer adam --lr 3e-3 "
                     "--epochs 3 --batch-size 32 --seed 0 --threads 2 --precision " + precision + " --run-dir " + run +
                     " --out " + out + " -q");
    EXPECT_EQ(r.code, 0) << r.output;
    EXPECT_NE(slurp(fs::path(run) / "training_options.json").find("\"precision\": \"" + precision + "\""),
              std::string::npos);
    r = run_cli("eval " + out + " --data " + digits_ + "val.npz --metric accuracy");
    EXPECT_EQ(r.code, 0) << r.output;
    return value_after(r.output, "accuracy: ");
  }

  const std::string digits_ = onnxtrain::test::source_dir() + "/models/digits/";
  fs::path dir_;
};

TEST_F(PrecisionCli, Bf16DigitsReachFloat32Accuracy) {
  if (!bf16_cpu()) GTEST_SKIP() << "this CPU has no AVX512-BF16 / AMX";
  const double fp32 = digits_accuracy("fp32"), bf16 = digits_accuracy("bf16");
  // 360 validation digits: 0.02 is 7 of them, about the spread of float32 runs that differ
  // only in rounding (bf16 perturbs each step's products by ~2^-8 relative).
  EXPECT_GT(fp32, 0.85);
  EXPECT_GE(bf16, fp32 - 0.02) << "fp32 " << fp32 << ", bf16 " << bf16;
}

TEST_F(PrecisionCli, BenchTakesPrecision) {
  if (!bf16_cpu()) GTEST_SKIP() << "this CPU has no AVX512-BF16 / AMX";
  const std::string lenet = onnxtrain::test::source_dir() + "/models/lenet/lenet_op17_train.onnx";
  auto r = run_cli("bench " + lenet + " --batch-size 4 --steps 2 --warmup-steps 1 --profile-steps 1 --threads 1 "
                   "--precision bf16 --json");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("\"precision\":\"bf16\""), std::string::npos) << r.output;
  r = run_cli("bench " + lenet + " --steps 1 --precision fp16");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("fp16"), std::string::npos) << r.output;
}

TEST_F(PrecisionCli, CpuWithoutBf16GetsAClearError) {
  // oneDNN 2.6 reads ONEDNN_MAX_CPU_ISA (DNNL_MAX_CPU_ISA is the older name, also honoured):
  // capped at AVX512_CORE, the child's oneDNN has no bf16 kernels.
  ASSERT_EQ(::setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE", 1), 0);
  auto r = run_cli("train " + digits_ + "digits_cnn.onnx --data " + digits_ + "train.npz --epochs 1 --precision bf16 "
                   "--run-dir " + file("run"));
  ::unsetenv("ONEDNN_MAX_CPU_ISA");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("--precision bf16 needs a CPU with AVX512-BF16 or AMX; this CPU's best oneDNN ISA is "),
            std::string::npos)
      << r.output;
  // avx512_core here, or less on an older CPU; never the bf16 ones.
  EXPECT_EQ(r.output.find("avx512_core_bf16"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("amx"), std::string::npos) << r.output;
}

}  // namespace
