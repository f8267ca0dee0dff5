// The detection task of `onnxtrain train` (see train_detect.h).
#include "tools/cli/train_detect.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

namespace onnxtrain::cli {

namespace fs = std::filesystem;

namespace {

bool is_json(const std::string& path) { return fs::path(path).extension() == ".json"; }

DetectionDatasetPtr open_split(const std::string& data, const std::string& images, const std::string& split,
                               const DetectionOptions& o) {
  if (is_json(data)) {
    if (images.empty()) throw DataError("--task detect: " + data + " is COCO JSON; give its image folder with --images/--val-images");
    return open_coco(data, images, o);
  }
  return open_yolo(data, split, o);
}

}  // namespace

void add_detect_flags(CLI::App* cmd, DetectArgs& a) {
  cmd->add_option("--images", a.images, "--task detect with COCO JSON --data: its image folder");
  cmd->add_option("--val-images", a.val_images, "--task detect with COCO JSON --val: its image folder");
  cmd->add_option("--head", a.head, "--task detect: head layout (auto | yolov5 | yolov8)")
      ->check(CLI::IsMember({"auto", "yolov5", "yolov8"}));
  cmd->add_option("--mosaic", a.mosaic, "--task detect: probability of a 4-image mosaic")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--close-mosaic", a.close_mosaic, "--task detect: no mosaic in the last N epochs")->check(CLI::NonNegativeNumber);
  cmd->add_option("--degrees", a.degrees, "--task detect: random rotation range (+- degrees)")->check(CLI::Range(0.0, 180.0));
  cmd->add_option("--translate", a.translate, "--task detect: random translation (+- fraction)")->check(CLI::Range(0.0, 0.9));
  cmd->add_option("--scale", a.scale, "--task detect: random scale gain (1 +- scale)")->check(CLI::Range(0.0, 0.9));
  cmd->add_option("--fliplr", a.fliplr, "--task detect: probability of a horizontal flip")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--hsv-h", a.hsv_h, "--task detect: hue jitter (fraction)")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--hsv-s", a.hsv_s, "--task detect: saturation jitter (fraction)")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--hsv-v", a.hsv_v, "--task detect: value jitter (fraction)")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--val-conf", a.conf, "--task detect: validation NMS confidence threshold")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--val-iou", a.iou, "--task detect: validation NMS IoU threshold")->check(CLI::Range(0.0, 1.0));
}

DetectData open_detect_data(const CLI::App& cmd, const DetectArgs& args, const std::string& data, const std::string& val,
                            int64_t epochs, Model& model, TrainingOptions& options) {
  LossOptions& loss = options.loss;
  DetectionHeadHints hints;
  hints.kind = args.head;
  hints.anchors = loss.detection.anchors;
  hints.outputs = loss.outputs;
  hints.reg_max = loss.detection.reg_max;
  DetectData out;
  out.head = detect_head(model, hints);
  if (!cmd.count("--loss")) loss.kind = out.head.kind;
  if (loss.kind != "yolov5" && loss.kind != "yolov8")
    throw DataError("--task detect trains with a detection loss (yolov5 or yolov8), not --loss " + loss.kind);
  if (loss.kind != out.head.kind)
    throw DataError("--loss " + loss.kind + " does not fit the model's head: " + out.head.describe());
  loss.outputs = out.head.outputs;
  if (loss.kind == "yolov5") loss.detection.anchors = {out.head.anchors.begin(), out.head.anchors.end()};
  DetectionOptions o;
  o.height = static_cast<int>(out.head.input_height);
  o.width = static_cast<int>(out.head.input_width);
  o.images = model.inputs().at(0).name;
  o.boxes = loss.target == "label" ? "boxes" : loss.target;  // the detection kinds read "label" as "boxes"
  o.hsv_h = args.hsv_h, o.hsv_s = args.hsv_s, o.hsv_v = args.hsv_v;
  o.degrees = args.degrees, o.translate = args.translate, o.scale = args.scale, o.fliplr = args.fliplr;
  o.mosaic = args.mosaic;
  o.mosaic_epochs = std::max<int64_t>(0, epochs - args.close_mosaic);
  auto train = open_split(data, args.images, "train", o);
  out.train = train;
  out.names = train->class_names();
  if (!val.empty())
    out.val = open_split(val, args.val_images, "val", o);
  else if (!is_json(data) && !read_data_yaml(data).val.empty())
    out.val = open_split(data, "", "val", o);
  const int64_t classes = out.head.num_classes;
  if (!out.names.empty() && static_cast<int64_t>(out.names.size()) != classes)
    throw DataError(data + " names " + std::to_string(out.names.size()) + " classes; the model's head has " +
                    std::to_string(classes) + " (" + out.head.describe() + ")");
  // Saved models carry what predict needs.
  model.set_metadata("names", nlohmann::json(out.names).dump());
  if (loss.kind == "yolov5") model.set_metadata("anchors", nlohmann::json(out.head.anchors).dump());
  return out;
}

void detect_fit_options(const DetectData& data, const DetectArgs& args, int64_t batch_size, FitOptions& fit) {
  DetectionValidatorOptions v;
  v.nms.confidence = args.conf;
  v.nms.iou = args.iou;
  v.batch_size = batch_size;
  v.class_names = data.names;
  fit.validator = make_detection_validator(data.head, v);
}

void add_detect_eval_flags(CLI::App* cmd, DetectArgs& a) {
  cmd->add_option("--images", a.images, "--task detect with COCO JSON --data: its image folder");
  cmd->add_option("--head", a.head, "--task detect: head layout (auto | yolov5 | yolov8)")
      ->check(CLI::IsMember({"auto", "yolov5", "yolov8"}));
  cmd->add_option("--val-conf", a.conf, "--task detect: NMS confidence threshold")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--val-iou", a.iou, "--task detect: NMS IoU threshold")->check(CLI::Range(0.0, 1.0));
}

int eval_detect(const DetectArgs& args, const std::string& data, int64_t batch_size, int threads, Model& model) {
  DetectionHeadHints hints;
  hints.kind = args.head;
  const DetectionHead head = detect_head(model, hints);
  TrainingOptions options;  // the loss of the head's kind with its default gains
  options.loss.kind = head.kind;
  options.loss.outputs = head.outputs;
  if (head.kind == "yolov5") options.loss.detection.anchors = {head.anchors.begin(), head.anchors.end()};
  options.threads = threads;
  DetectionOptions o;
  o.height = static_cast<int>(head.input_height);
  o.width = static_cast<int>(head.input_width);
  o.images = model.inputs().at(0).name;
  const DetectionDatasetPtr val = open_split(data, args.images, "val", o);
  TrainingSession session(model, options);
  DetectionValidatorOptions v;
  v.nms.confidence = args.conf;
  v.nms.iou = args.iou;
  v.batch_size = batch_size;
  v.class_names = val->class_names();
  const auto validator = make_detection_validator(head, v);
  const Evaluation e = validator->validate(session, val);
  std::printf("loss: %.6g\n", e.loss);
  for (const auto& name : validator->metrics()) std::printf("%s: %.4f\n", name.c_str(), e.metrics.at(name));
  return 0;
}

std::vector<double> parse_anchors(const std::string& text) {
  if (text == "default")  // YOLOv5's P3/8, P4/16, P5/32 anchors (models/yolov5s.yaml)
    return {10, 13, 16, 30, 33, 23, 30, 61, 62, 45, 59, 119, 116, 90, 156, 198, 373, 326};
  std::vector<double> out;
  std::string token;
  std::istringstream in(std::regex_replace(text, std::regex("[,/;\\[\\]]"), " "));
  while (in >> token) {
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(token, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != token.size() || !(v > 0))
      throw DataError("anchors: '" + token + "' is not a positive number (give w,h pairs in input pixels, or 'default')");
    out.push_back(v);
  }
  if (out.empty() || out.size() % 2) throw DataError("anchors: give w,h pairs in input pixels, got " + text);
  return out;
}

std::vector<std::string> read_class_names(const std::string& path) {
  const std::string ext = fs::path(path).extension().string();
  if (ext == ".yaml" || ext == ".yml") return read_data_yaml(path).names;
  std::ifstream in(path);
  if (!in) throw DataError("cannot read class names from " + path);
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  return names;
}

}  // namespace onnxtrain::cli
