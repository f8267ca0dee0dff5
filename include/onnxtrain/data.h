#pragma once
// Training data: datasets (arrays, CSV, image folders), views of them (subset, split,
// dtype conversion for a model), a batching DataLoader with reproducible order and a
// background thread, and the checks that a dataset fits a model before training starts.
//
// Every failure is a DataError that names the file (and line, column, array or sample) and
// what was expected.
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "onnxtrain/model.h"
#include "onnxtrain/tensor.h"
#include "onnxtrain/training.h"

namespace onnxtrain {

// One array a dataset yields: every sample has `sample_shape`; a batch of B samples is
// [B, sample_shape...].
struct ArrayInfo {
  std::string name;
  DType dtype = DType::Undefined;
  Shape sample_shape;
};

// How a batch is read. Augmentations (random crop, random flip) draw their randomness from
// (seed, epoch, sample index) only, so a batch's content never depends on thread timing
// and a resumed run reproduces it. Without `augment` image datasets center-crop and never
// flip (evaluation); datasets without augmentations ignore all three fields.
struct BatchOptions {
  uint64_t seed = 0;
  int64_t epoch = 0;
  bool augment = false;
  std::vector<std::string> arrays;  // the arrays to read; empty = all
};

// A fixed number of samples. Reads are const and safe to call from several threads at once.
class Dataset {
 public:
  virtual ~Dataset() = default;

  virtual int64_t size() const = 0;
  // The schema, in a fixed order (sorted by name for arrays files).
  virtual const std::vector<ArrayInfo>& arrays() const = 0;
  // The file or directory the data came from (for messages).
  virtual const std::string& source() const = 0;
  // Class names in label order when the source defines them (image folders, CSV files
  // with text labels); empty otherwise.
  virtual std::vector<std::string> class_names() const { return {}; }

  // The samples `indices` (in [0, size()), repeats allowed) stacked along a new first dim.
  std::map<std::string, Tensor> batch(std::span<const int64_t> indices, const BatchOptions& options = {}) const;
  // The schema entry of `name`, or nullptr.
  const ArrayInfo* find(const std::string& name) const;

 protected:
  // `indices` are checked and `names` resolved (non-empty, all in the schema) by batch().
  virtual std::map<std::string, Tensor> read(std::span<const int64_t> indices, const std::vector<std::string>& names,
                                             const BatchOptions& options) const = 0;
};

using DatasetPtr = std::shared_ptr<const Dataset>;

// ---- Sources ------------------------------------------------------------------------------

// Arrays with samples along the first dimension (all arrays the same count). An .npz file
// yields its members by name; an .npy file yields one array named `npy_name` (default: the
// file's stem). The file is read into memory once.
DatasetPtr open_arrays(const std::string& path, const std::string& npy_name = "");
// The same from arrays in memory; `source` names them in messages.
DatasetPtr make_array_dataset(std::map<std::string, Tensor> arrays, const std::string& source);

struct CsvOptions {
  std::string input = "input";  // name of the features array: float32 [N, F]
  std::string label = "label";  // name of the label array ([N]); "" = no label column
  // The label column: a header name or a 0-based column number (negative counts from the
  // end). "" = the column named like `label` when the header has one, else the last column.
  std::string label_column;
  // Feature columns (names or numbers as above); empty = every column except the label.
  std::vector<std::string> features;
  char delimiter = 0;  // 0 = detect from the first line: ',', ';' or '\t' (',' when none)
  // Auto: the first row is a header when all its cells are non-numeric, or when one of
  // them is non-numeric above a numeric cell in the second row.
  enum class Header { Auto, Yes, No } header = Header::Auto;
  // Int64: class indices (classification). Integer cells are used as they are; when any
  // label cell is not a number the column holds class names, indexed in sorted order
  // (class_names()). Float: float32 targets (regression).
  DType label_dtype = DType::Int64;
};
// Numeric cells (quoted or not, surrounding spaces ignored); CRLF line ends, a UTF-8 byte
// order mark and blank lines are accepted. Quoted cells may contain the delimiter but not a
// line break.
DatasetPtr open_csv(const std::string& path, const CsvOptions& options = {});

struct ImageOptions {
  std::string input = "input";  // float32 [N, channels, height, width]
  std::string label = "label";  // int64 [N], the index of the class folder
  int channels = 3;             // 1 (luminance) or 3 (RGB); images are converted
  int height = 0, width = 0;    // the crop: required
  // The shorter side is resized to this (aspect ratio kept, bilinear with antialiasing as
  // torchvision's Resize(antialias=True)) before cropping. 0 = max(height, width), which
  // fits every image; smaller values are checked per image at open time.
  int resize_to = 0;
  enum class Crop { Center, Random } crop = Crop::Center;  // Random only when augmenting
  bool hflip = false;                                      // random flip, only when augmenting
  // value = (pixel / 255 - mean[c]) / std[c]. Empty = ImageNet's statistics for 3
  // channels, and mean 0, std 1 (values in [0, 1]) for 1 channel.
  std::vector<float> mean, std;
};
// ImageFolder layout: `dir/<class>/<image>`, classes sorted by name give the label indices,
// images sorted by name within a class. PNG, JPEG, BMP, GIF (first frame), TGA, PSD, PNM.
// Hidden entries and files with other extensions are skipped. Every image's header is read
// here, so an unreadable file fails before training; pixels are decoded per batch.
DatasetPtr open_image_folder(const std::string& dir, const ImageOptions& options);

// ---- Views --------------------------------------------------------------------------------

// The samples `indices` of `data` (repeats allowed), in that order. Views read through to
// `data` and augment a sample as `data` would (same sample index).
DatasetPtr subset(DatasetPtr data, std::vector<int64_t> indices);

struct Split {
  DatasetPtr train, val;
};
// A seeded random partition: round(size * val_fraction) samples for validation, the rest for
// training; both keep the original sample order. Both parts must be non-empty.
Split split(DatasetPtr data, double val_fraction, uint64_t seed);

// ---- Fitting a model ----------------------------------------------------------------------

// What a loss reads from a dataset, derived from its LossOptions by label_view (the data
// checks below take the LossOptions and derive it the same way). Class-index losses
// (cross_entropy, nll) want integer labels in [0, classes) or equal to ignore_index, shaped
// like the output without dim 1; the other built-in losses want float labels shaped like
// the output.
struct LabelView {
  std::string name;            // the label array (LossOptions::target); "" = none
  std::string loss;            // the loss kind, for messages
  bool class_indices = false;  // cross_entropy, nll: int64 class indices
  std::string output;          // the model output the loss reads; "" = the first
  int64_t ignore_index = -100;
  // Further arrays the loss reads, passed as they are: a custom loss model's inputs that
  // are neither model inputs nor model outputs (its targets).
  std::vector<std::string> extra;
};
// Losses without a label array (output, custom) and an empty target give name "". An
// unknown kind throws DataError listing kLossKinds; a custom loss model is loaded here.
LabelView label_view(const LossOptions& loss, const Model& model);

// Conversions: an array feeds a model input (or a target) when the dtypes are equal or the
// conversion keeps every value: int8/16/32, uint8/16/32 -> int64; int8/16, uint8/16 ->
// int32, float, double; float -> double. One lossy conversion is accepted because numpy
// writes float64 by default: float64 -> float32 (rounded to nearest).
bool converts_to(DType from, DType to);

// Every model input is an array of the dataset, with a convertible dtype and a sample shape
// matching the input's static dims (the batch dim excluded, named dims free).
void check_inputs(const Dataset& data, const Model& model);
// The label array exists with a dtype and sample shape that fit the loss on its output;
// class-index labels are in range (classes from the output's dim 1 when static).
void check_labels(const Dataset& data, const Model& model, const LossOptions& loss);
// Both checks, then a view that yields exactly the model's inputs, the label and the
// loss's extra arrays, converted to the dtypes the session takes (the input's dtype; int64
// or the output's dtype for labels).
DatasetPtr fit_to_model(DatasetPtr data, const Model& model, const LossOptions& loss);

// ---- Batching -----------------------------------------------------------------------------

struct LoaderOptions {
  int64_t batch_size = 32;
  // A new permutation per epoch, a pure function of (seed, epoch). Without shuffling the
  // samples form a cyclic stream in dataset order: every batch is full and batch k of the
  // run (epoch * batches_per_epoch() + index) holds samples kB ... kB+B-1 modulo size().
  bool shuffle = true;
  // Shuffled epochs end with a smaller batch unless this drops it; without shuffling it
  // sets batches_per_epoch() to floor(size / B) instead of ceil.
  bool drop_last = false;
  uint64_t seed = 0;
  bool augment = true;              // passed to the dataset (see BatchOptions)
  std::vector<std::string> arrays;  // the arrays to read; empty = all
  // Reads the next batch on a background thread while the caller trains on this one.
  bool prefetch = true;
  // Data-parallel training (DistributedSampler semantics): this process is rank `shard`
  // of `shards`. Batches stay global — batch_size samples in the order above, the same on
  // every rank — and next() returns this rank's contiguous slice of each: samples
  // [r*m/N, (r+1)*m/N) of a batch of m (sizes differ by at most one). A last shuffled batch
  // with fewer samples than ranks is dropped, so every rank gets at least one.
  int shard = 0, shards = 1;
};

struct Batch {
  int64_t epoch = 0, index = 0;   // position of this batch
  std::vector<int64_t> samples;   // dataset indices, in batch order
  std::map<std::string, Tensor> arrays;
};

class DataLoader {
 public:
  DataLoader(DatasetPtr data, LoaderOptions options);
  ~DataLoader();  // stops and joins the background thread, even mid-epoch
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t batches_per_epoch() const;
  // The dataset indices of batch `index` of `epoch` (a pure function of the options).
  std::vector<int64_t> samples(int64_t epoch, int64_t index) const;

  // The batch at the current position; the position then moves on (into the next epoch
  // after the last batch). An error while reading (also on the background thread) is thrown
  // here; the position stays, so the next call retries the same batch.
  Batch next();
  // Moves to batch `index` of `epoch`: a resumed run sees the batches it would have seen.
  void seek(int64_t epoch, int64_t index = 0);
  int64_t epoch() const;  // position of the batch next() returns
  int64_t index() const;

  const Dataset& dataset() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace onnxtrain
