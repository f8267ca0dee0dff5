#pragma once
// `onnxtrain train/eval --task segment`: semantic segmentation from an image folder and a
// mask folder (docs/segmentation.md). The train and eval commands call these where their
// classification path opens data, picks defaults and writes results.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <string>

#include "onnxtrain/onnxtrain.h"
#include "tools/cli/train_args.h"

namespace onnxtrain::cli {

// The --task choices; classify is the default.
inline const std::vector<std::string> kTasks = {"classify", "segment", "detect"};

struct SegmentArgs {
  std::string masks, val_masks;  // mask folders of --data and --val
  std::string palette;           // "voc" or a palette file; empty = class-id masks
  int64_t num_classes = 0;       // 0: the model output's dim 1
};
void add_segment_flags(CLI::App* cmd, SegmentArgs& a, bool training);
// Throws DataError when a segmentation flag is given without --task segment.
void check_segment_flags(const std::string& task, const SegmentArgs& a);

// Loss and metric defaults of the task where the command line left them: ignore_index 255,
// validation metric miou (best.onnx by it), pixel_accuracy (and miou) as extra columns.
void segment_defaults(const CLI::App& cmd, LossOptions& loss, FitOptions* fit);

struct SegmentData {
  DatasetPtr fitted;                   // shaped for the model (fit_to_model)
  SegmentationDatasetPtr raw;          // the same samples as files and masks
  Palette palette;                     // the masks', or colours to draw classes with
};
// Opens an image folder and its mask folder for `model` (validated before training).
SegmentData open_segment_data(const std::string& images, const std::string& masks, const SegmentArgs& args,
                              const DataArgs& data, const Model& model, const LossOptions& loss, bool augment);

// After a finished fit: per_class_iou.csv from the last validation, and val_pred_<i>.png
// (image | truth | prediction of best.onnx) for the first few validation images.
void write_segment_results(const FitResult& result, const SegmentData& val, const std::filesystem::path& run_dir,
                           const std::string& output, int threads);

}  // namespace onnxtrain::cli
