// `onnxtrain train --task detect` and `predict --task detect` end to end on the shapes
// dataset of models/detect (make_shapes.py): fine-tuning the briefly pre-trained TinyYolo
// with make_detector.py's recipe must raise validation mAP@0.5 to at least 0.6 of what
// PyTorch reaches with it (recipe.json); the run directory holds the detection files;
// predict finds the objects; bad data fails before training with one message per problem.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/cli/cli_support.h"
#include "tests/support/test_support.h"

namespace fs = std::filesystem;
using onnxtrain::test::run_cli;

namespace {

const std::string kDir = onnxtrain::test::source_dir() + "/models/detect";
const std::string kModel = kDir + "/tiny_yolo.onnx";
const std::string kData = kDir + "/shapes/data.yaml";

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// metrics.csv's column `name` in its last row.
double last_value(const fs::path& csv_path, const std::string& name) {
  std::istringstream csv(slurp(csv_path));
  std::string header, line, last;
  std::getline(csv, header);
  while (std::getline(csv, line)) last = line;
  std::vector<std::string> names, cells;
  for (std::istringstream h(header); std::getline(h, line, ',');) names.push_back(line);
  for (std::istringstream c(last); std::getline(c, line, ',');) cells.push_back(line);
  const auto at = std::find(names.begin(), names.end(), name) - names.begin();
  return at < static_cast<long>(cells.size()) && !cells[at].empty() ? std::stod(cells[at]) : -1;
}

class DetectCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("onnxtrain_detect_cli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(DetectCli, FineTuningRaisesValidationMapToThePyTorchLevelAndPredictFindsTheShapes) {
  const auto recipe = nlohmann::json::parse(slurp(kDir + "/recipe.json"));
  const double reference = recipe.at("pytorch_map50_end");
  const auto& gains = recipe.at("gains");
  const auto& ft = recipe.at("finetune");
  const fs::path run = dir_ / "run";
  // The recipe without augmentation, as the script trains (the batch order differs).
  std::ostringstream cmd;
  cmd << "train " << kModel << " --task detect --data " << kData << " --optimizer adam --lr " << ft.at("lr").get<double>()
      << " --batch-size " << ft.at("batch").get<int>() << " --epochs " << ft.at("epochs").get<int>()
      << " --obj-gain " << gains.at("obj").get<double>() << " --cls-gain " << gains.at("cls").get<double>()
      << " --box-gain " << gains.at("box").get<double>()
      << " --mosaic 0 --fliplr 0 --hsv-h 0 --hsv-s 0 --hsv-v 0 --translate 0 --scale 0 --threads 2 --seed 1 --run-dir "
      << run.string();
  const auto r = run_cli(cmd.str());
  ASSERT_EQ(r.code, 0) << r.output;
  const double start = recipe.at("pytorch_map50_start");
  const double end = last_value(run / "metrics.csv", "val_map50");
  EXPECT_GE(end, 0.6 * reference) << "PyTorch reaches " << reference << "\n" << slurp(run / "metrics.csv");
  EXPECT_GT(end, start + 0.05);
  EXPECT_GE(last_value(run / "metrics.csv", "box_loss"), 0);
  EXPECT_GE(last_value(run / "metrics.csv", "obj_loss"), 0);
  EXPECT_GE(last_value(run / "metrics.csv", "cls_loss"), 0);
  for (const char* name : {"best.onnx", "last.onnx", "checkpoint.npz", "results.svg", "pr_curve.svg", "class_ap.csv",
                           "val_predictions.png", "classes.txt"})
    EXPECT_TRUE(fs::exists(run / name)) << name;
  const std::string table = slurp(run / "class_ap.csv");
  EXPECT_EQ(table.rfind("class,name,instances,precision,recall,ap50,ap50_95\n0,circle,", 0), 0u) << table;

  // eval of best.onnx repeats the best epoch's validation (best.onnx is chosen by mAP@0.5:0.95).
  double best = -1;
  {
    std::istringstream csv(slurp(run / "metrics.csv"));
    std::string header, line;
    std::getline(csv, header);
    std::vector<std::string> names;
    for (std::istringstream h(header); std::getline(h, line, ',');) names.push_back(line);
    const size_t column = std::find(names.begin(), names.end(), "val_map50_95") - names.begin();
    while (std::getline(csv, line)) {
      std::vector<std::string> cells;
      for (std::istringstream c(line); std::getline(c, line, ',');) cells.push_back(line);
      if (column < cells.size() && !cells[column].empty()) best = std::max(best, std::stod(cells[column]));
    }
  }
  const auto e = run_cli("eval " + (run / "best.onnx").string() + " --task detect --data " + kData + " --threads 2");
  ASSERT_EQ(e.code, 0) << e.output;
  const size_t at = e.output.find("map50_95: ");
  ASSERT_NE(at, std::string::npos) << e.output;
  EXPECT_NEAR(std::stod(e.output.substr(at + 10)), best, 1e-4) << e.output;

  // predict: the saved model carries its names and anchors.
  const auto info = run_cli("info " + (run / "best.onnx").string());
  EXPECT_NE(info.output.find("detection head: yolov5 flat, 3 levels"), std::string::npos) << info.output;
  const fs::path out = dir_ / "predict";
  const auto p = run_cli("predict " + (run / "best.onnx").string() + " --source " + kDir +
                         "/shapes/images/val --conf 0.2 --threads 2 --out " + out.string());
  ASSERT_EQ(p.code, 0) << p.output;
  const auto found = nlohmann::json::parse(slurp(out / "predictions.json"));
  ASSERT_EQ(found.size(), 48u);
  int named = 0;
  for (const auto& image : found)
    for (const auto& d : image.at("detections")) {
      named += d.at("name") == "circle" || d.at("name") == "square" || d.at("name") == "triangle";
      for (double v : d.at("box")) EXPECT_TRUE(v >= 0 && v <= 96) << d;
    }
  EXPECT_GT(named, 48);
  EXPECT_TRUE(fs::exists(out / "val_0000.png"));
  EXPECT_NE(slurp(out / "predictions.csv").find("image,class,name,score,x1,y1,x2,y2\n"), std::string::npos);
}

TEST_F(DetectCli, BadLabelsFailBeforeTrainingNamingFileAndLine) {
  const fs::path data = dir_ / "data";
  fs::create_directories(data / "images/train");
  fs::create_directories(data / "labels/train");
  for (const char* name : {"train_0000", "train_0001", "train_0002"})
    fs::copy_file(kDir + "/shapes/images/train/" + name + ".jpg", data / "images/train" / (std::string(name) + ".jpg"));
  std::ofstream(data / "labels/train/train_0000.txt") << "7 0.5 0.5 0.2 0.2\n";     // class out of range
  std::ofstream(data / "labels/train/train_0001.txt") << "0 0.95 0.5 0.3 0.2\n";    // beyond the right edge
  std::ofstream(data / "labels/train/missing.txt") << "0 0.5 0.5 0.2 0.2\n";        // no image
  std::ofstream(data / "data.yaml") << "train: images/train\nval: images/train\nnames: [circle, square, triangle]\n";
  const auto r = run_cli("train " + kModel + " --task detect --data " + (data / "data.yaml").string() +
                         " --epochs 1 --run-dir " + (dir_ / "run").string());
  EXPECT_EQ(r.code, 2) << r.output;  // a data error
  EXPECT_NE(r.output.find("train_0000.txt' line 1: class 7"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("train_0001.txt' line 1: the box"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("missing.txt"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "run" / "metrics.csv")) << "nothing is written before the data checks pass";

  // A classifier has no detection head: said plainly.
  const auto c = run_cli("train " + onnxtrain::test::source_dir() + "/models/digits/digits_cnn.onnx --task detect --data " +
                         kData + " --epochs 1 --run-dir " + (dir_ / "run2").string());
  EXPECT_NE(c.code, 0) << c.output;
  EXPECT_NE(c.output.find("no detection head"), std::string::npos) << c.output;
}

}  // namespace
