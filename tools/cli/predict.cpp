// `onnxtrain predict MODEL --source IMAGES --task detect`: boxes found by a trained detector,
// as JSON and CSV, and the images with the boxes drawn.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "onnxtrain/detection_training.h"
#include "onnxtrain/onnxtrain.h"
#include "tools/cli/commands.h"
#include "tools/cli/train_detect.h"

namespace onnxtrain::cli {

namespace {

namespace fs = std::filesystem;

struct PredictArgs {
  std::string model, source, task = "detect", out, names, head = "auto", anchors;
  double confidence = 0.25, iou = 0.7;
  int64_t max_detections = 300;
  int threads = 0;
  bool no_images = false;
};

std::string csv_quote(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

bool is_image(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* e : {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tga", ".psd", ".pnm", ".ppm", ".pgm"})
    if (ext == e) return true;
  return false;
}

// The drawn copy's file name: the path below the source folder with '/' as '_', so images
// of the same name in different subfolders do not overwrite each other.
std::string drawn_name(const fs::path& file, const std::string& source) {
  fs::path rel = fs::is_directory(source) ? fs::relative(file, source) : file.filename();
  std::string name = rel.replace_extension(".png").generic_string();
  std::replace(name.begin(), name.end(), '/', '_');
  return name;
}

// The image files of `source`: the file itself, or a folder's images (recursively, sorted).
std::vector<fs::path> images_of(const std::string& source) {
  if (!fs::exists(source)) throw DataError("--source " + source + " does not exist");
  if (!fs::is_directory(source)) return {source};
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(source))
    if (e.is_regular_file() && is_image(e.path())) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  if (out.empty()) throw DataError("--source " + source + " holds no image files (png, jpg, bmp, gif, tga, psd, pnm)");
  return out;
}

int run_predict(const PredictArgs& a) {
  if (a.task != "detect") throw DataError("predict: --task " + a.task + " is not supported (detect)");
  Model model = Model::load(a.model);
  DetectionHeadHints hints;
  hints.kind = a.head;
  if (!a.anchors.empty()) hints.anchors = parse_anchors(a.anchors);
  DetectionHead head = detect_head(model, hints);
  std::vector<std::string> names = a.names.empty() ? detection_class_names(model) : read_class_names(a.names);
  const auto name_of = [&](int64_t cls) {
    return cls >= 0 && cls < static_cast<int64_t>(names.size()) ? names[cls] : std::to_string(cls);
  };
  const auto files = images_of(a.source);
  const fs::path out = a.out.empty() ? create_numbered_run_dir("runs/predict") : fs::path(a.out);
  fs::create_directories(out);
  Detector detector(model, head, NmsOptions{.iou = a.iou, .confidence = a.confidence, .max_detections = a.max_detections},
                    a.threads);
  nlohmann::json all = nlohmann::json::array();
  std::string csv = "image,class,name,score,x1,y1,x2,y2\n";
  int64_t boxes = 0;
  for (const auto& file : files) {
    Image image = read_image(file.string());
    const std::vector<Detection> found = detector.detect(image);
    nlohmann::json list = nlohmann::json::array();
    for (const auto& d : found) {
      const auto& b = d.box;
      list.push_back({{"class", b.cls}, {"name", name_of(b.cls)}, {"score", d.score}, {"box", {b.x1, b.y1, b.x2, b.y2}}});
      csv += csv_quote(file.string()) + "," + std::to_string(b.cls) + "," + csv_quote(name_of(b.cls)) + "," +
             std::to_string(d.score) + "," + std::to_string(b.x1) + "," + std::to_string(b.y1) + "," +
             std::to_string(b.x2) + "," + std::to_string(b.y2) + "\n";
    }
    draw_detections(image, found, names);
    boxes += static_cast<int64_t>(found.size());
    all.push_back({{"image", file.string()}, {"width", image.width}, {"height", image.height}, {"detections", list}});
    if (!a.no_images) save_png(image, (out / drawn_name(file, a.source)).string());
    if (!quiet_mode()) std::cout << file.string() << ": " << found.size() << " object(s)\n";
  }
  write_file_atomically((out / "predictions.json").string(), all.dump(1) + "\n");
  write_file_atomically((out / "predictions.csv").string(), csv);
  if (!quiet_mode())
    std::cout << boxes << " object(s) in " << files.size() << " image(s); results in " << out.string()
              << " (predictions.json, predictions.csv" << (a.no_images ? "" : ", drawn images") << ")\n";
  return 0;
}

}  // namespace

Command add_predict_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("predict", "Run a trained detector on images: boxes as JSON/CSV and drawn images");
  cmd->option_defaults()->always_capture_default();
  auto a = std::make_shared<PredictArgs>();
  cmd->add_option("model", a->model, "ONNX detection model (e.g. best.onnx of a `train --task detect` run)")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--source", a->source, "An image file or a folder of images (searched recursively)")->required();
  cmd->add_option("--task", a->task, "What the model does")->check(CLI::IsMember({"detect"}));
  cmd->add_option("--conf", a->confidence, "Keep boxes scoring at least this")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--iou", a->iou, "NMS: a box is suppressed by a better one of its class overlapping more than this")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--max-det", a->max_detections, "At most this many boxes per image")->check(CLI::PositiveNumber);
  cmd->add_option("--names", a->names, "Class names: a data.yaml or a text file with one name per line "
                                       "(default: the model's metadata, else class ids)");
  cmd->add_option("--head", a->head, "Head layout: auto | yolov5 | yolov8")->check(CLI::IsMember({"auto", "yolov5", "yolov8"}));
  cmd->add_option("--anchors", a->anchors, "YOLOv5 anchors in input pixels, e.g. 10,13,16,30,33,23/30,61,...; 'default' for YOLOv5's "
                                           "(default: the model's metadata)");
  cmd->add_option("--out", a->out, "Output folder (default: runs/predict/N)");
  cmd->add_flag("--no-images", a->no_images, "Write only the JSON and CSV, no drawn images");
  cmd->add_option("--threads", a->threads, "Threads (default: all cores)");
  return {cmd, [a]() { return run_predict(*a); }};
}

}  // namespace onnxtrain::cli
