// Trainer: the fit loop (see include/onnxtrain/trainer.h). One epoch trains its batches,
// then validates, records, plots and saves; the position lives in FitState, which every
// checkpoint carries, so a resumed fit replays nothing and skips nothing.
#include "onnxtrain/trainer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

#include "onnxtrain/errors.h"
#include "onnxtrain/atomic_file.h"
#include "src/fit_distributed.h"
#include "src/fit_state.h"
#include "src/run_dir.h"
#include "src/svg.h"

namespace onnxtrain {

namespace fs = std::filesystem;

namespace {

// request_stop may run in a signal handler, where only lock-free atomics are safe.
static_assert(std::atomic<bool>::is_always_lock_free);

bool is_classification(const LossOptions& loss) { return class_index_loss(loss.kind); }

FitPlan make_plan(const Model& model, const TrainingOptions& options, const FitOptions& fit, const DataLoader& loader,
                  const Dataset& train, const Dataset* val) {
  FitPlan plan;
  plan.batches_per_epoch = loader.batches_per_epoch();
  if (plan.batches_per_epoch <= 0)
    throw DataError("no full batch of " + std::to_string(fit.batch_size) + " in " + std::to_string(train.size()) +
                    " training samples (drop_last)");
  if (fit.steps <= 0 && fit.epochs <= 0) throw DataError("fit: set epochs or steps to a positive number");
  plan.micro_batches = fit.steps > 0 ? fit.steps * std::max(1, options.accumulate) : plan.batches_per_epoch * fit.epochs;
  plan.epochs = (plan.micro_batches + plan.batches_per_epoch - 1) / plan.batches_per_epoch;
  plan.train_samples = train.size();
  plan.val_samples = val ? val->size() : 0;
  plan.metric = !fit.metric.empty()              ? fit.metric
                : fit.validator                  ? fit.validator->metrics().at(0)
                : fit.label.empty()              ? "loss"
                : is_classification(options.loss) ? "accuracy"
                                                 : "mse";
  if (fit.validator && plan.metric != "loss") {
    const auto names = fit.validator->metrics();
    if (std::find(names.begin(), names.end(), plan.metric) == names.end()) {
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      throw DataError("fit: metric '" + plan.metric + "' is not one the validator reports (" + list + ", loss)");
    }
  }
  plan.output = !fit.output.empty()           ? fit.output
                : !options.loss.output.empty() ? options.loss.output
                                               : model.outputs().at(0).name;
  return plan;
}

}  // namespace

struct Trainer::Impl {
  Model& model;
  TrainingOptions options;
  FitOptions fit;
  DatasetPtr train, val;
  Distributed* world = nullptr;  // several ranks, or null
  DatasetPtr val_part;           // what this rank validates
  std::unique_ptr<DataLoader> loader;
  FitPlan plan;
  std::unique_ptr<TrainingSession> session;
  std::vector<Callback*> callbacks;
  std::set<std::string> graph_inputs;  // what train_step feeds
  bool loss_only = false, higher_is_better = false, started = false;
  std::string metric_key;               // plan.metric's canonical name (Evaluation::metrics key)
  std::vector<std::string> extra_keys;  // the same for fit.extra_metrics

  // Per fit() call.
  FitState state;
  std::optional<MetricsCsv> csv, csv_copy;
  std::optional<Evaluation> last_eval;
  std::optional<MetricsRow> pending_row;  // the last step's row, held for the epoch's validation columns
  int64_t first_micro = 0;                // state.micro when this fit started (after a resume)
  int64_t saved_step = -1;                // the step checkpoint.npz holds, once this fit wrote or resumed it

  Impl(Model& m, TrainingOptions o, FitOptions f, DatasetPtr t, DatasetPtr v)
      : model(m), options(std::move(o)), fit(std::move(f)), train(std::move(t)), val(std::move(v)) {
    if (!train) throw DataError("fit: no training data");
    if (fit.batch_size <= 0) throw DataError("fit: batch_size must be positive, got " + std::to_string(fit.batch_size));
    if (fit.distributed && fit.distributed->size() > 1) world = fit.distributed;
    const int ranks = world ? world->size() : 1;
    // Global batches of batch_size per rank, each rank its slice.
    loader = std::make_unique<DataLoader>(train, LoaderOptions{.batch_size = fit.batch_size * ranks,
                                                               .shuffle = fit.shuffle, .drop_last = fit.drop_last,
                                                               .seed = fit.seed, .augment = true,
                                                               .shard = world ? world->rank() : 0, .shards = ranks});
    if (world) val_part = validation_shard(val, *world);
    plan = make_plan(model, options, fit, *loader, *train, val.get());
    loss_only = plan.metric == "loss";
    if (!loss_only) {
      if (fit.validator) {
        higher_is_better = fit.validator->higher_is_better(plan.metric);
        metric_key = plan.metric;
      } else {
        const auto metric = make_metric(plan.metric);  // also rejects unknown names
        higher_is_better = metric->higher_is_better();
        metric_key = metric->name();
      }
    }
    if (fit.validator && !fit.extra_metrics.empty())
      throw DataError("fit: extra_metrics go with evaluate(); a validator reports its own metrics");
    for (const auto& m : fit.extra_metrics) extra_keys.push_back(make_metric(m)->name());
    if (options.total_steps == 0) {
      // The schedule anneals over this fit; a training model continues from its stored step.
      const int64_t k = std::max(1, options.accumulate);
      options.total_steps = (plan.micro_batches + k - 1) / k + training_step_of(model).value_or(0);
    }
    session = std::make_unique<TrainingSession>(model, options);
  }

  // A dataset may hold arrays the training graph does not read (a detection batch's
  // counts): they stay out of the feeds.
  void drop_unread_arrays(Batch& batch) {
    if (graph_inputs.empty()) {
      const auto names = session->input_names();
      graph_inputs.insert(names.begin(), names.end());
    }
    std::erase_if(batch.arrays, [&](const auto& a) { return !graph_inputs.count(a.first); });
  }

  bool is_main() const { return !world || world->is_main(); }
  bool writes_files() const { return !fit.run_dir.empty() && is_main(); }
  fs::path file(const char* name) const { return fit.run_dir / name; }

  void emit(auto&& hook) {
    for (Callback* c : callbacks) hook(*c);
  }

  void save_checkpoint() {
    if (!writes_files()) return;
    std::map<std::string, std::string> notes = {{"progress", state.to_json()},
                                                {"options", format_training_options(options)}};
    if (!fit.model_path.empty()) notes["model"] = fs::absolute(fit.model_path).string();
    session->save_checkpoint(file("checkpoint.npz").string(), notes);
    saved_step = session->step();
  }

  void write_row(const MetricsRow& row) {
    if (csv) csv->write(row);
    if (csv_copy) csv_copy->write(row);
  }

  void begin() {
    if (!fit.resume.empty()) {
      const std::string source = fit.resume.string();
      auto notes = session->load_checkpoint(source);
      if (!notes.count("progress")) throw DataError(source + " was not written by `onnxtrain train` (no progress note)");
      state = FitState::from_json(notes.at("progress"), source);
      if (state.micro > plan.micro_batches)
        throw DataError(source + " is " + std::to_string(state.micro) + " batches in, beyond this run's " +
                        std::to_string(plan.micro_batches));
      loader->seek(state.micro / plan.batches_per_epoch, state.micro % plan.batches_per_epoch);
      spdlog::info("resumed from {} at optimizer step {}", source, session->step());
      std::error_code ec;  // resuming from the checkpoint this fit overwrites: it holds this step so far
      if (writes_files() && fs::equivalent(source, file("checkpoint.npz"), ec)) saved_step = session->step();
    }
    if (world) session->set_distributed(*world);  // every rank continues from rank 0's state
    std::vector<std::string> columns;
    for (const auto& part : session->loss_part_names()) columns.push_back(part + "_loss");
    if (val) {
      columns.push_back("val_loss");
      if (fit.validator)
        for (const auto& m : fit.validator->metrics()) columns.push_back("val_" + m);
      else if (!loss_only)
        columns.push_back("val_" + plan.metric);
      for (const auto& m : fit.extra_metrics) columns.push_back("val_" + m);
    }
    const bool resumed = !fit.resume.empty();
    if (writes_files()) {
      fs::create_directories(fit.run_dir);
      for (const auto& [name, text] : fit.run_files) write_file_atomically(file(name.c_str()).string(), text);
      write_file_atomically(file("training_options.json").string(), format_training_options(options) + "\n");
      if (!train->class_names().empty()) {
        std::string names;
        for (const auto& c : train->class_names()) names += c + "\n";
        write_file_atomically(file("classes.txt").string(), names);
      }
      csv.emplace(file("metrics.csv"), columns, resumed && fs::exists(file("metrics.csv")), session->step());
    }
    if (!fit.metrics_copy.empty() && is_main())
      csv_copy.emplace(fit.metrics_copy, columns, resumed && fs::exists(fit.metrics_copy), session->step());
  }

  // Trains the rest of the current epoch; false when a stop was requested (the checkpoint
  // is then written).
  bool train_epoch(const std::atomic<bool>& stop) {
    const int64_t bpe = plan.batches_per_epoch;
    const int64_t epoch = state.micro / bpe;  // 0-based
    const int64_t epoch_end = std::min((epoch + 1) * bpe, plan.micro_batches);
    emit([&](Callback& c) { c.on_epoch_begin({.epoch = epoch + 1, .epochs = plan.epochs, .batches = epoch_end - epoch * bpe}); });
    std::optional<MetricsRow>& held = pending_row;  // the epoch's last row waits for the validation columns
    while (state.micro < epoch_end) {
      Batch batch = loader->next();
      drop_unread_arrays(batch);
      int64_t n = static_cast<int64_t>(batch.samples.size());
      StepResult r = session->train_step(batch.arrays);
      if (world) {
        // The global batch's loss and size (what one process training it would report).
        const bool summed = options.loss.reduction == "sum";
        double sums[2] = {summed ? r.loss : r.loss * static_cast<double>(n), static_cast<double>(n)};
        world->allreduce_sum(sums, 2);
        n = static_cast<int64_t>(sums[1]);
        r.loss = summed ? sums[0] : sums[0] / sums[1];
      }
      ++state.micro;
      state.epoch_loss_sum += r.loss * static_cast<double>(n);
      state.epoch_samples += n;
      state.step_loss_sum += r.loss;
      state.step_parts_sum.resize(r.loss_parts.size(), 0.0);
      for (size_t i = 0; i < r.loss_parts.size(); ++i) state.step_parts_sum[i] += r.loss_parts[i].second;
      ++state.step_micro;
      const double batch_loss = r.loss;
      const bool stepped = r.updated || state.micro == plan.micro_batches;
      if (stepped) {
        if (!r.updated) r = session->optimizer_step();  // leftover micro-batches at the very end
        MetricsRow row{.step = r.step, .epoch = epoch + 1, .lr = r.lr,
                       .loss = state.step_loss_sum / static_cast<double>(state.step_micro)};
        const auto part_names = session->loss_part_names();
        for (size_t i = 0; i < part_names.size() && i < state.step_parts_sum.size(); ++i)
          row.extra[part_names[i] + "_loss"] = state.step_parts_sum[i] / static_cast<double>(state.step_micro);
        state.step_loss_sum = 0;
        state.step_parts_sum.clear();
        state.step_micro = 0;
        if (held) write_row(*held);
        held = row;
      }
      const StepEvent event{.epoch = epoch + 1,
                            .batch = state.micro - epoch * bpe,
                            .micro_batch = state.micro,
                            .loss = batch_loss,
                            .epoch_loss = state.epoch_loss_sum / static_cast<double>(state.epoch_samples),
                            .epoch_samples = state.epoch_samples,
                            .updated = stepped,
                            .step = session->step(),
                            .lr = stepped ? r.lr : session->current_lr()};
      emit([&](Callback& c) { c.on_step_end(event); });
      // A stop asked on any rank stops every rank after this batch.
      const bool stop_now = stop.load(std::memory_order_relaxed);
      if (world ? world->any(stop_now) : stop_now) {
        if (held) write_row(*held);
        held.reset();
        save_checkpoint();
        return false;
      }
    }
    return true;
  }

  // Validates, records, plots and saves after an epoch; true when patience ran out.
  bool end_epoch() {
    std::optional<MetricsRow>& held = pending_row;  // written once validated (or by a failure's checkpoint)
    const int64_t epoch = static_cast<int64_t>(state.train_loss.size()) + 1;
    const double train_loss =
        state.epoch_samples ? state.epoch_loss_sum / static_cast<double>(state.epoch_samples) : std::nan("");
    state.train_loss.push_back(train_loss);
    state.epoch_loss_sum = 0;
    state.epoch_samples = 0;
    EpochEndEvent event{.epoch = epoch, .epochs = plan.epochs, .train_loss = train_loss, .metric = plan.metric};
    double score = train_loss;  // without validation data the best model is the lowest training loss
    bool higher_better = false;
    if (val) {
      EvaluateOptions eval{.metrics = loss_only ? std::vector<std::string>{} : std::vector<std::string>{plan.metric},
                           .output = plan.output,
                           .label = fit.label,
                           .batch_size = fit.val_batch_size > 0 ? fit.val_batch_size : fit.batch_size,
                           .confusion = is_classification(options.loss),
                           .ignore_index = is_classification(options.loss) ? options.loss.ignore_index : -100};
      eval.metrics.insert(eval.metrics.end(), fit.extra_metrics.begin(), fit.extra_metrics.end());
      if (fit.validator) {
        last_eval = fit.validator->validate(*session, val);  // every rank the whole set: a mAP does not add up
        if (held)
          for (const auto& [name, value] : last_eval->metrics) held->extra["val_" + name] = value;
      } else {
        last_eval = world ? combine_evaluations(*world, evaluate(*session, val_part, eval)) : evaluate(*session, val, eval);
      }
      for (size_t i = 0; i < extra_keys.size(); ++i)
        if (held) held->extra["val_" + fit.extra_metrics[i]] = last_eval->metrics.at(extra_keys[i]);
      state.val_loss.push_back(last_eval->loss);
      if (held) held->extra["val_loss"] = last_eval->loss;
      event.val_loss = score = last_eval->loss;
      if (!loss_only) {
        const double m = last_eval->metrics.at(metric_key);
        state.val_metric.push_back(m);
        if (held) held->extra["val_" + plan.metric] = m;
        event.val_metric = score = m;
        higher_better = higher_is_better;
      }
    }
    if (held) write_row(*held);
    held.reset();
    if (writes_files()) {
      write_file_atomically(file("results.svg").string(), fit_curves_svg(state, plan.metric));
      model.save_inference(file("last.onnx").string());
    }
    event.is_best = std::isnan(state.best) || (higher_better ? score > state.best : score < state.best);
    if (event.is_best) {
      state.best = score;
      state.bad_epochs = 0;
      if (writes_files()) model.save_inference(file("best.onnx").string());
    } else {
      ++state.bad_epochs;
    }
    save_checkpoint();
    event.best = state.best;
    event.bad_epochs = state.bad_epochs;
    emit([&](Callback& c) { c.on_epoch_end(event); });
    return fit.patience > 0 && state.bad_epochs >= fit.patience && state.micro < plan.micro_batches;
  }

  FitResult finish(FitResult result) {
    const bool done = result.status == FitStatus::Completed || result.status == FitStatus::EarlyStopped;
    if (done && writes_files() && last_eval && last_eval->confusion) {
      write_file_atomically(file("confusion_matrix.csv").string(), confusion_matrix_csv(*last_eval->confusion));
      write_file_atomically(file("confusion_matrix.svg").string(), confusion_matrix_svg(*last_eval->confusion));
      write_file_atomically(file("class_report.csv").string(), class_report_csv(*last_eval->confusion));
    }
    if (done && writes_files() && last_eval && fit.validator) fit.validator->write_run_files(fit.run_dir);
    result.steps = session->step();
    result.micro_batches = state.micro;
    result.epochs = static_cast<int64_t>(state.train_loss.size());
    result.best = state.best;
    result.bad_epochs = state.bad_epochs;
    if (writes_files()) {
      auto existing = [](fs::path p) { return fs::exists(p) ? p : fs::path(); };
      result.best_model = existing(file("best.onnx"));
      result.last_model = existing(file("last.onnx"));
      result.checkpoint = existing(file("checkpoint.npz"));
      result.checkpoint_step = saved_step;
    }
    result.validation = last_eval;
    // Rank 0 may still be writing files: a rank that returned first and exited with an
    // error code (an interrupt) would make mpirun end the job under it.
    if (world) world->barrier();
    emit([&](Callback& c) { c.on_fit_end(result); });
    return result;
  }

  FitResult run(const std::atomic<bool>& stop) {
    if (started) throw std::logic_error("Trainer::fit: a trainer fits once");
    started = true;
    begin();
    first_micro = state.micro;
    emit([&](Callback& c) { c.on_fit_begin(plan); });
    FitResult result;
    try {
      while (state.micro < plan.micro_batches) {
        if (!train_epoch(stop)) {
          result.status = FitStatus::Interrupted;
          break;
        }
        if (end_epoch()) {
          result.status = FitStatus::EarlyStopped;
          break;
        }
      }
    } catch (const NonFiniteLoss& e) {
      result.status = FitStatus::Diverged;
      result.message = e.what();
    } catch (const std::exception& e) {
      // Work done in this fit is kept: the session is at its last completed step (a failed
      // step changes nothing), so that state is checkpointed before the error is reported.
      if (state.micro == first_micro || !writes_files()) throw;
      result.status = FitStatus::Failed;
      result.message = e.what();
      result.error = std::current_exception();
      try {
        if (pending_row) write_row(*pending_row);
        pending_row.reset();
        save_checkpoint();
      } catch (const std::exception& save_error) {
        result.message += std::string("; the checkpoint could not be written either: ") + save_error.what();
      }
    }
    return finish(std::move(result));
  }
};

Trainer::Trainer(Model& model, TrainingOptions options, FitOptions fit, DatasetPtr train, DatasetPtr val)
    : impl_(std::make_unique<Impl>(model, std::move(options), std::move(fit), std::move(train), std::move(val))) {}

Trainer::~Trainer() = default;

void Trainer::add_callback(Callback& callback) { impl_->callbacks.push_back(&callback); }

FitResult Trainer::fit() { return impl_->run(stop_); }

void Trainer::request_stop() noexcept { stop_.store(true, std::memory_order_relaxed); }

TrainingSession& Trainer::session() { return *impl_->session; }

const FitPlan& Trainer::plan() const { return impl_->plan; }

const TrainingOptions& Trainer::options() const { return impl_->options; }

}  // namespace onnxtrain
