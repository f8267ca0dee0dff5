#pragma once
// The allowed values of the string-valued options (loss kind, optimizer kind, BatchNorm
// modes, reduction), each declared once here with a one-line description. Validation, the
// JSON form, the CLI's allowed values and its --help text all read these lists.
//
// The option fields stay std::string (not enums) so code that sets them keeps compiling and
// the strings are what JSON, config.toml and the command line carry anyway; these tables
// make a misspelt value an error that lists the allowed ones.
#include <algorithm>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "onnxtrain/errors.h"

namespace onnxtrain {

struct Choice {
  std::string_view name;
  std::string_view description;
};

class ChoiceList {
 public:
  constexpr ChoiceList(std::string_view option, std::span<const Choice> choices) : option_(option), choices_(choices) {}

  std::string_view option() const { return option_; }  // as errors name it, e.g. "batchnorm"
  std::span<const Choice> choices() const { return choices_; }
  bool contains(std::string_view value) const {
    return std::any_of(choices_.begin(), choices_.end(), [&](const Choice& c) { return c.name == value; });
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const Choice& c : choices_) out.emplace_back(c.name);
    return out;
  }
  // The names joined by `separator`, e.g. "onnx, pytorch".
  std::string joined(std::string_view separator = ", ") const {
    std::string out;
    for (const Choice& c : choices_) out += std::string(out.empty() ? "" : separator) + std::string(c.name);
    return out;
  }
  // Throws DataError "option '<option>' is 'x'; allowed: a, b, c" unless `value` is allowed.
  void check(const std::string& value) const {
    if (!contains(value)) throw DataError("option '" + std::string(option_) + "' is '" + value + "'; allowed: " + joined());
  }

 private:
  std::string_view option_;
  std::span<const Choice> choices_;
};

// LossOptions::kind. The built-in kinds have the semantics of the torch.nn.functional
// function of the same name.
inline constexpr Choice kLossKindChoices[] = {
    {"cross_entropy", "logits [N, C, d1, ...] -> log_softmax over C, then nll"},
    {"nll", "the output holds log-probabilities [N, C, d1, ...]"},
    {"mse", "(output - target)^2"},
    {"l1", "|output - target|"},
    {"smooth_l1", "0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (beta 0: l1)"},
    {"huber", "0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta)"},
    {"bce_with_logits", "binary cross-entropy on logits (multi-label), overflow-free form"},
    {"kl_div", "the output holds log-probabilities; the target probabilities (log-probabilities with log_target); "
               "terms with target 0 are 0"},
    {"dice", "logits [N, C, d1, ...] -> softmax over C; 1 - soft Dice per class over the batch, averaged over the "
             "classes (class_weights: weighted mean); dice_smooth added to both sides; ignored pixels left out"},
    {"cross_entropy_dice", "cross_entropy + dice_weight * dice (segmentation)"},
    {"output", "the model output already is the loss (a float scalar or a single element); no target"},
    {"custom", "the loss is an ONNX model (model_path or model_bytes) reading model values and targets by name"},
    {"yolov5", "YOLOv5 anchor-based detection loss (CIoU box, BCE objectness and class) on the head outputs; "
               "target: the boxes [N, B, 6]"},
    {"yolov8", "YOLOv8 anchor-free detection loss (task-aligned assigner, CIoU, BCE class, DFL) on the head "
               "outputs; target: the boxes [N, B, 6]"},
};
inline constexpr ChoiceList kLossKinds{"loss", kLossKindChoices};
// The kinds whose targets are integer class indices [N, d1, ...] (with ignore_index).
inline bool class_index_loss(std::string_view kind) {
  return kind == "cross_entropy" || kind == "nll" || kind == "dice" || kind == "cross_entropy_dice";
}

// LossOptions::reduction (batchmean: kl_div only).
inline constexpr Choice kReductionChoices[] = {
    {"mean", "the mean over every element (cross_entropy / nll: the weighted mean over non-ignored targets)"},
    {"sum", "the sum over every element"},
    {"batchmean", "kl_div only: the sum divided by the batch size N"},
};
inline constexpr ChoiceList kReductions{"reduction", kReductionChoices};

// OptimizerOptions::kind: torch.optim's optimizers.
inline constexpr Choice kOptimizerKindChoices[] = {
    {"sgd", "SGD (momentum, dampening, nesterov)"},
    {"adam", "Adam (betas, amsgrad)"},
    {"adamw", "AdamW: Adam with decoupled weight decay"},
    {"adagrad", "Adagrad (lr_decay, initial_accumulator_value)"},
    {"rmsprop", "RMSprop (alpha, momentum, centered)"},
};
inline constexpr ChoiceList kOptimizerKinds{"optimizer", kOptimizerKindChoices};

// TrainingOptions::batchnorm.
inline constexpr Choice kBatchNormChoices[] = {
    {"auto", "each node as exported (training-form nodes use batch statistics, inference-form nodes the running ones)"},
    {"train", "every BatchNormalization in training mode (batch statistics, running statistics updated)"},
    {"frozen", "running statistics, never updated (PyTorch's model.eval() for BatchNorm; scale and bias still train)"},
};
inline constexpr ChoiceList kBatchNormModes{"batchnorm", kBatchNormChoices};

// TrainingOptions::bn_running_var: how training-mode BatchNormalization updates its running
// variance.
inline constexpr Choice kBnRunningVarChoices[] = {
    {"onnx", "the ONNX spec's update with the population batch variance"},
    {"pytorch", "torch's update with the unbiased batch variance (N/(N-1))"},
};
inline constexpr ChoiceList kBnRunningVars{"bn_running_var", kBnRunningVarChoices};

// TrainingOptions::precision: the compute type of the matrix products.
inline constexpr Choice kPrecisionChoices[] = {
    {"fp32", "float32 everywhere"},
    {"bf16", "Conv/ConvTranspose/MatMul/Gemm and their gradients read bfloat16 inputs, accumulate in float32; "
             "weights, optimizer state and loss stay float32 (needs AVX512-BF16 or AMX)"},
};
inline constexpr ChoiceList kPrecisions{"precision", kPrecisionChoices};

// TrainingOptions::conv_algorithm: how float32 convolution gradients compute.
inline constexpr Choice kConvAlgorithmChoices[] = {
    {"auto", "the gradients of 3x3 stride-1 convolutions with enough channels and output tiles on Winograd "
             "F(4x4,3x3) (about 2x faster there), everything else on oneDNN's direct algorithm"},
    {"direct", "oneDNN's direct algorithm everywhere, as PyTorch computes"},
};
inline constexpr ChoiceList kConvAlgorithms{"conv_algorithm", kConvAlgorithmChoices};

}  // namespace onnxtrain
