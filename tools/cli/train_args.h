#pragma once
// Options shared by the training verbs (train, artifacts) and the data options shared by
// train and eval, and their translation into the public API's structs.
#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <vector>

#include "onnxtrain/onnxtrain.h"

namespace onnxtrain::cli {

// How a data path becomes a Dataset: .npz/.npy arrays, a .csv table, or an image folder.
struct DataArgs {
  std::string label = "label";
  std::string label_column;          // CSV: column of the labels (default: `label`, else the last)
  int resize = 0;                    // images: shorter side before cropping (0 = crop size)
  std::vector<int> image_size;       // images: H[,W] when the model's input leaves them open
  bool augment = false;              // images: random crop and horizontal flip in training
  std::vector<float> mean, std;      // images: normalisation (default ImageNet / 0,1)
};

struct LossArgs {
  std::string kind = "cross_entropy", output, reduction = "mean", loss_model;
  std::vector<double> class_weights, pos_weight;
  double label_smoothing = 0, beta = 1.0, delta = 1.0;
  bool log_target = false;
};

struct OptimizerArgs {
  std::string kind = "adam";
  double lr = 1e-3, momentum = 0, weight_decay = 0, eps = 0;
  std::vector<double> betas;
  bool nesterov = false, no_decay_bias_norm = false;
  std::string scheduler = "constant";
  int64_t warmup = 0;
  double clip = 0;
  int accumulate = 1;
  std::string freeze, trainable, bn = "auto";
};

void add_data_flags(CLI::App* cmd, DataArgs& a, bool training);
void add_loss_flags(CLI::App* cmd, LossArgs& a);
void add_optimizer_flags(CLI::App* cmd, OptimizerArgs& a);

// The TrainingOptions the flags ask for. `base` (the options stored in a training model)
// supplies every value whose flag was not given on the command line.
TrainingOptions training_options(const CLI::App& cmd, const LossArgs& loss, const OptimizerArgs& opt,
                                 const std::string& label, std::optional<TrainingOptions> base);

// What the loss reads from the data: the label array (converted for the loss kind), or
// for a custom loss model the arrays its free inputs name.
LabelOptions label_options(const LossOptions& loss, const Model& model);

// Opens `path` as a dataset shaped for `model` (inputs by name, the label converted for the
// loss), checking that it fits before any training starts.
DatasetPtr open_dataset_for(const std::string& path, const Model& model, const DataArgs& data, const LabelOptions& label);

}  // namespace onnxtrain::cli
