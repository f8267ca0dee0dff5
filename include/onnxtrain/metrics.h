#pragma once
// Evaluation metrics accumulated batch by batch from (model output, target) pairs, so a
// dataset never has to be held in memory at once.
//
// Classification (accuracy, top-k, confusion matrix): outputs are scores [N, C] or
// [N, C, d1, ...] (class axis 1, as torch's CrossEntropyLoss), float or double; targets
// are integer class indices [N, d1, ...] (or [N, 1, d1, ...]). The predicted class is the
// first maximum, as numpy.argmax / torch.argmax pick on ties (a NaN score counts as the
// maximum, as in numpy). Targets equal to ignore_index are skipped; any other target
// outside [0, C) is a DataError.
// Regression (mse, mae): outputs and targets hold the same elements in the same order,
// i.e. shapes that are equal once size-1 dimensions are dropped ([N, 1] vs [N] is fine),
// any numeric target dtype; the mean is over all elements.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "onnxtrain/tensor.h"

namespace onnxtrain {

class Metric {
 public:
  virtual ~Metric() = default;

  // Adds one batch. Throws DataError (naming both shapes) when they do not fit; the
  // accumulated state is then unchanged.
  virtual void update(const Tensor& output, const Tensor& target) = 0;
  // The metric over everything added since construction or reset(); NaN before anything
  // was counted (e.g. every target ignored).
  virtual double value() const = 0;
  // Number of elements (samples, or positions for [N, C, d...]) counted so far.
  virtual int64_t count() const = 0;
  virtual void reset() = 0;

  // Canonical name: "accuracy", "top5", "mse", "mae".
  virtual std::string name() const = 0;
  virtual bool higher_is_better() const = 0;
  // Whether `candidate` improves on `best` (for best.onnx and early stopping): a NaN
  // candidate never does, anything but NaN improves on a NaN best (no best yet).
  bool improves(double candidate, double best) const;
};

// Fraction of counted positions whose target is among the k highest scores (k = 1:
// plain accuracy). Ties are broken by class index like the argmax, so a target ties for
// rank r with the classes before it. k larger than the number of classes is a DataError.
class TopKAccuracy : public Metric {
 public:
  explicit TopKAccuracy(int64_t k = 1, int64_t ignore_index = -100);
  void update(const Tensor& output, const Tensor& target) override;
  double value() const override;
  int64_t count() const override { return total_; }
  void reset() override { correct_ = total_ = 0; }
  std::string name() const override;
  bool higher_is_better() const override { return true; }
  int64_t correct() const { return correct_; }

 private:
  int64_t k_, ignore_index_;
  int64_t correct_ = 0, total_ = 0;
};

// Mean squared (Squared) or absolute (Absolute) error over all elements.
class MeanError : public Metric {
 public:
  enum class Kind { Squared, Absolute };
  explicit MeanError(Kind kind);
  void update(const Tensor& output, const Tensor& target) override;
  double value() const override;
  int64_t count() const override { return count_; }
  void reset() override { sum_ = 0, count_ = 0; }
  std::string name() const override { return kind_ == Kind::Squared ? "mse" : "mae"; }
  bool higher_is_better() const override { return false; }

 private:
  Kind kind_;
  double sum_ = 0;
  int64_t count_ = 0;
};

// Mean of per-batch mean losses weighted by batch size, i.e. the per-sample mean loss of
// the epoch even when the last batch is smaller.
class MeanLoss {
 public:
  // Throws DataError for a negative batch size.
  void add(double batch_loss, int64_t batch_size);
  double value() const;  // NaN before anything was added
  int64_t count() const { return count_; }
  void reset() { sum_ = 0, count_ = 0; }
  static constexpr bool higher_is_better() { return false; }

 private:
  double sum_ = 0;
  int64_t count_ = 0;
};

// Counts of (true class, predicted class) pairs. Rows are true classes, columns predicted.
class ConfusionMatrix {
 public:
  // classes = 0: taken from class_names when given, else from the first output's dim 1.
  // class_names, when given, must name every class.
  explicit ConfusionMatrix(int64_t classes = 0, std::vector<std::string> class_names = {},
                           int64_t ignore_index = -100);

  void update(const Tensor& output, const Tensor& target);
  // One (true, predicted) pair; both must be in [0, classes()).
  void add(int64_t truth, int64_t predicted, int64_t n = 1);
  void reset();

  int64_t classes() const { return classes_; }
  int64_t count(int64_t truth, int64_t predicted) const;
  int64_t total() const { return total_; }
  int64_t support(int64_t truth) const;         // row sum: samples of this class
  int64_t predicted_count(int64_t cls) const;   // column sum
  // NaN when the class was never predicted (precision) or never present (recall).
  double precision(int64_t cls) const;
  double recall(int64_t cls) const;
  double accuracy() const;  // trace / total; NaN when empty
  // The given name, or the class index as text.
  std::string class_name(int64_t cls) const;
  const std::vector<std::string>& class_names() const { return names_; }

 private:
  void resize(int64_t classes);
  void check_class(int64_t cls, const char* what) const;

  int64_t classes_ = 0, ignore_index_;
  std::vector<std::string> names_;
  std::vector<int64_t> counts_;  // classes x classes, row-major
  int64_t total_ = 0;
};

// Semantic segmentation from a confusion matrix over every counted pixel (ignore_index
// skipped). MeanIoU: IoU_c = TP / (TP + FP + FN) averaged over the classes present in the
// truth or the prediction; a class absent from both has no IoU (NaN) and is left out of
// the mean, as torchmetrics' JaccardIndex and mmseg's nanmean do. PixelAccuracy: correct
// pixels / counted pixels.
class SegmentationMetric : public Metric {
 public:
  enum class Kind { MeanIoU, PixelAccuracy };
  explicit SegmentationMetric(Kind kind, int64_t ignore_index = -100);
  void update(const Tensor& output, const Tensor& target) override;
  double value() const override;
  int64_t count() const override { return matrix_.total(); }
  void reset() override { matrix_ = ConfusionMatrix(0, {}, ignore_index_); }
  std::string name() const override { return kind_ == Kind::MeanIoU ? "miou" : "pixel_accuracy"; }
  bool higher_is_better() const override { return true; }
  // Class c's IoU; NaN when the class is in neither truth nor prediction.
  double iou(int64_t cls) const { return class_iou(matrix_, cls); }
  const ConfusionMatrix& matrix() const { return matrix_; }
  // IoU of class `cls` from any confusion matrix (e.g. Evaluation::confusion).
  static double class_iou(const ConfusionMatrix& matrix, int64_t cls);
  static double mean_iou(const ConfusionMatrix& matrix);

 private:
  Kind kind_;
  int64_t ignore_index_;
  ConfusionMatrix matrix_;
};

// "accuracy" (also "acc", "top1"), "topK" for K >= 1 (e.g. "top5"), "mse", "mae", "miou",
// "pixel_accuracy"; case-insensitive. Anything else is a DataError listing the valid names.
std::unique_ptr<Metric> make_metric(std::string_view name, int64_t ignore_index = -100);

}  // namespace onnxtrain
