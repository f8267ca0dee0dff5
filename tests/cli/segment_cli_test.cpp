// `onnxtrain train/eval --task segment` end to end: the synthetic shapes dataset of
// models/segnet/make_segnet.py (generated here into a temporary folder), the segnet model
// trained from scratch with the script's recipe must raise validation mIoU to at least 0.8
// of what PyTorch reaches with it (REFERENCE_MIOU in the script); the run directory holds
// the segmentation files; bad data fails before training with one message per problem.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

// Declarations only: train_cli_test.cpp compiles stb_image_write into this test binary.
#include <stb/stb_image_write.h>

#include "tests/cli/cli_support.h"
#include "tests/support/test_support.h"

namespace fs = std::filesystem;
using onnxtrain::test::run_cli;

namespace {

const std::string kScript = onnxtrain::test::source_dir() + "/models/segnet/make_segnet.py";
const std::string kModel = onnxtrain::test::source_dir() + "/models/segnet/segnet.onnx";

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The number after `key` in `text` (-1 when absent).
double number_after(const std::string& text, const std::string& key) {
  const size_t at = text.find(key);
  return at == std::string::npos ? -1 : std::stod(text.substr(at + key.size()));
}

class SegmentCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_ = fs::temp_directory_path() / ("onnxtrain_segment_cli_" + std::to_string(::getpid()));
    fs::remove_all(data_);
    const std::string cmd = "/usr/bin/python3 " + kScript + " data " + data_.string();
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  static void TearDownTestSuite() { fs::remove_all(data_); }
  void SetUp() override {
    dir_ = data_ / ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(dir_);
  }
  std::string split(const std::string& name) const { return (data_ / name).string(); }
  static fs::path data_;
  fs::path dir_;
};
fs::path SegmentCli::data_;

TEST_F(SegmentCli, TrainingRaisesValidationMiouToThePyTorchLevel) {
  const std::string val = "--data " + split("val/images") + " --masks " + split("val/masks");
  const auto before = run_cli("eval " + kModel + " --task segment " + val + " --threads 2");
  ASSERT_EQ(before.code, 0) << before.output;
  const double start = number_after(before.output, "miou: ");
  ASSERT_GE(start, 0) << before.output;

  const auto script = slurp(kScript);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(script, m, std::regex("REFERENCE_MIOU = ([0-9.]+)")));
  const double reference = std::stod(m[1]);
  const fs::path run = dir_ / "run";
  const auto r = run_cli("train " + kModel + " --task segment --data " + split("train/images") + " --masks " +
                         split("train/masks") + " --val " + split("val/images") + " --val-masks " + split("val/masks") +
                         " --optimizer adam --lr 5e-3 --batch-size 16 --epochs 4 --threads 2 --run-dir " + run.string());
  ASSERT_EQ(r.code, 0) << r.output;
  // The last row of metrics.csv holds the last epoch's validation columns.
  std::istringstream csv(slurp(run / "metrics.csv"));
  std::string header, line, last;
  std::getline(csv, header);
  while (std::getline(csv, line)) last = line;
  ASSERT_NE(header.find("val_miou"), std::string::npos) << header;
  ASSERT_NE(header.find("val_pixel_accuracy"), std::string::npos) << header;
  std::vector<std::string> names, cells;
  for (std::istringstream h(header); std::getline(h, line, ',');) names.push_back(line);
  for (std::istringstream c(last); std::getline(c, line, ',');) cells.push_back(line);
  const auto column = [&](const std::string& name) {
    return std::stod(cells.at(std::find(names.begin(), names.end(), name) - names.begin()));
  };
  const double end = column("val_miou");
  EXPECT_GE(end, 0.8 * reference) << "start " << start << ", PyTorch " << reference << "\n" << r.output;
  EXPECT_GT(end, start + 0.3);
  EXPECT_GT(column("val_pixel_accuracy"), 0.8);
  // eval of best.onnx agrees with the run's best epoch.
  const auto after = run_cli("eval " + (run / "best.onnx").string() + " --task segment " + val + " --threads 2");
  EXPECT_GE(number_after(after.output, "miou: "), end - 1e-4) << after.output;
  const std::string per_class = slurp(run / "per_class_iou.csv");
  EXPECT_EQ(std::count(per_class.begin(), per_class.end(), '\n'), 5) << per_class;
  EXPECT_EQ(per_class.rfind("class,iou,pixels,predicted\n", 0), 0u) << per_class;
  for (int i = 0; i < 4; ++i) EXPECT_GT(fs::file_size(run / ("val_pred_" + std::to_string(i) + ".png")), 1000u) << i;
}

TEST_F(SegmentCli, BadDataIsReportedBeforeTraining) {
  auto png = [&](const std::string& name, int w, int h, int channels, unsigned char value) {
    fs::create_directories((dir_ / name).parent_path());
    std::vector<unsigned char> px(static_cast<size_t>(w * h * channels), value);
    ASSERT_TRUE(stbi_write_png((dir_ / name).c_str(), w, h, channels, px.data(), w * channels));
  };
  png("img/ok.png", 64, 64, 3, 90), png("msk/ok.png", 64, 64, 1, 2);
  png("img/lonely.png", 64, 64, 3, 90);
  png("img/big.png", 64, 64, 3, 90), png("msk/big.png", 64, 64, 1, 9);
  png("img/wide.png", 64, 64, 3, 90), png("msk/wide.png", 70, 64, 1, 1);
  png("msk/orphan.png", 64, 64, 1, 1);
  const auto r = run_cli("train " + kModel + " --task segment --data " + (dir_ / "img").string() + " --masks " +
                         (dir_ / "msk").string() + " --epochs 1 --run-dir " + (dir_ / "run").string());
  EXPECT_EQ(r.code, 2) << r.output;
  for (const char* part : {"4 problems", "lonely.png: an image without a mask", "orphan.png: a mask without an image",
                           "big.png: pixel (x=0, y=0) has class 9, outside [0, 4) and not the ignore value 255 (4096 such",
                           "wide.png: the mask is 70x64 but its image"})
    EXPECT_NE(r.output.find(part), std::string::npos) << part << " not in:\n" << r.output;
  EXPECT_EQ(r.output.find("epoch 1/"), std::string::npos) << r.output;
  const auto no_masks = run_cli("train " + kModel + " --task segment --data " + (dir_ / "img").string());
  EXPECT_NE(no_masks.output.find("give the mask folder"), std::string::npos) << no_masks.output;
  const auto classify = run_cli("train " + kModel + " --data " + (dir_ / "img").string() + " --masks " +
                                (dir_ / "msk").string());
  EXPECT_NE(classify.output.find("need --task segment"), std::string::npos) << classify.output;
  const auto palette = run_cli("train " + kModel + " --task segment --data " + (dir_ / "img").string() + " --masks " +
                               (dir_ / "msk").string() + " --palette voc");
  EXPECT_NE(palette.output.find("which is not in the palette"), std::string::npos) << palette.output;
}

}  // namespace
