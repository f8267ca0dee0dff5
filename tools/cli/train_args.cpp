#include "tools/cli/train_args.h"

#include <filesystem>
#include <set>

namespace onnxtrain::cli {

namespace fs = std::filesystem;

void add_data_flags(CLI::App* cmd, DataArgs& a, bool training) {
  cmd->add_option("--label", a.label, "Name of the label array / the target the loss reads (default: label)");
  cmd->add_option("--label-column", a.label_column, "CSV: column holding the labels (name or 0-based index; default: 'label', else the last)");
  cmd->add_option("--image-size", a.image_size, "Images: crop size H[,W] for models whose input size is not fixed")
      ->delimiter(',')->expected(1, 2);
  cmd->add_option("--resize", a.resize, "Images: resize the shorter side to this before cropping (default: the crop size)");
  cmd->add_option("--mean", a.mean, "Images: per-channel mean for normalisation (default: ImageNet for RGB, 0 for gray)")->delimiter(',');
  cmd->add_option("--std", a.std, "Images: per-channel std for normalisation (default: ImageNet for RGB, 1 for gray)")->delimiter(',');
  if (training) cmd->add_flag("--augment", a.augment, "Images: random crop and horizontal flip while training");
}

void add_loss_flags(CLI::App* cmd, LossArgs& a) {
  cmd->add_option("--loss", a.kind,
                  "cross_entropy | nll | mse | l1 | smooth_l1 | huber | bce_with_logits | kl_div | output (the model "
                  "output is the loss)");
  cmd->add_option("--output", a.output, "Model output the loss reads (default: the first)");
  cmd->add_option("--reduction", a.reduction, "mean | sum (kl_div also batchmean)");
  cmd->add_option("--class-weights", a.class_weights, "cross_entropy/nll: weight per class, e.g. 1,2,1")->delimiter(',');
  cmd->add_option("--label-smoothing", a.label_smoothing, "cross_entropy: label smoothing in [0, 1]");
  cmd->add_option("--smooth-l1-beta", a.beta, "smooth_l1: beta (0 = l1)");
  cmd->add_option("--huber-delta", a.delta, "huber: delta");
  cmd->add_option("--pos-weight", a.pos_weight, "bce_with_logits: weight of positives (per class)")->delimiter(',');
  cmd->add_flag("--log-target", a.log_target, "kl_div: the targets are log-probabilities");
  cmd->add_option("--loss-model", a.loss_model,
                  "Custom loss: an ONNX file whose inputs are model outputs (by name) and targets (read from the data), "
                  "output a scalar")->check(CLI::ExistingFile);
}

void add_optimizer_flags(CLI::App* cmd, OptimizerArgs& a) {
  cmd->add_option("--optimizer", a.kind, "sgd | momentum | adam | adamw | adagrad | rmsprop (momentum = sgd with momentum 0.9)");
  cmd->add_option("--lr", a.lr, "Learning rate");
  cmd->add_option("--momentum", a.momentum, "Momentum (sgd, rmsprop)");
  cmd->add_flag("--nesterov", a.nesterov, "Nesterov momentum (sgd)");
  cmd->add_option("--weight-decay", a.weight_decay, "Weight decay (adamw: decoupled)");
  cmd->add_flag("--no-decay-bias-norm", a.no_decay_bias_norm, "No weight decay on biases and normalization scales (rank <= 1)");
  cmd->add_option("--betas", a.betas, "Adam/AdamW betas, e.g. 0.9,0.999")->delimiter(',')->expected(2);
  cmd->add_option("--eps", a.eps, "Epsilon (default: the optimizer's)");
  cmd->add_option("--scheduler", a.scheduler,
                  "constant | step:N:G | multistep:M1,M2:G | exponential:G | cosine[:MIN] | linear[:F] | onecycle[:MAX]");
  cmd->add_option("--warmup", a.warmup, "Linear warmup steps before the schedule");
  cmd->add_option("--clip-grad-norm", a.clip, "Clip the global gradient norm to this value");
  cmd->add_option("--accumulate", a.accumulate, "Optimizer step every N batches (gradient accumulation)")->check(CLI::PositiveNumber);
  cmd->add_option("--freeze", a.freeze, "Do not train parameters whose name matches this regex");
  cmd->add_option("--trainable", a.trainable, "Train only parameters whose name matches this regex");
  cmd->add_option("--bn", a.bn, "BatchNormalization: auto (as exported) | train (batch statistics) | frozen (running statistics)")
      ->check(CLI::IsMember({"auto", "train", "frozen"}));
}

TrainingOptions training_options(const CLI::App& cmd, const LossArgs& loss, const OptimizerArgs& opt,
                                 const std::string& label, std::optional<TrainingOptions> base) {
  const bool from_model = base.has_value();
  TrainingOptions o = base.value_or(TrainingOptions{});
  // A flag wins when given; otherwise a training model's stored value, else the default.
  auto given = [&](const char* flag) { return !from_model || cmd.count(flag) > 0; };
  if (given("--loss")) o.loss.kind = loss.kind;
  if (given("--output")) o.loss.output = loss.output;
  if (given("--reduction")) o.loss.reduction = loss.reduction;
  if (given("--label")) o.loss.target = label;
  if (given("--class-weights")) o.loss.class_weights = loss.class_weights;
  if (given("--label-smoothing")) o.loss.label_smoothing = loss.label_smoothing;
  if (given("--smooth-l1-beta")) o.loss.beta = loss.beta;
  if (given("--huber-delta")) o.loss.delta = loss.delta;
  if (given("--pos-weight")) o.loss.pos_weight = loss.pos_weight;
  if (given("--log-target")) o.loss.log_target = loss.log_target;
  if (cmd.count("--loss-model")) {
    if (cmd.count("--loss") && loss.kind != "custom") throw DataError("--loss-model sets the loss; drop --loss " + loss.kind);
    o.loss.kind = "custom";
    o.loss.model_path = loss.loss_model;
  }
  auto& p = o.optimizer;
  if (given("--momentum")) p.momentum = opt.momentum;
  if (given("--optimizer")) {
    p.kind = opt.kind == "momentum" ? "sgd" : opt.kind;
    if (opt.kind == "momentum" && !cmd.count("--momentum")) p.momentum = 0.9;
  }
  if (given("--lr")) p.lr = opt.lr;
  if (given("--nesterov")) p.nesterov = opt.nesterov;
  if (given("--weight-decay")) p.weight_decay = opt.weight_decay;
  if (given("--no-decay-bias-norm")) p.no_decay_on_bias_and_norm = opt.no_decay_bias_norm;
  if (cmd.count("--betas")) {
    p.beta1 = opt.betas.at(0);
    p.beta2 = opt.betas.at(1);
  }
  if (cmd.count("--eps")) p.eps = opt.eps;
  if (given("--scheduler")) o.schedule = parse_schedule(opt.scheduler);
  if (cmd.count("--warmup")) o.schedule.warmup_steps = opt.warmup;
  if (given("--clip-grad-norm")) o.clip_grad_norm = opt.clip;
  if (given("--accumulate")) o.accumulate = opt.accumulate;
  if (given("--freeze")) o.freeze = opt.freeze;
  if (given("--trainable")) o.trainable = opt.trainable;
  if (given("--bn")) o.batchnorm = opt.bn;
  if (p.nesterov && (p.kind != "sgd" || p.momentum <= 0))
    throw DataError("--nesterov needs --optimizer sgd (or momentum) with a momentum > 0");
  return o;
}

namespace {

// The model input's static size at `axis`, or 0.
int static_dim(const ValueInfo& input, size_t axis) {
  if (axis >= input.dims.size()) return 0;
  const std::string& d = input.dims[axis];
  if (d.empty() || d.find_first_not_of("0123456789") != std::string::npos) return 0;
  return std::stoi(d);
}

}  // namespace

LabelOptions label_options(const LossOptions& loss, const Model& model) {
  LabelOptions label;
  label.loss = loss.kind;
  label.output = loss.output;
  label.ignore_index = loss.ignore_index;
  label.name = loss.target;
  if (loss.kind == "output") {
    label.name.clear();
    label.loss = "mse";  // unused without a label
  } else if (loss.kind == "custom") {
    label.name.clear();
    label.loss = "mse";
    Model loss_model = Model::load(loss.model_path);
    std::set<std::string> known;
    for (const auto& v : model.inputs()) known.insert(v.name);
    for (const auto& v : model.outputs()) known.insert(v.name);
    for (const auto& v : loss_model.inputs())
      if (!known.count(v.name)) label.extra.push_back(v.name);
  }
  return label;
}

DatasetPtr open_dataset_for(const std::string& path, const Model& model, const DataArgs& data, const LabelOptions& label) {
  if (!fs::exists(path)) throw DataError(path + ": no such file or directory");
  const auto inputs = model.inputs();
  if (inputs.empty()) throw ModelError("the model has no inputs to feed");
  DatasetPtr raw;
  const std::string ext = fs::path(path).extension().string();
  if (fs::is_directory(path)) {
    const ValueInfo& in = inputs.front();
    if (inputs.size() != 1 || in.dims.size() != 4)
      throw DataError(path + " is an image folder, which feeds one NCHW image input; the model's inputs are " +
                      std::to_string(inputs.size()) + ", the first " + in.name + in.shape_str());
    ImageOptions o;
    o.input = in.name;
    o.label = label.name;
    o.channels = static_dim(in, 1);
    o.height = static_dim(in, 2);
    o.width = static_dim(in, 3);
    if (!data.image_size.empty()) {
      const int h = data.image_size[0], w = data.image_size.size() > 1 ? data.image_size[1] : h;
      if ((o.height && o.height != h) || (o.width && o.width != w))
        throw DataError("--image-size " + std::to_string(h) + "," + std::to_string(w) + " differs from the model input '" +
                        in.name + "' " + in.shape_str());
      o.height = h;
      o.width = w;
    }
    if (o.channels == 0) o.channels = 3;
    if (o.height == 0 || o.width == 0)
      throw DataError("the model input '" + in.name + "' " + in.shape_str() +
                      " does not fix the image size; give it with --image-size H[,W]");
    o.resize_to = data.resize;
    o.crop = data.augment ? ImageOptions::Crop::Random : ImageOptions::Crop::Center;
    o.hflip = data.augment;
    o.mean = data.mean;
    o.std = data.std;
    raw = open_image_folder(path, o);
  } else if (ext == ".csv" || ext == ".tsv" || ext == ".txt") {
    if (inputs.size() != 1) throw DataError(path + ": a CSV file feeds one input; the model has " + std::to_string(inputs.size()));
    CsvOptions o;
    o.input = inputs.front().name;
    o.label = label.name;
    o.label_column = data.label_column;
    o.label_dtype = label.loss == "cross_entropy" || label.loss == "nll" ? DType::Int64 : DType::Float;
    raw = open_csv(path, o);
  } else if (ext == ".npz" || ext == ".npy") {
    raw = open_arrays(path, ext == ".npy" ? inputs.front().name : "");
  } else {
    throw DataError(path + ": unknown data format '" + ext + "' (.npz, .npy, .csv or an image folder)");
  }
  return fit_to_model(raw, model, label);
}

}  // namespace onnxtrain::cli
