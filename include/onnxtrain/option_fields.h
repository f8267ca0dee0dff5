#pragma once
// One field table per options struct: each field that the JSON form
// (format_training_options) and the command line (`onnxtrain train` / `artifacts`) carry is
// described once, by a row with its JSON key, member, flag and description. The JSON code
// and the CLI flags are generated from these rows (config.toml follows from the flags), so a
// new option is the struct field plus its row.
//
// Not in the tables, because they are not one flag each: LossOptions::model_bytes (never
// stored), OptimizerOptions::groups (a list of structs; JSON only), TrainingOptions::schedule
// (JSON: its format_schedule string; CLI: --scheduler and --warmup), total_steps (JSON only;
// the CLI derives it from --epochs / --steps), threads (a per-process setting, see
// SessionOptions) and detect_anomaly (a debugging switch of one run, never stored).
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "onnxtrain/option_choices.h"
#include "onnxtrain/training.h"

namespace onnxtrain {

// Extra checks the command line applies (the library checks the values again).
enum class FlagCheck { None, Positive, ExistingFile };

template <typename Options>
struct OptionField {
  using Member = std::variant<std::string Options::*, double Options::*, bool Options::*, int Options::*,
                              int64_t Options::*, uint64_t Options::*, std::vector<double> Options::*,
                              std::optional<double> Options::*, std::vector<std::string> Options::*>;
  std::string_view key;          // JSON key (the field's name)
  Member member;
  std::string_view flag;         // command-line flag; config.toml key without the "--"
  std::string_view description;  // --help text
  const ChoiceList* choices = nullptr;
  FlagCheck check = FlagCheck::None;
  // The command declares this flag itself because it also sets something outside the
  // options (--label also names the data's label array, --seed also seeds shuffling); the
  // generated flags skip it, the options still read it when given.
  bool command_flag = false;
  // Added after the JSON format was first written: files without the key read its default
  // (every other key is required, so a damaged file is refused).
  bool added_later = false;
};

inline constexpr OptionField<LossOptions> kLossFields[] = {
    {"kind", &LossOptions::kind, "--loss", "Loss kind", &kLossKinds},
    {"output", &LossOptions::output, "--output", "Model output the loss reads (default: the first)"},
    {"target", &LossOptions::target, "--label", "Name of the label array / the target the loss reads (default: label)",
     nullptr, FlagCheck::None, true},
    {"reduction", &LossOptions::reduction, "--reduction", "How the loss combines its terms", &kReductions},
    {"class_weights", &LossOptions::class_weights, "--class-weights", "cross_entropy/nll: weight per class, e.g. 1,2,1"},
    {"label_smoothing", &LossOptions::label_smoothing, "--label-smoothing", "cross_entropy: label smoothing in [0, 1]"},
    {"beta", &LossOptions::beta, "--smooth-l1-beta", "smooth_l1: beta (0 = l1)"},
    {"delta", &LossOptions::delta, "--huber-delta", "huber: delta"},
    {"pos_weight", &LossOptions::pos_weight, "--pos-weight", "bce_with_logits: weight of positives (per class)"},
    {"log_target", &LossOptions::log_target, "--log-target", "kl_div: the targets are log-probabilities"},
    {"model_path", &LossOptions::model_path, "--loss-model",
     "Custom loss: an ONNX file whose inputs are model outputs (by name) and targets (read from the data), output a "
     "scalar",
     nullptr, FlagCheck::ExistingFile},
    {"ignore_index", &LossOptions::ignore_index, "--ignore-index",
     "cross_entropy/nll/dice: labels of this class count for nothing"},
    {"dice_smooth", &LossOptions::dice_smooth, "--dice-smooth", "dice/cross_entropy_dice: smoothing of each class's Dice",
     nullptr, FlagCheck::None, false, true},
    {"dice_weight", &LossOptions::dice_weight, "--dice-weight", "cross_entropy_dice: weight of the Dice term", nullptr,
     FlagCheck::None, false, true},
    {"outputs", &LossOptions::outputs, "--outputs",
     "yolov5/yolov8: the head outputs in level order, e.g. p3,p4,p5 (default: every output, by stride)", nullptr,
     FlagCheck::None, false, true},
};

// LossOptions::detection, stored as the "detection" object of the loss (added later: older
// JSON reads the defaults).
inline constexpr OptionField<DetectionLossOptions> kDetectionLossFields[] = {
    {"anchors", &DetectionLossOptions::anchors, "--anchors",
     "yolov5: anchors w,h,... in input pixels, level-major (default: the model's 'anchors' metadata)", nullptr,
     FlagCheck::None, false, true},
    {"anchor_t", &DetectionLossOptions::anchor_t, "--anchor-t", "yolov5: anchor match threshold on w/h ratios", nullptr,
     FlagCheck::None, false, true},
    {"balance", &DetectionLossOptions::balance, "--balance",
     "yolov5: objectness weight per level (default 4,1,0.4 for 3 levels)", nullptr, FlagCheck::None, false, true},
    {"box", &DetectionLossOptions::box, "--box-gain", "yolov5/yolov8: box loss gain (default 0.05 / 7.5)", nullptr,
     FlagCheck::None, false, true},
    {"obj", &DetectionLossOptions::obj, "--obj-gain", "yolov5: objectness loss gain", nullptr, FlagCheck::None, false,
     true},
    {"cls", &DetectionLossOptions::cls, "--cls-gain", "yolov5/yolov8: class loss gain", nullptr, FlagCheck::None, false,
     true},
    {"dfl", &DetectionLossOptions::dfl, "--dfl-gain", "yolov8: distribution focal loss gain", nullptr, FlagCheck::None,
     false, true},
    {"reg_max", &DetectionLossOptions::reg_max, "--reg-max", "yolov8: DFL bins per box side", nullptr,
     FlagCheck::Positive, false, true},
    {"topk", &DetectionLossOptions::topk, "--topk", "yolov8: candidates per target of the task-aligned assigner",
     nullptr, FlagCheck::Positive, false, true},
    {"alpha", &DetectionLossOptions::alpha, "--tal-alpha", "yolov8: assigner's exponent of the class score", nullptr,
     FlagCheck::None, false, true},
    {"beta", &DetectionLossOptions::beta, "--tal-beta", "yolov8: assigner's exponent of the IoU", nullptr,
     FlagCheck::None, false, true},
    {"label_smoothing", &DetectionLossOptions::label_smoothing, "--det-label-smoothing",
     "yolov5: class targets 1 - s/2 and s/2", nullptr, FlagCheck::None, false, true},
};

inline constexpr OptionField<OptimizerOptions> kOptimizerFields[] = {
    {"kind", &OptimizerOptions::kind, "--optimizer", "Optimizer", &kOptimizerKinds},
    {"lr", &OptimizerOptions::lr, "--lr", "Learning rate"},
    {"momentum", &OptimizerOptions::momentum, "--momentum", "Momentum (sgd, rmsprop)"},
    {"nesterov", &OptimizerOptions::nesterov, "--nesterov", "Nesterov momentum (sgd)"},
    {"weight_decay", &OptimizerOptions::weight_decay, "--weight-decay", "Weight decay (adamw: decoupled)"},
    {"no_decay_on_bias_and_norm", &OptimizerOptions::no_decay_on_bias_and_norm, "--no-decay-bias-norm",
     "No weight decay on biases and normalization scales (rank <= 1)"},
    {"beta1", &OptimizerOptions::beta1, "--beta1", "Adam/AdamW: beta1 (--betas sets both)"},
    {"beta2", &OptimizerOptions::beta2, "--beta2", "Adam/AdamW: beta2 (--betas sets both)"},
    {"eps", &OptimizerOptions::eps, "--eps", "Epsilon (default: the optimizer's)"},
    {"dampening", &OptimizerOptions::dampening, "--dampening", "Dampening of the momentum (sgd)"},
    {"amsgrad", &OptimizerOptions::amsgrad, "--amsgrad", "Adam/AdamW: the AMSGrad variant"},
    {"alpha", &OptimizerOptions::alpha, "--alpha", "RMSprop: smoothing constant"},
    {"centered", &OptimizerOptions::centered, "--centered", "RMSprop: normalise by the centered variance"},
    {"lr_decay", &OptimizerOptions::lr_decay, "--lr-decay", "Adagrad: learning-rate decay"},
    {"initial_accumulator_value", &OptimizerOptions::initial_accumulator_value, "--initial-accumulator-value",
     "Adagrad: initial value of the squared-gradient sums"},
};

inline constexpr OptionField<TrainingOptions> kTrainingFields[] = {
    {"clip_grad_norm", &TrainingOptions::clip_grad_norm, "--clip-grad-norm", "Clip the global gradient norm to this value"},
    {"accumulate", &TrainingOptions::accumulate, "--accumulate", "Optimizer step every N batches (gradient accumulation)",
     nullptr, FlagCheck::Positive},
    {"freeze", &TrainingOptions::freeze, "--freeze", "Do not train parameters whose name matches this regex"},
    {"trainable", &TrainingOptions::trainable, "--trainable", "Train only parameters whose name matches this regex"},
    {"batchnorm", &TrainingOptions::batchnorm, "--bn", "BatchNormalization mode", &kBatchNormModes},
    {"bn_running_var", &TrainingOptions::bn_running_var, "--bn-running-var",
     "Running-variance update of training-mode BatchNormalization", &kBnRunningVars},
    {"sync_batchnorm", &TrainingOptions::sync_batchnorm, "--sync-bn",
     "Under mpirun: BatchNorm statistics over every process's batch (SyncBatchNorm)", nullptr, FlagCheck::None, false,
     true},
    {"precision", &TrainingOptions::precision, "--precision", "Compute type of the matrix products", &kPrecisions,
     FlagCheck::None, false, true},
    {"conv_algorithm", &TrainingOptions::conv_algorithm, "--conv-algorithm", "How float32 convolution gradients compute",
     &kConvAlgorithms, FlagCheck::None, false, true},
    {"seed", &TrainingOptions::seed, "--seed", "Seed for shuffling, augmentation and dropout", nullptr, FlagCheck::None,
     true},
};

// Calls `f(row, value)` for every row of `fields` with a reference to its member in `options`.
template <typename Options, typename Fn>
void for_each_field(std::span<const OptionField<Options>> fields, Options& options, Fn&& f) {
  for (const auto& row : fields) std::visit([&](auto member) { f(row, options.*member); }, row.member);
}
template <typename Options, typename Fn>
void for_each_field(std::span<const OptionField<Options>> fields, const Options& options, Fn&& f) {
  for (const auto& row : fields) std::visit([&](auto member) { f(row, options.*member); }, row.member);
}

}  // namespace onnxtrain
