// `onnxtrain train MODEL --data TRAIN ...`: fine-tune a model; `onnxtrain eval MODEL --data
// DATA`: its metrics on a dataset.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "onnxtrain/onnxtrain.h"
#include "tools/cli/commands.h"
#include "tools/cli/format.h"
#include "tools/cli/run_dir.h"
#include "tools/cli/train_args.h"
#include "tools/cli/trainer.h"

namespace onnxtrain::cli {

namespace fs = std::filesystem;

namespace {

struct TrainArgs {
  std::string model, data, val, out, metrics_csv, run_dir, resume, metric;
  double val_split = 0;
  DataArgs data_args;
  LossArgs loss;
  OptimizerArgs optimizer;
  int epochs = 10, threads = 0, patience = 0;
  int64_t steps = 0, batch_size = 32;
  bool no_shuffle = false, drop_last = false;
  uint64_t seed = 0;
  std::string command_line;
};

std::string default_metric(const std::string& loss) {
  return loss == "cross_entropy" || loss == "nll" ? "accuracy" : "mse";
}

int run_train(CLI::App& cmd, const TrainArgs& a) {
  set_num_threads(a.threads);
  Model model = Model::load(a.model);
  std::optional<TrainingOptions> stored = training_options_of(model);
  TrainingOptions options = training_options(cmd, a.loss, a.optimizer, a.data_args.label, stored);
  options.threads = a.threads;
  options.seed = a.seed;
  const std::string output = options.loss.output.empty() ? model.outputs().at(0).name : options.loss.output;

  // Data first: a file that does not fit the model fails before anything is written.
  const LabelOptions label = label_options(options.loss, model);
  DatasetPtr train = open_dataset_for(a.data, model, a.data_args, label);
  DatasetPtr val;
  if (!a.val.empty()) {
    if (a.val_split > 0) throw DataError("--val and --val-split exclude each other");
    DataArgs val_data = a.data_args;
    val_data.augment = false;
    val = open_dataset_for(a.val, model, val_data, label);
  } else if (a.val_split > 0) {
    auto parts = split(train, a.val_split, a.seed);
    train = parts.train;
    val = parts.val;
  }
  DataLoader loader(train, LoaderOptions{.batch_size = a.batch_size, .shuffle = !a.no_shuffle, .drop_last = a.drop_last,
                                         .seed = a.seed, .augment = true});
  const int64_t bpe = loader.batches_per_epoch();
  TrainerConfig config;
  config.micro_batches = a.steps > 0 ? a.steps * options.accumulate : bpe * a.epochs;
  config.epochs = (config.micro_batches + bpe - 1) / bpe;
  options.total_steps = (config.micro_batches + options.accumulate - 1) / options.accumulate;
  if (stored) {
    // A training model continues its schedule: the horizon extends from its stored step.
    const auto names = model.initializer_names();
    if (std::find(names.begin(), names.end(), "onnxtrain.step") != names.end())
      options.total_steps += model.initializer("onnxtrain.step").as_int64().at(0);
  }
  TrainingSession session(model, options);
  config.metric = a.metric.empty() ? default_metric(options.loss.kind) : a.metric;
  if (label.name.empty() && a.metric.empty()) config.metric = "loss";
  config.patience = a.patience;
  config.label = label.name;
  config.output = output;
  config.metrics_csv = a.metrics_csv;
  config.out = a.out;
  config.model_path = a.model;
  config.quiet = quiet_mode();
  config.command_line = a.command_line;
  if (!a.resume.empty()) {
    config.resume = a.resume;
    // A resumed run continues in the directory of its checkpoint.
    config.run_dir = a.run_dir.empty() ? fs::path(a.resume).parent_path() : fs::path(a.run_dir);
    if (config.run_dir.empty()) config.run_dir = ".";
    fs::create_directories(config.run_dir);
  } else if (!a.run_dir.empty()) {
    config.run_dir = a.run_dir;
    fs::create_directories(config.run_dir);
  } else {
    config.run_dir = create_numbered_run_dir("runs/train");
  }
  // The options as given (reusable: `onnxtrain train --config config.toml`) and every
  // resolved training setting.
  std::string given = cmd.config_to_str(false, false), reusable;
  std::istringstream lines(given);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("resume=", 0) != 0) reusable += line + "\n";  // a re-run starts fresh
  write_file_atomically(config.run_dir / "config.toml", reusable);
  write_file_atomically(config.run_dir / "training_options.json", format_training_options(options) + "\n");
  if (!train->class_names().empty()) {
    std::string names;
    for (const auto& c : train->class_names()) names += c + "\n";
    write_file_atomically(config.run_dir / "classes.txt", names);
  }
  if (!config.quiet)
    std::cout << "training " << session.trainable().size() << " parameter tensors (" << thousands(session.trainable_elements())
              << " values) on " << thousands(train->size()) << " samples"
              << (val ? " (" + thousands(val->size()) + " for validation)" : std::string()) << ", " << bpe
              << " batches per epoch; run directory " << config.run_dir.string() << std::endl;
  return run_training(model, session, loader, val, options, config);
}

}  // namespace

Command add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train",
                                 "Fine-tune a model on .npz/.npy arrays, a CSV file or an image folder (options may also "
                                 "come from --config FILE.toml, keys = option names, e.g. lr = 0.01)");
  cmd->option_defaults()->always_capture_default();  // --help shows the defaults
  auto a = std::make_shared<TrainArgs>();
  cmd->add_option("model", a->model, "ONNX model file (or a training model written by `onnxtrain export --training`)")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--data", a->data, "Training data: .npz/.npy (arrays by input name + label), .csv, or an image folder")->required();
  cmd->add_option("--val", a->val, "Validation data (same formats), evaluated after each epoch");
  cmd->add_option("--val-split", a->val_split, "Hold out this fraction of the training data for validation")->check(CLI::Range(0.0, 0.9));
  add_data_flags(cmd, a->data_args, true);
  add_loss_flags(cmd, a->loss);
  add_optimizer_flags(cmd, a->optimizer);
  cmd->add_option("--epochs", a->epochs, "Epochs")->check(CLI::PositiveNumber);
  cmd->add_option("--steps", a->steps, "Optimizer steps (instead of --epochs)")->check(CLI::PositiveNumber)->excludes("--epochs");
  cmd->add_option("--batch-size", a->batch_size, "Batch size")->check(CLI::PositiveNumber);
  cmd->add_flag("--no-shuffle", a->no_shuffle, "Take batches in file order (wrapping around at the end)");
  cmd->add_flag("--drop-last", a->drop_last, "Skip the last incomplete batch of each epoch");
  cmd->add_option("--seed", a->seed, "Seed for shuffling, augmentation and dropout");
  cmd->add_option("--threads", a->threads, "Threads (default: all cores)");
  cmd->add_option("--metric", a->metric, "Validation metric: accuracy | top5 | mse | mae (default: accuracy for classification, else mse)");
  cmd->add_option("--patience", a->patience, "Stop after this many epochs without a better validation metric");
  cmd->add_option("--metrics", a->metrics_csv, "Also write the per-step metrics CSV here");
  cmd->add_option("--run-dir", a->run_dir, "Run directory (default: runs/train/N)");
  cmd->add_option("--out", a->out, "Write the trained model (inference form) here");
  cmd->add_option("--resume", a->resume, "Continue from a checkpoint written by a previous run")->check(CLI::ExistingFile);
  return {cmd, [cmd, a]() {
    a->command_line = command_line_for_resume();
    return run_train(*cmd, *a);
  }};
}

Command add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Metrics of a model on a dataset (evaluation semantics)");
  struct EvalArgs {
    std::string model, data, loss, output;
    std::vector<std::string> metrics;
    DataArgs data_args;
    int threads = 0;
  };
  auto a = std::make_shared<EvalArgs>();
  cmd->add_option("model", a->model, "ONNX model file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--data", a->data, "Data: .npz/.npy, .csv or an image folder")->required();
  add_data_flags(cmd, a->data_args, false);
  cmd->add_option("--output", a->output, "Model output the metrics read (default: the first)");
  cmd->add_option("--loss", a->loss, "Also report this loss (cross_entropy | nll | mse | l1)");
  cmd->add_option("--metric", a->metrics, "accuracy | top5 | mse | mae (repeatable; default: accuracy)");
  cmd->add_option("--threads", a->threads, "Threads (default: all cores)");
  return {cmd, [a]() {
    set_num_threads(a->threads);
    Model model = Model::load(a->model);
    const std::string output = a->output.empty() ? model.outputs().at(0).name : a->output;
    std::vector<std::string> metrics = a->metrics;
    if (metrics.empty()) metrics = {a->loss.empty() ? "accuracy" : default_metric(a->loss)};
    bool classification = a->loss.empty() ? metrics.front() == "accuracy" || metrics.front().rfind("top", 0) == 0
                                          : a->loss == "cross_entropy" || a->loss == "nll";
    const std::string kind = a->loss.empty() ? (classification ? "cross_entropy" : "mse") : a->loss;
    LossOptions loss;
    loss.kind = kind;
    loss.output = a->output;
    loss.target = a->data_args.label;
    DatasetPtr data = open_dataset_for(a->data, model, a->data_args, label_options(loss, model));
    Evaluation e;
    if (a->loss.empty()) {
      InferenceSession session(model, SessionOptions{.threads = a->threads, .inference_mode = true});
      e = evaluate(
          [&](const std::map<std::string, Tensor>& b) {
            std::map<std::string, Tensor> inputs = b;
            inputs.erase(a->data_args.label);
            return std::make_pair(std::nan(""), session.run(inputs, {output}).at(output));
          },
          data, metrics, a->data_args.label, false);
    } else {
      TrainingOptions options;
      options.loss.kind = a->loss;
      options.loss.output = a->output;
      options.loss.target = a->data_args.label;
      options.threads = a->threads;
      TrainingSession session(model, options);
      e = evaluate(
          [&](const std::map<std::string, Tensor>& b) {
            EvalResult r = session.eval_step(b, {output});
            return std::make_pair(r.loss, r.outputs.at(output));
          },
          data, metrics, a->data_args.label, false);
      std::printf("loss: %.6g\n", e.loss);
    }
    for (const auto& [name, value] : e.metrics) std::printf("%s: %.4f\n", name.c_str(), value);
    return 0;
  }};
}

}  // namespace onnxtrain::cli
