// Detection validation for a fit: every validation image's predictions, NMS, COCO-style mAP,
// and the pictures and tables of the last validation for the run directory.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "onnxtrain/atomic_file.h"
#include "onnxtrain/detection_training.h"
#include "onnxtrain/errors.h"
#include "src/batches.h"
#include "src/image_draw.h"
#include "src/run_dir.h"
#include "src/svg.h"

namespace onnxtrain {

namespace {

namespace fs = std::filesystem;

// One drawn validation image: the letterboxed input and what was found and expected in it.
struct Shown {
  Image image;
  std::vector<Detection> found;
  std::vector<GroundTruth> truth;
};

Image image_of(const Tensor& images, int64_t row) {
  const int64_t h = images.shape().at(2), w = images.shape().at(3);
  Image image(static_cast<int>(h), static_cast<int>(w));
  const float* p = images.data<float>() + row * 3 * h * w;
  std::copy(p, p + 3 * h * w, image.pixels.begin());
  return image;
}

// The valid rows of boxes[row] ((valid, class, cx, cy, w, h)) as corners, normalised like
// decode_detections' boxes (IoU does not change when each axis is scaled).
std::vector<GroundTruth> truths_of(const Tensor& boxes, int64_t row, int64_t image) {
  std::vector<GroundTruth> out;
  const int64_t b = boxes.shape().at(1);
  const float* r = boxes.data<float>() + row * b * 6;
  for (int64_t i = 0; i < b; ++i, r += 6) {
    if (r[0] == 0) continue;
    const float cx = r[2], cy = r[3], w = r[4], h = r[5];
    out.push_back({.image = image,
                   .box = Box{.cls = static_cast<int64_t>(r[1]), .x1 = cx - w / 2, .y1 = cy - h / 2,
                              .x2 = cx + w / 2, .y2 = cy + h / 2}});
  }
  return out;
}

class DetectionValidator final : public Validator {
 public:
  DetectionValidator(DetectionHead head, DetectionValidatorOptions options)
      : head_(std::move(head)), o_(std::move(options)) {
    if (o_.batch_size <= 0) throw DataError("detection validator: batch_size must be positive");
  }

  std::vector<std::string> metrics() const override { return {"map50_95", "map50", "precision", "recall"}; }
  bool higher_is_better(const std::string&) const override { return true; }

  Evaluation validate(TrainingSession& session, DatasetPtr data) override {
    Evaluation result;
    std::vector<Detection> found;
    std::vector<GroundTruth> truths;
    shown_.clear();
    MeanLoss loss;
    for_each_batch(data, o_.batch_size, [&](Batch& batch, int64_t done) {
      const int64_t take = static_cast<int64_t>(batch.samples.size());
      const Tensor& images = array(batch, o_.images);
      const Tensor& boxes = array(batch, o_.boxes);
      std::map<std::string, Tensor> feeds{{o_.images, images}, {o_.boxes, boxes}};
      EvalResult e = session.eval_step(feeds, head_.outputs);
      if (!std::isnan(e.loss)) loss.add(e.loss, take);
      std::vector<Tensor> levels;
      for (const auto& name : head_.outputs) levels.push_back(e.outputs.at(name));
      const auto per_image = decode_detections(head_, levels, o_.nms.confidence);
      for (int64_t i = 0; i < take; ++i) {
        const int64_t image = done + i;
        std::vector<Detection> kept = nms(per_image.at(i), o_.nms);
        for (auto& d : kept) d.image = image;
        auto truth = truths_of(boxes, i, image);
        if (static_cast<int64_t>(shown_.size()) < o_.images_to_draw) shown_.push_back({image_of(images, i), kept, truth});
        found.insert(found.end(), kept.begin(), kept.end());
        truths.insert(truths.end(), truth.begin(), truth.end());
      }
      ++result.batches;
    });
    last_ = evaluate_detections(found, truths, o_.map);
    result.loss = loss.count() ? loss.value() : std::nan("");
    result.loss_count = loss.count();
    result.metrics = {{"map50_95", last_.map50_95}, {"map50", last_.map50}, {"precision", last_.precision},
                      {"recall", last_.recall}};
    for (const auto& [name, value] : result.metrics) result.metric_counts[name] = static_cast<int64_t>(truths.size());
    return result;
  }

  void write_run_files(const fs::path& run_dir) override {
    write_file_atomically((run_dir / "pr_curve.svg").string(), pr_curve_svg());
    write_file_atomically((run_dir / "class_ap.csv").string(), class_table());
    if (!shown_.empty()) write_file_atomically((run_dir / "val_predictions.png").string(), encode_png(grid()));
  }

 private:
  static const Tensor& array(const Batch& batch, const std::string& name) {
    auto it = batch.arrays.find(name);
    if (it == batch.arrays.end()) throw DataError("detection validation: the validation data has no array '" + name + "'");
    return it->second;
  }

  std::string name_of(int64_t cls) const {
    return cls >= 0 && cls < static_cast<int64_t>(o_.class_names.size()) ? o_.class_names[cls] : std::to_string(cls);
  }

  std::string pr_curve_svg() const {
    LineChart chart;
    char title[96];
    std::snprintf(title, sizeof title, "precision-recall at IoU 0.5 (mAP@0.5 %.3f)", last_.map50);
    chart.title = title;
    chart.x_label = "recall";
    chart.y_label = "precision";
    std::vector<double> recall(101), mean(101, 0.0);
    for (int i = 0; i <= 100; ++i) recall[i] = i / 100.0;
    for (const auto& c : last_.classes)
      for (int i = 0; i <= 100; ++i) mean[i] += c.pr_curve[i] / static_cast<double>(last_.classes.size());
    // One line per class while they stay readable, then the mean alone.
    if (last_.classes.size() <= 10)
      for (const auto& c : last_.classes) {
        char label[160];
        std::snprintf(label, sizeof label, "%s %.3f", name_of(c.cls).c_str(), c.ap50);
        chart.series.push_back({.name = label, .x = recall, .y = {c.pr_curve.begin(), c.pr_curve.end()}});
      }
    if (!last_.classes.empty()) chart.series.push_back({.name = "all classes", .x = recall, .y = mean});
    return line_chart_svg(chart);
  }

  std::string class_table() const {
    std::string csv = "class,name,instances,precision,recall,ap50,ap50_95\n";
    for (const auto& c : last_.classes)
      csv += std::to_string(c.cls) + "," + csv_field(name_of(c.cls)) + "," + std::to_string(c.ground_truths) + "," +
             format_number(c.precision) + "," + format_number(c.recall) + "," + format_number(c.ap50) + "," +
             format_number(c.ap50_95) + "\n";
    int64_t instances = 0;
    for (const auto& c : last_.classes) instances += c.ground_truths;
    csv += "all,all," + std::to_string(instances) + "," + format_number(last_.precision) + "," + format_number(last_.recall) +
           "," + format_number(last_.map50) + "," + format_number(last_.map50_95) + "\n";
    return csv;
  }

  // Up to 4 images per row, each with its ground truth (white) and predictions drawn.
  Image grid() const {
    const int h = shown_.front().image.height, w = shown_.front().image.width;
    const int cols = std::min<int>(4, static_cast<int>(shown_.size()));
    const int rows = (static_cast<int>(shown_.size()) + cols - 1) / cols;
    Image out(rows * h, cols * w, 1.0f);
    for (size_t k = 0; k < shown_.size(); ++k) {
      Image im = shown_[k].image;
      const auto pixels = [&](Box b) {
        b.x1 *= static_cast<float>(w), b.x2 *= static_cast<float>(w), b.y1 *= static_cast<float>(h), b.y2 *= static_cast<float>(h);
        return b;
      };
      for (const auto& t : shown_[k].truth) draw_box(im, pixels(t.box), {1, 1, 1}, 1);
      for (const auto& d : shown_[k].found)
        if (d.score >= o_.draw_confidence) draw_detection(im, pixels(d.box), name_of(d.box.cls), d.score);
      const int oy = static_cast<int>(k) / cols * h, ox = static_cast<int>(k) % cols * w;
      for (int c = 0; c < 3; ++c)
        for (int y = 0; y < h; ++y)
          for (int x = 0; x < w; ++x) out.at(c, oy + y, ox + x) = im.at(c, y, x);
    }
    return out;
  }

  DetectionHead head_;
  DetectionValidatorOptions o_;
  DetectionMetrics last_;
  std::vector<Shown> shown_;
};

}  // namespace

std::shared_ptr<Validator> make_detection_validator(DetectionHead head, DetectionValidatorOptions options) {
  return std::make_shared<DetectionValidator>(std::move(head), std::move(options));
}

}  // namespace onnxtrain
