#pragma once
// `onnxtrain train --task detect`: fine-tune a YOLO-style detector on a YOLO dataset
// (data.yaml) or COCO instances JSON (docs/detection.md). train.cpp calls these where its
// classification path opens data, picks defaults and reports.
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "onnxtrain/detection_training.h"
#include "onnxtrain/onnxtrain.h"

namespace onnxtrain::cli {

struct DetectArgs {
  std::string images, val_images;  // COCO: the image folders of --data and --val
  std::string head = "auto";       // auto | yolov5 | yolov8 (anchors: the loss's --anchors)
  double mosaic = 1.0, degrees = 0, translate = 0.1, scale = 0.5, fliplr = 0.5;
  double hsv_h = 0.015, hsv_s = 0.7, hsv_v = 0.4;
  int64_t close_mosaic = 10;       // mosaic off for the last epochs
  double conf = 0.001, iou = 0.7;  // validation NMS
};
void add_detect_flags(CLI::App* cmd, DetectArgs& a);

struct DetectData {
  DetectionHead head;
  DatasetPtr train, val;
  std::vector<std::string> names;
};
// Recognises the head, sets the loss (kind, outputs, anchors) where the flags left it, and
// opens the training and validation data (validated before training starts). `data` is a
// data.yaml (its train and val splits; --val names another yaml's val split) or a COCO JSON
// with --images (and --val with --val-images).
DetectData open_detect_data(const CLI::App& cmd, const DetectArgs& args, const std::string& data, const std::string& val,
                            int64_t epochs, Model& model, TrainingOptions& options);
// The validator of a detection fit: mAP, pictures and tables in the run directory.
void detect_fit_options(const DetectData& data, const DetectArgs& args, int64_t batch_size, FitOptions& fit);

// `eval --task detect`: the flags, and one validation of the model on the val split of a
// data.yaml (or a COCO JSON with --images): loss, mAP, precision, recall and a per-class table.
void add_detect_eval_flags(CLI::App* cmd, DetectArgs& a);
int eval_detect(const DetectArgs& args, const std::string& data, int64_t batch_size, int threads, Model& model);

// YOLOv5 anchors from the command line: numbers separated by commas, slashes or spaces
// (w, h in input pixels, level-major), or "default" (YOLOv5's P3-P5 anchors for 640 px).
std::vector<double> parse_anchors(const std::string& text);
// Class names from a data.yaml (its names) or a text file (one per line).
std::vector<std::string> read_class_names(const std::string& path);

}  // namespace onnxtrain::cli
