#pragma once
// Training: a loss attached to a model output, gradients of every trainable parameter from
// the backward graph that onnxtrain's autodiff pass builds.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "onnxtrain/model.h"
#include "onnxtrain/option_choices.h"
#include "onnxtrain/profile.h"
#include "onnxtrain/schedule.h"

namespace onnxtrain {

class Distributed;

// The loss that training minimises, attached to a model output. The built-in kinds have
// the semantics of the torch.nn.functional function of the same name. Their targets are a
// new graph input fed by name (`target`) next to the model inputs: int64 class indices
// shaped like the output without its class axis 1 ([N, d1, ...]) for cross_entropy and
// nll; the output's dtype and shape for the others. Invalid values, and options moved off
// their defaults for a kind that does not use them (e.g. label_smoothing with nll), throw
// DataError naming the option (an unknown kind: ModelError).
// The detection losses "yolov5" and "yolov8" (docs/detection.md). Each field applies to the
// kinds named; check_option_use refuses a field moved off its default for another kind.
struct DetectionLossOptions {
  // yolov5: anchors (w, h) in input pixels, L*A*2 values, level-major (P3 first). Empty: the
  // model's metadata_props "anchors" (a JSON list, flat or one list per level).
  std::vector<double> anchors;
  double anchor_t = 4.0;         // yolov5: a target matches an anchor when its w/h ratios are below this
  std::vector<double> balance;   // yolov5: objectness weight per level; empty: [4, 1, 0.4] for 3 levels
  std::optional<double> box;     // box gain; unset: 0.05 (yolov5), 7.5 (yolov8)
  double obj = 1.0;              // yolov5: objectness gain
  double cls = 0.5;              // class gain (both)
  double dfl = 1.5;              // yolov8: distribution focal loss gain
  int64_t reg_max = 16;          // yolov8: DFL bins per box side
  int64_t topk = 10;             // yolov8: task-aligned assigner's candidates per target
  double alpha = 0.5, beta = 6.0;  // yolov8: assigner's score^alpha * iou^beta
  double label_smoothing = 0;    // yolov5: class targets 1 - s/2 and s/2 (Ultralytics' smooth_BCE)

  double box_gain(const std::string& kind) const { return box.value_or(kind == "yolov8" ? 7.5 : 0.05); }
};

struct LossOptions {
  // One of kLossKinds (option_choices.h, with a line on each). custom: each input of the
  // loss model named like a model output or model input reads that value, every other
  // input becomes a new graph input fed by its own name (targets); its single output must
  // be a float scalar. It keeps its own opset; its initializers are constants, never trained.
  std::string kind = "cross_entropy";
  // The model output the loss reads (kind output: the loss itself); default: the first.
  // Not used by custom, which connects by input names.
  std::string output;
  std::string target = "label";    // feed name of the targets (built-in kinds with a target)
  // Built-in kinds: one of kReductions (batchmean: kl_div only).
  std::string reduction = "mean";
  int64_t ignore_index = -100;     // cross_entropy, nll: targets of this class count for nothing
  // cross_entropy, nll: one weight per class (length C, empty = all 1); torch's `weight`.
  std::vector<double> class_weights;
  // cross_entropy: in [0, 1]; the target becomes (1 - s) one-hot + s / C (weighted like
  // the classes when class_weights is set; ignored targets still count for nothing).
  double label_smoothing = 0;
  double beta = 1.0;               // smooth_l1: >= 0
  double delta = 1.0;              // huber: > 0
  // bce_with_logits: weight of the positive term per class, broadcast over the last axis
  // of the output (length = that axis's size, or 1); torch's `pos_weight`. Empty = all 1.
  std::vector<double> pos_weight;
  bool log_target = false;         // kl_div: the target holds log-probabilities
  // dice, cross_entropy_dice: added to the numerator and denominator of each class's Dice
  // (> 0 keeps a class absent from a batch's targets and predictions finite, near 0 loss).
  double dice_smooth = 1.0;
  double dice_weight = 1.0;        // cross_entropy_dice: weight of the Dice term (>= 0)
  // custom: the loss model as a file, or its serialized ModelProto bytes (exactly one).
  std::string model_path;
  std::string model_bytes;
  // yolov5, yolov8: the head outputs in level order; default: every model output, by stride
  // ascending (H descending). Their target is `target` ("boxes" unless set): the
  // DetectionDataset's float32 [N, B, 6] rows (valid, class, cx, cy, w, h).
  std::vector<std::string> outputs;
  DetectionLossOptions detection;
};

// Parameters whose name matches `pattern` (ECMAScript regex, searched) get their own
// learning rate and/or weight decay, like a torch.optim param group. The first matching
// group wins. A group's lr follows the schedule in proportion: lr_group(t) =
// schedule(t) * group.lr / OptimizerOptions::lr.
struct ParamGroup {
  std::string pattern;
  std::optional<double> lr;
  std::optional<double> weight_decay;
};

// torch.optim's optimizers with torch's formulas and defaults (an unset eps takes the
// optimizer's default: 1e-8, Adagrad 1e-10).
struct OptimizerOptions {
  std::string kind = "sgd";  // one of kOptimizerKinds
  double lr = 0.01;
  double momentum = 0, dampening = 0;  // sgd, rmsprop (momentum)
  bool nesterov = false;               // sgd
  double weight_decay = 0;             // all (adamw: decoupled)
  double beta1 = 0.9, beta2 = 0.999;   // adam, adamw
  bool amsgrad = false;                // adam, adamw
  std::optional<double> eps;
  double alpha = 0.99;                 // rmsprop
  bool centered = false;               // rmsprop
  double lr_decay = 0, initial_accumulator_value = 0;  // adagrad
  std::vector<ParamGroup> groups;
  // The usual convention: no weight decay on parameters of rank <= 1 (biases and the
  // scales/shifts of normalization layers), unless a group sets it explicitly.
  bool no_decay_on_bias_and_norm = false;
};

struct TrainingOptions {
  LossOptions loss;
  OptimizerOptions optimizer;
  // Learning rate per optimizer step from optimizer.lr; total_steps is what cosine, linear
  // and onecycle anneal over.
  ScheduleOptions schedule;
  int64_t total_steps = 0;
  // > 0: gradients are scaled so their global 2-norm is at most this (torch's clip_grad_norm_).
  double clip_grad_norm = 0;
  // BatchNormalization in training mode updates its running statistics, which each step
  // writes back to the model's initializers, as one of kBnRunningVars says.
  std::string bn_running_var = "onnx";
  // BatchNormalization during training: one of kBatchNormModes ("auto": as exported).
  std::string batchnorm = "auto";
  // Distributed training (set_distributed): training-mode BatchNormalization takes its
  // batch statistics over every process's slice of the batch (PyTorch's SyncBatchNorm),
  // forward and backward, instead of each process's own (the default, like DDP). Exact
  // when every process has the same number of samples.
  bool sync_batchnorm = false;
  // Gradient accumulation: train_step applies the optimizer every `accumulate` calls, to
  // the gradients of those micro-batches combined as one batch would give them (mean
  // reduction: weighted by micro-batch size; sum: added).
  int accumulate = 1;
  // Parameters are the float initializers on a differentiable path to the loss (BatchNorm
  // running statistics, integer initializers and shape constants never are). These
  // ECMAScript regexes narrow the set: a name must match `trainable` (when set) and must
  // not match `freeze` (when set).
  std::string trainable;
  std::string freeze;
  // Compute type of the matrix products, one of kPrecisions. "bf16" works like
  // torch.autocast(cpu, bfloat16) on Conv/ConvTranspose/MatMul/Gemm and their gradients:
  // oneDNN reads bf16 copies of their inputs and accumulates and writes float32. Parameters,
  // optimizer state, the loss and every other op stay float32, so exported models and
  // checkpoints are float32 either way. Needs a CPU with AVX512-BF16 or AMX.
  std::string precision = "fp32";
  // How float32 convolution gradients compute, one of kConvAlgorithms. "auto" runs the
  // backward of 3x3 stride-1 convolutions on oneDNN's Winograd kernel where it is faster
  // (about 2x on resnet18's first stage) and as close to float64 as PyTorch's float32
  // (docs/numerics.md); "direct" keeps PyTorch's algorithm everywhere. The forward is direct
  // either way.
  std::string conv_algorithm = "auto";
  int threads = 0;  // see SessionOptions::threads: the session applies it, process-wide
  uint64_t seed = 0;
  // Anomaly mode, for finding where a NaN starts (like torch.autograd.detect_anomaly): each
  // node's float outputs are checked as the step runs and the first node producing NaN or
  // Inf is named in a NonFiniteLoss. Costs a scan of every output; off by default.
  bool detect_anomaly = false;
};

struct StepResult {
  double loss = 0;        // of this call's batch
  bool updated = true;    // the optimizer ran (false while accumulating micro-batches)
  double lr = 0;          // the learning rate this step used
  int64_t step = 0;       // 1-based number of the optimizer step just taken
  double grad_norm = -1;  // global gradient 2-norm before clipping (when clipping is on)
  // The loss's named parts, as weighted in the loss: ("box", "obj", "cls") for yolov5,
  // ("box", "cls", "dfl") for yolov8; empty for other kinds. Of this call's batch.
  std::vector<std::pair<std::string, double>> loss_parts;
};

struct EvalResult {
  double loss = 0;
  std::vector<std::pair<std::string, double>> loss_parts;  // as StepResult::loss_parts
  std::map<std::string, Tensor> outputs;  // the requested model outputs
};

struct StepGradients {
  double loss = 0;
  std::map<std::string, Tensor> gradients;  // parameter name -> gradient (same shape)
};
// One session per thread; sessions on different threads (each its own Model) run at once.
class TrainingSession {
 public:
  // The session trains `model`'s initializers in place; the model must outlive it.
  TrainingSession(Model& model, TrainingOptions options = {});
  ~TrainingSession();
  TrainingSession(TrainingSession&&) noexcept;

  // Forward and backward on one batch (model inputs and the loss target by name).
  StepGradients compute_gradients(const std::map<std::string, Tensor>& feeds);
  // One training step: forward, backward, optional clipping, then the optimizer updates
  // the model's parameters in place (Model::save then writes the trained values).
  // With TrainingOptions::accumulate = k the optimizer runs on every k-th call.
  StepResult train_step(const std::map<std::string, Tensor>& feeds);
  // The names train_step feeds: the model's inputs and the loss's targets.
  std::vector<std::string> input_names() const;
  // The names of StepResult::loss_parts ("box", "obj", "cls" for yolov5; empty for kinds
  // without parts).
  std::vector<std::string> loss_part_names() const;
  // The two halves of train_step, for custom loops: forward + backward on one batch, adding
  // its gradients to the accumulated ones (returns the batch's loss) ...
  double accumulate_gradients(const std::map<std::string, Tensor>& feeds);
  // ... then clipping, the schedule and the optimizer update on the accumulated gradients,
  // which are then cleared. Throws when nothing was accumulated.
  StepResult optimizer_step();
  // Discards accumulated gradients (e.g. after a skipped batch).
  void lazy_reset_grad();
  // Number of batches accumulated since the last optimizer step.
  int pending_micro_batches() const;
  // Loss and outputs with evaluation semantics (BatchNormalization on running statistics,
  // Dropout off), no gradients. `outputs` empty: all model outputs.
  EvalResult eval_step(const std::map<std::string, Tensor>& feeds, const std::vector<std::string>& outputs = {});
  int64_t step() const;
  // Data-parallel training across the ranks of `world` (distributed.h), which must outlive
  // the session. A collective call: every rank makes it, and then the same sequence of
  // train_step / optimizer_step calls. Now, every rank takes rank 0's parameters, buffers,
  // optimizer state and step (broadcast). From then on each optimizer step uses the
  // gradients of all ranks' batches combined as one batch of all their samples would give
  // them (mean reduction: weighted by batch size; sum: added), so N ranks with batch b
  // train like one process with batch N*b. They are summed in place with non-blocking
  // allreduces in ~25 MB buckets that start while the backward pass still runs
  // (train_step without accumulation), or once per optimizer step (accumulation,
  // optimizer_step). A non-finite loss on any rank stops every rank (NonFiniteLoss).
  // compute_gradients and eval_step stay local. Float and double parameters only.
  void set_distributed(Distributed& world);
  // The learning rate of the next optimizer step (base group). The schedule is a function
  // of step(): each optimizer step also steps the schedule.
  double current_lr() const;
  // From the next optimizer step on, a constant learning rate `lr` (> 0) replaces the
  // schedule; parameter groups keep their ratio to the base lr.
  void set_lr(double lr);
  // A new schedule from the base lr, over `total_steps` (see schedule.h), evaluated at
  // step() from the next optimizer step on.
  void set_schedule(const ScheduleOptions& schedule, int64_t total_steps);

  // Parameters and buffers by name: any float initializer of the model (trainable(),
  // frozen ones, BatchNorm running statistics). Unknown names throw DataError.
  // A copy of the current value.
  Tensor parameter(const std::string& name) const;
  // Copies `value` in (same dtype and shape, else ShapeError); optimizer state is kept.
  void set_parameter(const std::string& name, const Tensor& value);
  // The live storage, no copy: it sees every update and writes to it change the model.
  // Valid while the session lives; do not touch it while a step runs.
  Tensor parameter_view(const std::string& name);
  // All trainable parameters in trainable() order, flattened into one contiguous 1-D
  // buffer of trainable_elements() values of their dtype (all must share one).
  Tensor copy_parameters_to_buffer() const;
  // The same into caller memory (e.g. a Tensor::view), checked for dtype and size.
  void copy_parameters_to_buffer(Tensor& buffer) const;
  // The reverse: the buffer's values become the parameters (optimizer state is kept).
  void copy_buffer_to_parameters(const Tensor& buffer);

  // A checkpoint holds everything needed to continue bit-identically: parameters,
  // buffers (e.g. BatchNorm running statistics), optimizer state, the step count and the
  // random generator state. It is an .npz written atomically (temporary file, fsync,
  // rename): a failed or interrupted save leaves the previous checkpoint intact.
  // Loading needs a session made from the same model with the same optimizer settings.
  // `notes` are strings of the caller's (e.g. a training loop's position) stored with it
  // and returned by load_checkpoint.
  void save_checkpoint(const std::string& path, const std::map<std::string, std::string>& notes = {}) const;
  std::map<std::string, std::string> load_checkpoint(const std::string& path);

  // Writes the training graph (model + loss + backward, our ai.onnxtrain ops included) as
  // an ONNX file: its outputs are the model's, the loss and "<parameter>_grad" for each
  // trainable parameter. Loading it with Model::load and running it gives the same values.
  void export_training_graph(const std::string& path) const;
  // Writes the trained model as an inference model: the original ModelProto with the
  // trained parameters and running statistics, training-form BatchNormalization and
  // Dropout turned into their inference form; everything else unchanged.
  // `outputs` non-empty: these values (model outputs or any named value of the model)
  // become the graph outputs, and what they do not need is dropped.
  void export_inference_model(const std::string& path, const std::vector<std::string>& outputs = {}) const;
  // Writes the trained model with its training algorithm, as standard ONNX: the model as
  // Model::save writes it (training-form nodes stay, so training continues as it ran),
  // whose initializers also hold the optimizer state
  // ("<parameter>.<state>") and the step count ("onnxtrain.step"), plus a
  // TrainingInfoProto whose algorithm is the session's own training graph: the loss (input
  // "learning_rate" and the training inputs), the gradients, clipping (ai.onnxtrain
  // ClipGradNorm) and the optimizer update, with update_binding for parameters, optimizer
  // state, step and BatchNorm running statistics (with bn_running_var's update).
  // The options are stored in metadata "onnxtrain.training". Loading the file and
  // creating a TrainingSession from it continues training where this one stopped
  // (bit-identically for the same options, the random generator state included).
  // Gradient accumulation is the caller's loop (several backward runs, one update).
  void export_training_model(const std::string& path) const;
  // Writes the evaluation graph: the model with evaluation semantics plus the loss as an
  // extra output (inputs: the model's and the loss target).
  void export_eval_model(const std::string& path) const;
  // The name of the loss value in the training graph.
  const std::string& loss_name() const;

  const std::vector<std::string>& trainable() const;
  int64_t trainable_elements() const;
  // Number of nodes the autodiff pass added (backward + loss).
  size_t backward_nodes() const;
  // Peak bytes of activations and gradients held at once during the runs so far.
  size_t peak_activation_bytes() const;
  // Per-node timing of the training runs (profile.h); turning it on starts a new record.
  void set_profiling(bool on);
  ProfileSummary profile() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The options a model written by TrainingSession::export_training_model was trained with
// (nothing for other models).
std::optional<TrainingOptions> training_options_of(const Model& model);
// The optimizer steps such a model had taken (its "onnxtrain.step"; nothing for others).
std::optional<int64_t> training_step_of(const Model& model);

// TrainingOptions as JSON and back (every field but threads, see option_fields.h; parse
// throws DataError naming the field).
std::string format_training_options(const TrainingOptions& options);
TrainingOptions parse_training_options(const std::string& json);

}  // namespace onnxtrain
