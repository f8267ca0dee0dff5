#pragma once
// Options shared by the training verbs (train, artifacts) and the data options shared by
// train and eval, and their translation into the public API's structs.
#include <CLI/CLI.hpp>

#include <map>
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

// The training options' flags, generated from the field tables of
// include/onnxtrain/option_fields.h: flag values land in `values` (pre-set with the CLI's
// defaults, which differ from the library's in the optimizer: adam with lr 1e-3), optional
// fields in `optionals` (by flag). The few flags that are not one field each follow.
struct TrainingFlags {
  TrainingOptions values = cli_defaults();
  std::map<std::string, double, std::less<>> optionals;
  std::vector<double> betas;  // --betas B1,B2: beta1 and beta2 at once
  std::string scheduler = "constant";
  int64_t warmup = 0;

  static TrainingOptions cli_defaults();
};

void add_data_flags(CLI::App* cmd, DataArgs& a, bool training);
// The rows of kLossFields / kOptimizerFields and kTrainingFields (but the flags a command
// declares itself, e.g. --label, --seed), --betas, --scheduler and --warmup.
void add_loss_flags(CLI::App* cmd, TrainingFlags& a);
void add_optimizer_flags(CLI::App* cmd, TrainingFlags& a);

// The TrainingOptions the flags ask for. `base` (the options stored in a training model)
// supplies every value whose flag was not given on the command line.
TrainingOptions training_options(const CLI::App& cmd, const TrainingFlags& flags, std::optional<TrainingOptions> base);

// The model input's static size at `axis` ("32"), or 0 (named or unknown).
int static_dim(const ValueInfo& input, size_t axis);

// The one NCHW image input an image folder at `path` feeds: its name and size (from the
// model, or --image-size where the model leaves it open; channels default to 3).
struct ImageInput {
  std::string name;
  int channels = 0, height = 0, width = 0;
};
ImageInput image_input(const std::string& path, const Model& model, const DataArgs& data);

// Opens `path` as a dataset shaped for `model` (inputs by name, the label converted for the
// loss), checking that it fits before any training starts.
DatasetPtr open_dataset_for(const std::string& path, const Model& model, const DataArgs& data, const LossOptions& loss);

}  // namespace onnxtrain::cli
