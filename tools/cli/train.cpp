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
#include "tools/cli/fit_progress.h"
#include "tools/cli/interrupt.h"
#include "tools/cli/train_args.h"
#include "tools/cli/train_detect.h"
#include "tools/cli/train_segment.h"

namespace onnxtrain::cli {

namespace fs = std::filesystem;

namespace {

struct TrainArgs {
  std::string model, data, val, out, metrics_csv, run_dir, resume, metric;
  double val_split = 0;
  DataArgs data_args;
  TrainingFlags training;
  int epochs = 10, threads = 0, patience = 0;
  int64_t steps = 0, batch_size = 32;
  bool no_shuffle = false, drop_last = false, detect_anomaly = false;
  uint64_t seed = 0;
  std::string command_line;
  std::string task = "classify";  // one of kTasks
  SegmentArgs segment;
  DetectArgs detect;
};

std::string default_metric(const std::string& loss) {
  return class_index_loss(loss) ? "accuracy" : "mse";
}

// What the user sees when a fit ends, and the exit code: 0, 130 after Ctrl-C (128 + the
// signal), 1 after divergence or an error.
int report(const FitResult& result, const TrainingOptions& options, const fs::path& run_dir, const std::string& out,
           const std::string& command_line, int interrupt_code) {
  const fs::path checkpoint = run_dir / "checkpoint.npz";
  switch (result.status) {
    case FitStatus::Diverged:
      std::cerr << "onnxtrain: training stopped: " << result.message << "\n";
      if (!result.checkpoint.empty()) std::cerr << "the last good checkpoint is " << result.checkpoint.string() << "\n";
      std::cerr << "try a lower --lr (now " << options.optimizer.lr << ") or --clip-grad-norm\n";
      return 1;
    case FitStatus::Failed:
      std::cerr << "onnxtrain: training failed at step " << result.steps << ": " << result.message << "\n";
      if (!result.checkpoint.empty()) {
        if (result.checkpoint_step == result.steps)
          std::cerr << "the last completed step is saved in " << result.checkpoint.string() << "\n";
        else if (result.checkpoint_step >= 0)
          std::cerr << "step " << result.steps << " could not be saved; " << result.checkpoint.string()
                    << " still holds step " << result.checkpoint_step << "\n";
        std::cerr << "after fixing the cause, resume with: " << command_line << " --resume " << result.checkpoint.string()
                  << "\n";
      }
      return 1;
    case FitStatus::Interrupted:
      std::cerr << "interrupted at step " << result.steps << "; checkpoint written to " << checkpoint.string() << "\n"
                << "resume with: " << command_line << " --resume " << checkpoint.string() << "\n";
      return interrupt_code ? interrupt_code : 130;
    case FitStatus::EarlyStopped:
      if (!quiet_mode())
        std::cerr << "early stopping: no improvement in " << result.bad_epochs << " epochs (best " << fixed(result.best)
                  << ")\n";
      break;
    case FitStatus::Completed:
      break;
  }
  if (!quiet_mode()) {
    // The files this run wrote (they differ by task).
    std::vector<std::string> files;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(run_dir, ec))
      if (e.is_regular_file()) files.push_back(e.path().filename().string());
    std::sort(files.begin(), files.end());
    std::string list;
    for (const auto& f : files) list += (list.empty() ? "" : ", ") + f;
    std::cout << "results in " << run_dir.string() << " (" << list << ")\n";
    if (!out.empty()) std::cout << "wrote " << out << "\n";
  }
  return 0;
}

int run_train(CLI::App& cmd, const TrainArgs& a, Distributed& world) {
  // Under mpirun only rank 0 talks and writes files; the others train quietly.
  const bool speak = world.is_main() && !quiet_mode();
  Model model = Model::load(a.model);
  std::optional<TrainingOptions> stored = training_options_of(model);
  TrainingOptions options = training_options(cmd, a.training, stored);
  options.threads = a.threads;
  options.seed = a.seed;
  options.detect_anomaly = a.detect_anomaly;
  options.total_steps = 0;  // the Trainer sets the schedule's horizon from the plan

  const bool segment = a.task == "segment", detect = a.task == "detect";
  check_segment_flags(a.task, a.segment);
  if (segment) segment_defaults(cmd, options.loss, nullptr);
  // Data first: a file that does not fit the model fails before anything is written.
  std::optional<DetectData> detect_data;
  if (detect) detect_data = open_detect_data(cmd, a.detect, a.data, a.val, a.epochs, model, options);
  const LabelView label = label_view(options.loss, model);
  SegmentData segment_val;
  auto open = [&](const std::string& path, const std::string& masks, bool augment, SegmentData* opened) {
    if (segment) {
      *opened = open_segment_data(path, masks, a.segment, a.data_args, model, options.loss, augment);
      return opened->fitted;
    }
    DataArgs data = a.data_args;
    data.augment = augment;
    return open_dataset_for(path, model, data, options.loss);
  };
  SegmentData segment_train;
  DatasetPtr train = detect ? detect_data->train : open(a.data, a.segment.masks, a.data_args.augment, &segment_train);
  DatasetPtr val = detect ? detect_data->val : nullptr;
  if (detect) {
    if (a.val_split > 0) throw DataError("--task detect validates on the data.yaml's val split or --val, not --val-split");
  } else if (!a.val.empty()) {
    if (a.val_split > 0) throw DataError("--val and --val-split exclude each other");
    val = open(a.val, a.segment.val_masks, false, &segment_val);
  } else if (a.val_split > 0) {
    auto parts = split(train, a.val_split, a.seed);
    train = parts.train;
    val = parts.val;
  }
  FitOptions fit;
  fit.epochs = a.epochs;
  fit.steps = a.steps;
  fit.batch_size = a.batch_size;
  fit.shuffle = !a.no_shuffle;
  fit.drop_last = a.drop_last;
  fit.seed = a.seed;
  fit.metric = a.metric;
  if (segment) segment_defaults(cmd, options.loss, &fit);
  if (detect) detect_fit_options(*detect_data, a.detect, a.batch_size, fit);
  fit.label = label.name;
  fit.patience = a.patience;
  fit.metrics_copy = a.metrics_csv;
  fit.model_path = a.model;
  fit.distributed = &world;
  if (!world.is_main()) {
    fit.resume = a.resume;  // every rank reads the checkpoint; rank 0 alone writes the run directory
  } else if (!a.resume.empty()) {
    fit.resume = a.resume;
    // A resumed run continues in the directory of its checkpoint.
    fit.run_dir = a.run_dir.empty() ? fs::path(a.resume).parent_path() : fs::path(a.run_dir);
    if (fit.run_dir.empty()) fit.run_dir = ".";
  } else {
    fit.run_dir = a.run_dir.empty() ? create_numbered_run_dir("runs/train") : fs::path(a.run_dir);
  }
  // The options as given, reusable with `onnxtrain train --config config.toml`.
  std::string given = cmd.config_to_str(false, false), reusable;
  std::istringstream lines(given);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("resume=", 0) != 0) reusable += line + "\n";  // a re-run starts fresh
  fit.run_files["config.toml"] = reusable;

  Trainer trainer(model, options, fit, train, val);
  const TrainingSession& session = trainer.session();
  if (speak)
    std::cout << "training " << session.trainable().size() << " parameter tensors (" << thousands(session.trainable_elements())
              << " values) on " << thousands(train->size()) << " samples"
              << (val ? " (" + thousands(val->size()) + " for validation)" : std::string()) << ", "
              << trainer.plan().batches_per_epoch << " batches per epoch; run directory " << fit.run_dir.string()
              << (world.size() > 1 ? "; " + std::to_string(world.size()) + " ranks, batch " + std::to_string(a.batch_size) +
                                         " each"
                                   : std::string())
              << std::endl;
  FitProgress progress(!speak);
  trainer.add_callback(progress);
  FitResult result;
  int interrupt_code = 0;
  {
    InterruptGuard interrupt(InterruptGuard::kDefaultMessage,
                             [](void* t) { static_cast<Trainer*>(t)->request_stop(); }, &trainer);
    result = trainer.fit();
    interrupt_code = interrupt.exit_code();
  }
  const bool finished = result.status == FitStatus::Completed || result.status == FitStatus::EarlyStopped;
  if (!world.is_main()) {
    if (result.status == FitStatus::Interrupted) return interrupt_code ? interrupt_code : 130;
    return finished ? 0 : 1;
  }
  if (finished && !a.out.empty()) model.save_inference(a.out);
  if (finished && segment) write_segment_results(result, segment_val, fit.run_dir, trainer.plan().output, a.threads);
  return report(result, trainer.options(), fit.run_dir, a.out, a.command_line, interrupt_code);
}

// Training under mpirun: an error on one rank would leave the others waiting for it in a
// collective, so it ends the whole job (MPI_Abort) with the message.
int run_train(CLI::App& cmd, const TrainArgs& a) {
  Distributed& world = Distributed::world();  // throws under mpirun in a build without MPI
  if (world.size() == 1) return run_train(cmd, a, world);
  try {
    return run_train(cmd, a, world);
  } catch (const std::exception& e) {
    world.abort(std::string("error: ") + e.what() + " (ending all " + std::to_string(world.size()) + " ranks)");
  }
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
  add_loss_flags(cmd, a->training);
  add_optimizer_flags(cmd, a->training);
  cmd->add_option("--epochs", a->epochs, "Epochs")->check(CLI::PositiveNumber);
  cmd->add_option("--steps", a->steps, "Optimizer steps (instead of --epochs)")->check(CLI::PositiveNumber)->excludes("--epochs");
  cmd->add_option("--batch-size", a->batch_size, "Batch size")->check(CLI::PositiveNumber);
  cmd->add_flag("--no-shuffle", a->no_shuffle, "Take batches in file order (wrapping around at the end)");
  cmd->add_flag("--drop-last", a->drop_last, "Skip the last incomplete batch of each epoch");
  cmd->add_option("--seed", a->seed, "Seed for shuffling, augmentation and dropout");
  cmd->add_option("--threads", a->threads, "Threads (default: all cores)");
  cmd->add_flag("--detect-anomaly", a->detect_anomaly,
                "Check every node's outputs and name the first that produces NaN or Inf (slower; for debugging)");
  cmd->add_option("--metric", a->metric, "Validation metric: accuracy | top5 | mse | mae | miou | pixel_accuracy (default: accuracy for classification, miou for --task segment, else mse)");
  cmd->add_option("--patience", a->patience, "Stop after this many epochs without a better validation metric");
  cmd->add_option("--metrics", a->metrics_csv, "Also write the per-step metrics CSV here");
  cmd->add_option("--run-dir", a->run_dir, "Run directory (default: runs/train/N)");
  cmd->add_option("--out", a->out, "Write the trained model (inference form) here");
  cmd->add_option("--resume", a->resume, "Continue from a checkpoint written by a previous run")->check(CLI::ExistingFile);
  cmd->add_option("--task", a->task,
                  "classify: --data holds labels; segment: --data images with --masks (class masks); detect: --data is a "
                  "YOLO data.yaml or COCO JSON (with --images)")
      ->check(CLI::IsMember(kTasks));
  add_segment_flags(cmd, a->segment, true);
  add_detect_flags(cmd, a->detect);
  return {cmd, [cmd, a]() {
    a->command_line = command_line_for_resume();
    return run_train(*cmd, *a);
  }};
}

Command add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Metrics of a model on a dataset (evaluation semantics)");
  struct EvalArgs {
    std::string model, data, loss, output, task = "classify";
    std::vector<std::string> metrics;
    DataArgs data_args;
    SegmentArgs segment;
    DetectArgs detect;
    int threads = 0;
    int64_t batch_size = 32;
  };
  auto a = std::make_shared<EvalArgs>();
  cmd->add_option("model", a->model, "ONNX model file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--data", a->data, "Data: .npz/.npy, .csv or an image folder")->required();
  add_data_flags(cmd, a->data_args, false);
  cmd->add_option("--output", a->output, "Model output the metrics read (default: the first)");
  cmd->add_option("--loss", a->loss, "Also report this loss (cross_entropy | nll | mse | l1)");
  cmd->add_option("--metric", a->metrics, "accuracy | top5 | mse | mae | miou | pixel_accuracy (repeatable; default: accuracy, or miou and pixel_accuracy)");
  cmd->add_option("--threads", a->threads, "Threads (default: all cores)");
  cmd->add_option("--batch-size", a->batch_size, "Samples per forward pass (default: 32; memory stays bounded)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--task", a->task,
                  "classify; segment (--data images with --masks; metrics miou, pixel_accuracy); detect (--data a "
                  "data.yaml's val split or COCO JSON with --images; mAP)")
      ->check(CLI::IsMember(kTasks));
  add_segment_flags(cmd, a->segment, false);
  add_detect_eval_flags(cmd, a->detect);
  return {cmd, [cmd, a]() {
    Model model = Model::load(a->model);
    const std::string output = a->output.empty() ? model.outputs().at(0).name : a->output;
    if (a->task == "detect") return eval_detect(a->detect, a->data, a->batch_size, a->threads, model);
    const bool segment = a->task == "segment";
    check_segment_flags(a->task, a->segment);
    std::vector<std::string> metrics = a->metrics;
    if (metrics.empty() && segment) metrics = {"miou", "pixel_accuracy"};
    if (metrics.empty()) metrics = {a->loss.empty() ? "accuracy" : default_metric(a->loss)};
    bool classification = a->loss.empty() ? segment || metrics.front() == "accuracy" || metrics.front().rfind("top", 0) == 0
                                          : class_index_loss(a->loss);
    const std::string kind = a->loss.empty() ? (classification ? "cross_entropy" : "mse") : a->loss;
    LossOptions loss;
    loss.kind = kind;
    loss.output = a->output;
    loss.target = a->data_args.label;
    if (segment) segment_defaults(*cmd, loss, nullptr);
    DatasetPtr data = segment ? open_segment_data(a->data, a->segment.masks, a->segment, a->data_args, model, loss, false).fitted
                              : open_dataset_for(a->data, model, a->data_args, loss);
    const EvaluateOptions eval{.metrics = metrics, .output = output, .label = a->data_args.label,
                               .batch_size = a->batch_size, .confusion = segment,
                               .ignore_index = class_index_loss(loss.kind) ? loss.ignore_index : -100};
    Evaluation e;
    if (a->loss.empty()) {
      InferenceSession session(model, SessionOptions{.threads = a->threads, .inference_mode = true});
      e = evaluate(session, data, eval);
    } else {
      TrainingOptions options;
      options.loss.kind = a->loss;
      options.loss.output = a->output;
      options.loss.target = a->data_args.label;
      options.loss.ignore_index = loss.ignore_index;
      options.threads = a->threads;
      TrainingSession session(model, options);
      e = evaluate(session, data, eval);
      std::printf("loss: %.6g\n", e.loss);
    }
    for (const auto& [name, value] : e.metrics) std::printf("%s: %.4f\n", name.c_str(), value);
    if (segment && e.confusion)
      for (int64_t c = 0; c < e.confusion->classes(); ++c)
        std::printf("iou class %lld: %.4f\n", static_cast<long long>(c), SegmentationMetric::class_iou(*e.confusion, c));
    return 0;
  }};
}

}  // namespace onnxtrain::cli
