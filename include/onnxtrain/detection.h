#pragma once
// Object detection: datasets (YOLO layout with a data.yaml, COCO instances JSON), the
// transforms that keep boxes consistent with their image (letterbox, flip, affine, HSV,
// mosaic), and the metrics (box IoU, class-aware NMS, COCO-style mAP). docs/detection.md
// describes the layouts and the batch format.
//
// Batches of a DetectionDataset (all names configurable in DetectionOptions):
//   images  float32 [N, 3, H, W]  RGB in [0, 1], letterboxed to H x W (grey 114/255 padding)
//   boxes   float32 [N, B, 6]     (valid, class, cx, cy, w, h): valid is 1 for a box and 0 for
//                                 padding; cx, cy, w, h are normalised to the letterboxed
//                                 image; B is the largest box count of the batch (at least 1)
//   counts  int64   [N]           the number of valid boxes of each image (they come first)
// A valid flag rather than the batch-local image index keeps rows correct when a
// distributed loader slices a batch across ranks; the image is the row's first index.
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "onnxtrain/data.h"

namespace onnxtrain {

// ---- Images and boxes ---------------------------------------------------------------------

// An RGB image with values in [0, 1], planar: pixels[(c * height + y) * width + x].
struct Image {
  int height = 0, width = 0;
  std::vector<float> pixels;

  Image() = default;
  Image(int height, int width, float fill = 0.0f);
  float& at(int c, int y, int x) { return pixels[(static_cast<size_t>(c) * height + y) * width + x]; }
  float at(int c, int y, int x) const { return pixels[(static_cast<size_t>(c) * height + y) * width + x]; }
};

// An image file (PNG, JPEG, BMP, GIF, TGA, PSD, PNM) as RGB. Throws DataError naming the
// file when it cannot be read.
Image read_image(const std::string& path);

// The grey that letterbox, affine and mosaic fill empty space with (Ultralytics' 114).
inline constexpr float kPadValue = 114.0f / 255.0f;

// A box in pixel coordinates of its image: pixel (x, y) covers [x, x+1) x [y, y+1), so a box
// around pixels 2..5 has x1 = 2, x2 = 6.
struct Box {
  int64_t cls = 0;
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;
  float width() const { return x2 - x1; }
  float height() const { return y2 - y1; }
  float area() const { return width() > 0 && height() > 0 ? width() * height() : 0.0f; }
};

struct LabelledImage {
  Image image;
  std::vector<Box> boxes;
};

// ---- Transforms (pure functions: the input is left as it is) --------------------------------

// Where letterbox put the original image: letterboxed x = original x * scale_x + pad_x (the
// two scales differ only by the rounding of the resized size).
struct LetterboxInfo {
  double scale_x = 1, scale_y = 1, pad_x = 0, pad_y = 0;
  Box to_original(const Box& letterboxed) const;
};
// Resizes to exactly height x width (antialiased bilinear, the aspect ratio may change).
LabelledImage resize(const LabelledImage& in, int height, int width);
// Resizes keeping the aspect ratio so the image fits height x width, centred, the rest grey.
LabelledImage letterbox(const LabelledImage& in, int height, int width, LetterboxInfo* info = nullptr);
LabelledImage hflip(const LabelledImage& in);

// One affine transform: the input's centre goes to the output's centre moved by
// (translate_x * width, translate_y * height), rotated by `degrees` (counter-clockwise as
// seen on screen) and scaled by `scale` about it. Boxes are mapped by their four corners,
// clipped to the output, and dropped unless box_candidate accepts them.
struct AffineParams {
  double degrees = 0, scale = 1, translate_x = 0, translate_y = 0;
};
LabelledImage affine(const LabelledImage& in, const AffineParams& params, int height, int width);
// Ultralytics' box_candidates: after a transform that scaled the image by `scale`, a box
// stays when it is wider and taller than 2 pixels, keeps more than `min_area` of its
// (scaled) area and has an aspect ratio below 100.
bool box_candidate(const Box& before, const Box& after, double scale, double min_area = 0.1);

// Multiplies hue (modulo 1), saturation and value (clipped to [0, 1]) by the gains; boxes
// are unchanged.
LabelledImage hsv_jitter(const LabelledImage& in, double hue_gain, double saturation_gain, double value_gain);

// Four tiles around (center_x, center_y) of a height x width grey canvas: tile 0 ends at
// the centre (top left), 1 starts right of it (top right), 2 below left, 3 below right. Tiles
// are cropped by the canvas, their boxes clipped and filtered with box_candidate.
LabelledImage mosaic(const std::array<LabelledImage, 4>& tiles, int height, int width, double center_x, double center_y);

// ---- Datasets -------------------------------------------------------------------------------

struct DetectionOptions {
  int height = 640, width = 640;  // the model's input size
  std::string images = "images", boxes = "boxes", counts = "counts";
  // Augmentation, only when BatchOptions::augment (Ultralytics' default hyperparameters).
  double hsv_h = 0.015, hsv_s = 0.7, hsv_v = 0.4;  // gains drawn from 1 +- these
  double degrees = 0, translate = 0.1, scale = 0.5;  // affine ranges: +-degrees, +-translate, 1 +- scale
  double fliplr = 0.5;                               // probability of a horizontal flip
  double mosaic = 1.0;                               // probability of a mosaic of 4 images
  // Mosaic is used in epochs < mosaic_epochs; -1 = every epoch. A trainer closes mosaic for
  // the last k of E epochs (Ultralytics' close_mosaic) with mosaic_epochs = E - k.
  int64_t mosaic_epochs = -1;
};

// One image and its boxes, in pixels of the original image.
struct DetectionRecord {
  std::string image;
  int width = 0, height = 0;
  std::vector<Box> boxes;
};

struct DetectionSummary {
  int64_t images = 0, boxes = 0;
  int64_t background = 0;  // images without boxes (YOLO: no label file, or an empty one)
  int64_t crowd = 0;       // COCO iscrowd=1 annotations, left out of the boxes
  std::string text() const;  // "120 images, 431 boxes, 3 background, 0 crowd"
};

class DetectionDataset final : public Dataset {
 public:
  DetectionDataset(std::vector<DetectionRecord> records, std::vector<std::string> class_names,
                   DetectionSummary summary, std::string source, DetectionOptions options);

  int64_t size() const override { return static_cast<int64_t>(records_.size()); }
  const std::vector<ArrayInfo>& arrays() const override { return schema_; }
  const std::string& source() const override { return source_; }
  std::vector<std::string> class_names() const override { return names_; }

  const DetectionSummary& summary() const { return summary_; }
  const std::vector<DetectionRecord>& records() const { return records_; }
  const DetectionOptions& options() const { return options_; }
  // Sample `index` as a batch holds it: letterboxed, and augmented when options.augment.
  // Without augmentation `info` (when given) maps the boxes back to the original image.
  LabelledImage sample(int64_t index, const BatchOptions& options, LetterboxInfo* info = nullptr) const;

 protected:
  std::map<std::string, Tensor> read(std::span<const int64_t> indices, const std::vector<std::string>& names,
                                     const BatchOptions& options) const override;

 private:
  LabelledImage load(int64_t index) const;

  std::vector<DetectionRecord> records_;
  std::vector<std::string> names_;
  DetectionSummary summary_;
  std::string source_;
  DetectionOptions options_;
  std::vector<ArrayInfo> schema_;
};
using DetectionDatasetPtr = std::shared_ptr<const DetectionDataset>;

// A YOLO data.yaml: `path` (relative to the yaml's folder; default that folder), `train`,
// `val`, optional `test` (image folders relative to path), `names` as a list or an
// {id: name} map with ids 0 .. nc-1, and optional `nc` (must agree with names).
struct DataYaml {
  std::string path, train, val, test;  // path absolute; the splits as written
  std::vector<std::string> names;
};
DataYaml read_data_yaml(const std::string& file);

// A split ("train", "val" or "test") of a YOLO dataset. Each image .../images/<rel>/x.jpg has
// its labels in .../labels/<rel>/x.txt, a line `class cx cy w h` per box (normalised to
// [0, 1]); an image without a label file is background. Every problem of the split (missing
// image for a label file, unreadable image, malformed line, class out of range, box outside
// the image or empty, two images sharing a label file) is collected and reported in one
// DataError naming the files and lines.
DetectionDatasetPtr open_yolo(const std::string& data_yaml, const std::string& split,
                              const DetectionOptions& options = {});
// COCO instances JSON: `images` (id, file_name relative to image_dir, width, height),
// `annotations` (image_id, category_id, bbox [x, y, w, h] in pixels, iscrowd), `categories`
// (id, name) mapped to contiguous class ids in sorted id order. Crowd annotations are counted
// and left out. Problems are collected and reported like open_yolo's.
DetectionDatasetPtr open_coco(const std::string& annotations_json, const std::string& image_dir,
                              const DetectionOptions& options = {});

// ---- Metrics --------------------------------------------------------------------------------

struct Detection {
  int64_t image = 0;
  Box box;
  float score = 0;
};
struct GroundTruth {
  int64_t image = 0;
  Box box;
  bool crowd = false;  // matched detections are ignored, never counted as true or false
};

double box_iou(const Box& a, const Box& b);

struct NmsOptions {
  double iou = 0.7;          // a box is suppressed by a higher-scoring one of its class above this
  double confidence = 0.25;  // boxes scoring below are dropped first
  int64_t max_detections = 300;
};
// Class-aware NMS of the detections of one image; the kept ones by descending score.
std::vector<Detection> nms(std::span<const Detection> detections, const NmsOptions& options = {});

// Draws each detection (boxes in the image's pixels) as an outline in its class's colour
// with "name score" above it; names[cls], or the class id where names has none.
void draw_detections(Image& image, std::span<const Detection> detections, const std::vector<std::string>& names = {});
// Writes the image as an 8-bit RGB PNG file, atomically. Throws BackendError on I/O errors.
void save_png(const Image& image, const std::string& path);

struct ClassMetrics {
  int64_t cls = 0;
  int64_t ground_truths = 0;                 // not crowd
  std::array<double, 10> ap{};               // at IoU 0.50, 0.55, ..., 0.95
  double ap50 = 0, ap50_95 = 0;
  double precision = 0, recall = 0;          // at the best-F1 confidence, IoU 0.5
  std::array<double, 101> pr_curve{};        // precision at recall 0, 0.01, ..., 1 (IoU 0.5)
};
struct DetectionMetrics {
  std::vector<ClassMetrics> classes;  // the classes that have ground truths, by id
  double map50 = 0, map50_95 = 0;     // means over `classes`
  double precision = 0, recall = 0;   // means over `classes` at `confidence`
  double confidence = 0;              // maximising the (smoothed) mean F1, as Ultralytics
};
struct MapOptions {
  int64_t max_detections = 100;  // per image, COCO's maxDets
};
// COCOeval's bbox evaluation (area "all"): per image and class the detections, best score
// first, greedily take the unmatched ground truth of highest IoU (crowd ones last, matchable
// repeatedly); AP is the mean of the interpolated precision at 101 recall points.
DetectionMetrics evaluate_detections(std::span<const Detection> detections, std::span<const GroundTruth> truths,
                                     const MapOptions& options = {});

// ---- Heads ----------------------------------------------------------------------------------

class Model;

// The raw outputs of a YOLO-style head, one per level (docs/detection.md, "Heads").
//   yolov5 "flat":  [N, A*(5+C), H, W], channel a*(5+C) + k, k = x, y, w, h, obj, classes
//   yolov5 "split": [N, A, H, W, 5+C]
//   yolov8 "flat":  [N, 4*reg_max + C, H, W], the box distribution (side-major: l, t, r, b)
//                   then the class logits
struct DetectionHead {
  std::string kind;                  // "yolov5" | "yolov8"
  std::vector<std::string> outputs;  // level order (stride ascending)
  std::vector<int64_t> strides;
  int64_t num_classes = 0;
  int64_t anchors_per_level = 0;     // yolov5
  std::vector<float> anchors;        // yolov5: (w, h) in input pixels, level-major; empty when unknown
  std::string layout;                // "flat" | "split"
  int64_t reg_max = 0;               // yolov8
  int64_t input_height = 0, input_width = 0;
  // One line: "yolov5 flat, 3 levels (output0, output1, output2) at strides 8, 16, 32, 3 classes, ..."
  std::string describe() const;
};

struct DetectionHeadHints {
  std::string kind = "auto";         // "auto" | "yolov5" | "yolov8"
  int64_t num_classes = 0;           // 0: from the metadata "names", else from the channels
  std::vector<double> anchors;       // yolov5; empty: the metadata "anchors" (JSON list)
  std::vector<std::string> outputs;  // the head outputs in level order; empty: every spatial output
  int64_t reg_max = 16;              // yolov8
};

// Recognises the head from the shapes of the model's outputs (the model's input must have a
// fixed H and W), their channel counts (A*(5+C) with A = anchors / 2 / levels, 3 by default;
// 4*reg_max + C) and the metadata_props "names" (Ultralytics writes it) and "anchors". When
// both kinds fit the channels, anchors (hinted or in the metadata) choose yolov5. Throws
// ModelError saying why no layout fits, listing each output's shape.
DetectionHead detect_head(const Model& model, const DetectionHeadHints& hints = {});

// The class names in a model's metadata "names": a JSON list (what onnxtrain writes), a JSON
// object of id -> name, or Ultralytics' Python dict "{0: 'person', 1: 'bicycle'}". Empty
// when there is none.
std::vector<std::string> detection_class_names(const Model& model);

// The candidate detections of each image, before NMS (Ultralytics' multi-label NMS input):
// one per (cell, anchor, class) whose score is above `conf_threshold`. score = sigmoid(obj)
// * sigmoid(cls) (yolov5) or sigmoid(cls) (yolov8). The boxes are corners normalised to the
// input image (divide by input_width / input_height), so they compare with the batch's
// normalised boxes and go straight into nms. yolov5 needs head.anchors.
std::vector<std::vector<Detection>> decode_detections(const DetectionHead& head, const std::vector<Tensor>& level_outputs,
                                                      double conf_threshold);

}  // namespace onnxtrain
