#pragma once
// The training loop as a library call: batches from a dataset through a TrainingSession,
// validation after each epoch, best and last model, early stopping, checkpoints a later
// run resumes from bit-identically, per-step metrics rows, charts, and a clean stop on
// request or divergence. Everything a run writes goes into one run directory.
//
//   onnxtrain::Trainer trainer(model, options, fit, train, val);
//   onnxtrain::FitResult result = trainer.fit();
#include <atomic>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "onnxtrain/data.h"
#include "onnxtrain/distributed.h"
#include "onnxtrain/metrics.h"
#include "onnxtrain/model.h"
#include "onnxtrain/training.h"

namespace onnxtrain {

// ---- Evaluation -------------------------------------------------------------------------

struct EvaluateOptions {
  std::vector<std::string> metrics;  // accuracy | top5 | mse | mae | miou | pixel_accuracy (make_metric names)
  std::string output;                // the model output the metrics read (required)
  std::string label = "label";       // the dataset array holding the targets ("" = none)
  int64_t batch_size = 32;           // samples per forward pass: memory stays bounded
  bool confusion = false;            // also count a confusion matrix (classification)
  int64_t ignore_index = -100;       // class-index targets equal to this are skipped
};

// Loss and metrics of a model on a dataset with evaluation semantics.
struct Evaluation {
  double loss = std::numeric_limits<double>::quiet_NaN();  // NaN without a loss
  std::map<std::string, double> metrics;                   // metric name -> value
  std::optional<ConfusionMatrix> confusion;
  int64_t batches = 0;  // forward passes it took
  // What the means are over (to combine evaluations of parts of a dataset): samples with
  // a loss, and each metric's Metric::count().
  int64_t loss_count = 0;
  std::map<std::string, int64_t> metric_counts;
};

// Every sample once, in order, in batches of options.batch_size: the session's loss
// (weighted by batch size) and the metrics. Throws DataError for an unknown metric.
Evaluation evaluate(TrainingSession& session, DatasetPtr data, const EvaluateOptions& options);
// The same without a loss: the label array is not fed to the model.
Evaluation evaluate(InferenceSession& session, DatasetPtr data, const EvaluateOptions& options);

// ---- Validators ---------------------------------------------------------------------------
// Validation that per-batch Metrics cannot express: detection's mAP needs every image's
// predictions before any number is known. A fit with FitOptions::validator calls it after
// each epoch instead of evaluate().
class Validator {
 public:
  virtual ~Validator() = default;
  // The names of the metrics validate() reports, the default score first.
  virtual std::vector<std::string> metrics() const = 0;
  virtual bool higher_is_better(const std::string& metric) const = 0;
  // The session's model on the whole of `data`: Evaluation::metrics holds every name of
  // metrics(); the loss is the session's (NaN when it has none).
  virtual Evaluation validate(TrainingSession& session, DatasetPtr data) = 0;
  // Once a fit completed or stopped early, with a run directory: files of the last
  // validation (plots, drawn images). Rank 0 only.
  virtual void write_run_files(const std::filesystem::path& run_dir) { (void)run_dir; }
};

// ---- Fit ----------------------------------------------------------------------------------

struct FitOptions {
  int64_t epochs = 10;   // how long to train, unless `steps` is set
  int64_t steps = 0;     // > 0: this many optimizer steps instead (each `accumulate` batches)
  int64_t batch_size = 32;
  int64_t val_batch_size = 0;  // 0: batch_size
  bool shuffle = true;         // see LoaderOptions
  bool drop_last = false;
  uint64_t seed = 0;           // shuffling and augmentation (dropout: TrainingOptions::seed)
  // Validation metric: accuracy | top5 | mse | mae | miou | pixel_accuracy | loss (the
  // validation loss). Default: accuracy for the class-index losses (cross_entropy, nll,
  // dice, cross_entropy_dice), else mse; loss when `label` is empty.
  std::string metric;
  std::string output;          // the model output the metric reads; default: the loss's
  // Further validation metrics, recorded as val_<name> columns of metrics.csv (e.g. miou
  // and pixel_accuracy for segmentation); they do not choose best.onnx.
  std::vector<std::string> extra_metrics;
  std::string label = "label"; // the dataset array holding the targets ("" = none)
  // Stop after this many epochs without a better score (validation metric, or the
  // training loss without validation data); 0 = never.
  int patience = 0;
  // Where the run's files go (created as needed): metrics.csv, results.svg, last.onnx,
  // best.onnx, checkpoint.npz, training_options.json, classes.txt and, for
  // classification with validation data, confusion_matrix.{csv,svg} and class_report.csv.
  // Empty: nothing is written (and an interrupted run cannot be resumed).
  std::filesystem::path run_dir;
  std::filesystem::path metrics_copy;  // also write metrics.csv here (empty = no)
  // A checkpoint.npz of an earlier fit with the same options: training continues where it
  // stopped and ends bit-identically to an uninterrupted run (metrics.csv included).
  std::filesystem::path resume;
  std::string model_path;  // recorded in checkpoints (`onnxtrain export` reloads it)
  // Extra text files written into run_dir at the start (name -> content).
  std::map<std::string, std::string> run_files;
  // Data-parallel training on the ranks of this world (docs/distributed.md; null or one
  // process: this process alone), which must outlive the fit. batch_size is then per rank:
  // every rank draws the same seeded order of global batches of batch_size x ranks
  // samples and trains on its slice (DataLoader shards); each rank validates a slice of
  // the validation data and the numbers are combined. Rank 0 alone writes the run
  // directory (run_dir and metrics_copy are ignored on the others); every rank reads
  // `resume`. A stop requested on any rank stops all of them after the same batch.
  Distributed* distributed = nullptr;
  // Replaces evaluate() for validation (null: evaluate with `metric`). `metric` then picks
  // the score among validator->metrics() (default: its first); every one of them gets a
  // val_<name> column in metrics.csv. With several ranks each validates the whole set.
  std::shared_ptr<Validator> validator;
};

// How a fit divides its work, known once the datasets are.
struct FitPlan {
  int64_t batches_per_epoch = 0;
  int64_t micro_batches = 0;  // batches to train in total (optimizer steps x accumulate)
  int64_t epochs = 0;         // epochs those batches span
  int64_t train_samples = 0, val_samples = 0;
  std::string metric;         // the resolved validation metric
  std::string output;         // the resolved output it reads
};

struct EpochBeginEvent {
  int64_t epoch = 0;    // 1-based
  int64_t epochs = 0;
  int64_t batches = 0;  // batches this epoch trains (from its start, also when resumed)
};

struct StepEvent {
  int64_t epoch = 0;          // 1-based
  int64_t batch = 0;          // batches done in this epoch (1-based)
  int64_t micro_batch = 0;    // batches done in the whole fit
  double loss = 0;            // of this batch
  double epoch_loss = 0;      // running mean over the epoch's samples so far
  int64_t epoch_samples = 0;  // samples trained in this epoch so far
  bool updated = false;       // an optimizer step ended with this batch
  int64_t step = 0;           // optimizer steps taken so far
  double lr = 0;              // of the last optimizer step
};

struct EpochEndEvent {
  int64_t epoch = 0, epochs = 0;  // 1-based
  double train_loss = 0;
  std::optional<double> val_loss;    // with validation data
  std::optional<double> val_metric;  // with validation data and a metric other than loss
  std::string metric;
  bool is_best = false;  // best.onnx was written for this epoch
  double best = 0;       // the best score so far
  int bad_epochs = 0;    // epochs since the best
};

// Failed: an error after training started; the last completed step was checkpointed
// (FitResult::checkpoint) before the fit returned, unless writing it failed as well (a full
// disk: checkpoint_step < steps, the previous checkpoint stays), and FitResult::error holds
// the exception.
enum class FitStatus { Completed, EarlyStopped, Interrupted, Diverged, Failed };

struct FitResult {
  FitStatus status = FitStatus::Completed;
  int64_t steps = 0;         // optimizer steps the session has taken
  int64_t micro_batches = 0; // batches trained in this fit and the ones it resumed
  int64_t epochs = 0;        // epochs completed
  double best = std::numeric_limits<double>::quiet_NaN();  // best score (see patience)
  int bad_epochs = 0;
  // Files of the run directory (empty when not written).
  std::filesystem::path best_model, last_model, checkpoint;
  int64_t checkpoint_step = -1;         // the optimizer step `checkpoint` holds (-1: none of this fit's)
  std::string message;                  // Diverged: what was not finite; Failed: the error
  std::exception_ptr error;             // Failed: the exception, to rethrow or inspect
  std::optional<Evaluation> validation; // of the last epoch
};

// Hooks a fit calls; each does nothing unless overridden. They run on the fit's thread;
// an exception from one ends the fit.
class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_fit_begin(const FitPlan&) {}
  virtual void on_epoch_begin(const EpochBeginEvent&) {}
  virtual void on_step_end(const StepEvent&) {}
  virtual void on_epoch_end(const EpochEndEvent&) {}
  virtual void on_fit_end(const FitResult&) {}
};

class Trainer {
 public:
  // The datasets come first because they fix the plan (batches per epoch), which sets the
  // schedule's horizon: with options.total_steps = 0 it becomes the fit's optimizer steps
  // (plus the step a training model was stored at). The session is built here. `model`
  // must outlive the trainer.
  Trainer(Model& model, TrainingOptions options, FitOptions fit, DatasetPtr train, DatasetPtr val = nullptr);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Not owned; must outlive fit(). Called in the order added.
  void add_callback(Callback& callback);
  // Trains until the plan is done, patience runs out, a stop is requested or the loss
  // stops being finite (the last good checkpoint stays). Call once.
  FitResult fit();
  // Async-signal-safe (one atomic store), callable from any thread or a signal handler:
  // the fit finishes the batch in flight, writes a checkpoint and returns Interrupted.
  void request_stop() noexcept;

  TrainingSession& session();
  const FitPlan& plan() const;
  // The options as resolved (total_steps).
  const TrainingOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> stop_{false};
};

// Creates and returns parent/N with N = 1 + the highest purely numeric entry name in
// parent (1 when there is none); parent is created as needed. The directory is claimed
// with mkdir, which fails if it exists, so concurrent runs never share one. Throws
// BackendError when the file system refuses.
std::filesystem::path create_numbered_run_dir(const std::filesystem::path& parent = "runs/train");

}  // namespace onnxtrain
