#pragma once
// The `onnxtrain train` loop: batches from a DataLoader through a TrainingSession, with
// progress, per-step metrics, per-epoch validation, plots, best/last models, checkpoints,
// early stopping, Ctrl-C and divergence handling. Everything goes into one run directory.
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <string>

#include "onnxtrain/onnxtrain.h"

namespace onnxtrain::cli {

struct TrainerConfig {
  int64_t micro_batches = 0;      // batches to train in total (optimizer steps x accumulate)
  int64_t epochs = 0;             // epochs those batches span
  int patience = 0;               // stop after this many epochs without improvement (0: never)
  std::string metric;             // validation metric (accuracy, top5, mse, mae)
  std::string label = "label";
  std::string output;             // model output the metric reads
  std::filesystem::path run_dir;
  std::string metrics_csv;        // extra copy of metrics.csv (--metrics)
  std::string out;                // --out: the final model (inference form)
  std::string resume;             // checkpoint to continue from
  std::string model_path;         // recorded in checkpoints (for `onnxtrain export`)
  std::string command_line;       // for the resume hint
  bool quiet = false;
};

// Returns the process exit code (0, 130 after Ctrl-C, 1 after divergence).
int run_training(Model& model, TrainingSession& session, DataLoader& train, DatasetPtr val,
                 const TrainingOptions& options, const TrainerConfig& config);

// Loss and metrics of a model on a dataset with evaluation semantics.
struct Evaluation {
  double loss = std::numeric_limits<double>::quiet_NaN();
  std::map<std::string, double> metrics;  // metric name -> value
  std::optional<ConfusionMatrix> confusion;
};
// `forward` returns the batch's loss (NaN when there is none) and the output the metrics read.
using Forward = std::function<std::pair<double, Tensor>(const std::map<std::string, Tensor>& batch)>;
Evaluation evaluate(const Forward& forward, DatasetPtr data, const std::vector<std::string>& metrics,
                    const std::string& label, bool confusion);

}  // namespace onnxtrain::cli
