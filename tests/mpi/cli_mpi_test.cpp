// `mpirun -np 2 onnxtrain train ...` end to end on loopback (1 thread per rank): the same
// weights as one process with the joined batches, one run directory, a stop on one rank
// that checkpoints and resumes to the uninterrupted result, and a killed rank that ends
// the job. The mpirun command line comes from CMake (ONNXTRAIN_MPIRUN_COMMAND).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

namespace onnxtrain {
namespace {

namespace fs = std::filesystem;

struct Result {
  int code = -1;
  std::string output;
};

Result shell(const std::string& script) {
  const std::string cmd = "bash -c '" + script + "' 2>&1";
  Result r;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  const int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class CliMpi : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "cli_mpi.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // `onnxtrain train` on the digits CNN (no BatchNorm) in dir_, with `ranks` processes.
  std::string train(int ranks, const std::string& args) const {
    const std::string digits = test::source_dir() + "/models/digits/";
    const std::string cli = std::string(ONNXTRAIN_CLI) + " train " + digits + "digits_cnn_eval.onnx --data " + digits +
                            "train.npz --val-split 0.2 --threads 1 --seed 3 " + args;
    return "cd " + dir_.string() + " && exec " + (ranks > 1 ? std::string(ONNXTRAIN_MPIRUN_COMMAND) + " " : "") + cli;
  }
  // Starts `command` in the background, waits until `file` (in dir_) exists — the run is
  // under way — sends `signal` to one of mpirun's processes (the last started rank), then
  // waits for the job: at most 40 s, after which mpirun (and its ranks) is ended and the
  // exit code is 124.
  std::string signal_a_rank(const std::string& command, const std::string& file, const std::string& signal) const {
    const std::string path = (dir_ / file).string();
    return "(" + command + ") & job=$!; for i in $(seq 600); do [ -e " + path + " ] && break; sleep 0.05; done; kill -" +
           signal + " $(pgrep -P $job | tail -n 1);" +
           " for i in $(seq 400); do kill -0 $job 2>/dev/null || break; sleep 0.1; done;"
           " if kill -0 $job 2>/dev/null; then kill -TERM $job; wait $job; exit 124; fi; wait $job";
  }
  static void expect_same_weights(const fs::path& a, const fs::path& b, double tolerance) {
    Model ma = Model::load(a.string()), mb = Model::load(b.string());
    for (const auto& name : ma.initializer_names())
      EXPECT_LE(test::scaled_error(ma.initializer(name), mb.initializer(name)), tolerance) << name;
  }

  // The last row of a metrics.csv, by column.
  static std::map<std::string, double> last_row(const fs::path& csv) {
    std::ifstream in(csv);
    std::string header, line, last;
    std::getline(in, header);
    while (std::getline(in, line))
      if (!line.empty()) last = line;
    std::map<std::string, double> row;
    std::istringstream names(header), values(last);
    for (std::string name, value; std::getline(names, name, ',') && std::getline(values, value, ',');)
      row[name] = value.empty() ? std::nan("") : std::stod(value);
    return row;
  }

  fs::path dir_;
};

TEST_F(CliMpi, TwoRanksTrainLikeOneProcessWithTwiceTheBatchAndWriteOneRunDirectory) {
  Result two = shell(train(2, "--epochs 3 --batch-size 16"));
  ASSERT_EQ(two.code, 0) << two.output;
  EXPECT_NE(two.output.find("2 ranks, batch 16 each"), std::string::npos) << two.output;
  EXPECT_TRUE(fs::exists(dir_ / "runs/train/1/last.onnx"));
  EXPECT_FALSE(fs::exists(dir_ / "runs/train/2")) << "only rank 0 makes a run directory";
  Result one = shell(train(1, "--epochs 3 --batch-size 32 --run-dir one"));
  ASSERT_EQ(one.code, 0) << one.output;
  expect_same_weights(dir_ / "runs/train/1/last.onnx", dir_ / "one/last.onnx", 1e-5);
  // The training loss of the global batches and the validation numbers of the whole set.
  auto a = last_row(dir_ / "runs/train/1/metrics.csv"), b = last_row(dir_ / "one/metrics.csv");
  for (const char* column : {"loss", "val_loss", "val_accuracy"}) EXPECT_NEAR(a[column], b[column], 1e-5) << column;
  EXPECT_EQ(a["step"], b["step"]);
}

TEST_F(CliMpi, AStopOnOneRankCheckpointsAndTheResumedRunEndsLikeAnUninterruptedOne) {
  const std::string args = "--epochs 40 --batch-size 16";
  Result stopped = shell(signal_a_rank(train(2, args + " --run-dir cut"), "cut/checkpoint.npz", "TERM"));
  EXPECT_NE(stopped.code, 0) << stopped.output;
  EXPECT_NE(stopped.output.find("interrupted at step"), std::string::npos) << stopped.output;
  ASSERT_TRUE(fs::exists(dir_ / "cut/checkpoint.npz")) << stopped.output;
  Result resumed = shell(train(2, args + " --resume cut/checkpoint.npz"));
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  Result whole = shell(train(2, args + " --run-dir whole"));
  ASSERT_EQ(whole.code, 0) << whole.output;
  expect_same_weights(dir_ / "cut/last.onnx", dir_ / "whole/last.onnx", 0);
}

TEST_F(CliMpi, AKilledRankEndsTheJobWithAMessage) {
  // Open MPI ends the job when a rank dies; the watchdog turns a hang into a failure.
  Result r = shell(signal_a_rank(train(2, "--epochs 100000 --batch-size 16 --run-dir killed"), "killed/checkpoint.npz", "KILL"));
  EXPECT_NE(r.code, 0) << r.output;
  EXPECT_NE(r.code, 124) << "the job hung until the timeout:\n" << r.output;
  EXPECT_NE(r.output.find("signal 9"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace onnxtrain
