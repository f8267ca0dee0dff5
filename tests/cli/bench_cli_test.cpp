// `onnxtrain bench`: runs on synthetic data for the sample models and prints the JSON keys
// scripts read. Never asserts on timings (they belong to benchmarks, not tests).
#include <gtest/gtest.h>

#include <cmath>
#include <regex>
#include <string>

#include "tests/cli/cli_support.h"
#include "tests/support/test_support.h"

namespace {

using onnxtrain::test::run_cli;

std::string model_path(const std::string& name) {
  return onnxtrain::test::source_dir() + "/models/" + name.substr(0, name.find('_')) + "/" + name + ".onnx";
}

std::string last_line(const std::string& output) {
  std::string s = output;
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s.substr(s.rfind('\n') + 1);
}

// The number after "key": in a JSON line; NaN when the key is missing.
double json_number(const std::string& json, const std::string& key) {
  std::smatch m;
  if (!std::regex_search(json, m, std::regex("\"" + key + "\":([-0-9.eE+]+)"))) return std::nan("");
  return std::stod(m[1]);
}

TEST(BenchCli, PrintsPositiveNumbersAsJson) {
  auto r = run_cli("bench " + model_path("lenet_op17_train") +
                   " --batch-size 4 --steps 2 --warmup-steps 1 --profile-steps 1 --threads 1 --json");
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string json = last_line(r.output);
  ASSERT_EQ(json.front(), '{') << r.output;
  for (const char* key : {"median_ms", "min_ms", "median_cpu_ms", "min_cpu_ms", "samples_per_s", "peak_rss_mb", "peak_activation_mb",
                          "train_gflop_per_step", "gflops_per_s"})
    EXPECT_GT(json_number(json, key), 0) << key << " in " << json;
  EXPECT_EQ(json_number(json, "batch_size"), 4) << json;
  // The CPU the numbers were taken on (the machines they are compared across differ).
  EXPECT_TRUE(std::regex_search(json, std::regex("\"cpu\":\"[^\"]+\""))) << json;
  EXPECT_NE(r.output.find("cpu: "), std::string::npos) << r.output;
  // The breakdown names phases and the model's ops.
  EXPECT_NE(json.find("\"op\":\"Conv\",\"phase\":\"forward\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"phase\":\"backward\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"phase\":\"optimizer\""), std::string::npos) << json;
  EXPECT_NE(r.output.find("time per step by op"), std::string::npos) << r.output;
}

TEST(BenchCli, SyntheticDataFitsEmbeddingsAndRegressionLosses) {
  // Token ids index the embedding's 50 rows (an id out of range would fail the Gather).
  auto r = run_cli("bench " + model_path("transformer_op17_train") + " --batch-size 3 --steps 1 --warmup-steps 0 -q");
  EXPECT_EQ(r.code, 0) << r.output;
  r = run_cli("bench " + model_path("unet_op17_train") + " --loss mse --batch-size 2 --steps 1 --warmup-steps 0 -q");
  EXPECT_EQ(r.code, 0) << r.output;
}

}  // namespace
