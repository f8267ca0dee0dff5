#pragma once
// Fine-tuning and running a detector (docs/detection.md): validation by mAP for a fit
// (FitOptions::validator), and a Detector that finds boxes in images of any size.
//
//   DetectionHead head = detect_head(model, {});
//   FitOptions fit;  fit.validator = make_detection_validator(head, {.class_names = names});
//   Detector detector(trained, head);  std::vector<Detection> found = detector.detect(read_image("a.jpg"));
#include <memory>
#include <string>
#include <vector>

#include "onnxtrain/detection.h"
#include "onnxtrain/model.h"
#include "onnxtrain/trainer.h"

namespace onnxtrain {

struct DetectionValidatorOptions {
  // Ultralytics' validation thresholds: a low confidence so the PR curve reaches high recall.
  NmsOptions nms{.iou = 0.7, .confidence = 0.001, .max_detections = 300};
  MapOptions map;
  int64_t batch_size = 16;
  std::vector<std::string> class_names;  // for the drawn images and class_ap.csv (default: ids)
  int64_t images_to_draw = 8;            // validation images with their predictions, in val_predictions.png
  double draw_confidence = 0.25;         // the drawn boxes score at least this
  // The dataset's array names (DetectionOptions).
  std::string images = "images", boxes = "boxes", counts = "counts";
};

// metrics(): map50_95 (the default score, as best.onnx is chosen by Ultralytics), map50,
// precision, recall, all higher-is-better. Each validation decodes the head's outputs,
// applies class-aware NMS per image and matches against the batch's boxes COCO-style; boxes
// are compared normalised to the input. write_run_files writes pr_curve.svg
// (precision over recall at IoU 0.5 per class), class_ap.csv and val_predictions.png (the
// first images, predictions in class colours with names and scores, ground truth in white).
std::shared_ptr<Validator> make_detection_validator(DetectionHead head, DetectionValidatorOptions options = {});

// Finds objects in images with a trained model: letterbox to the model's input, decode the
// head, class-aware NMS, boxes mapped back to the image's own pixels.
class Detector {
 public:
  Detector(const Model& model, DetectionHead head, NmsOptions nms = {}, int threads = 0);
  ~Detector();
  Detector(Detector&&) noexcept;
  Detector& operator=(Detector&&) noexcept;
  // The kept detections, best first; Detection::image is 0.
  std::vector<Detection> detect(const Image& image);
  const DetectionHead& head() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace onnxtrain
