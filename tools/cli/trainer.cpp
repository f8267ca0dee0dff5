#include "tools/cli/trainer.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>

#include "tools/cli/interrupt.h"
#include "tools/cli/progress.h"
#include "tools/cli/run_dir.h"
#include "tools/cli/svg.h"

namespace onnxtrain::cli {

namespace fs = std::filesystem;

Evaluation evaluate(const Forward& forward, DatasetPtr data, const std::vector<std::string>& metrics,
                    const std::string& label, bool confusion) {
  Evaluation result;
  std::vector<std::unique_ptr<Metric>> accumulators;
  for (const auto& m : metrics) accumulators.push_back(make_metric(m));
  std::optional<ConfusionMatrix> matrix;
  if (confusion) matrix.emplace(0, data->class_names());
  MeanLoss loss;
  DataLoader loader(data, LoaderOptions{.batch_size = 256, .shuffle = false, .drop_last = false, .augment = false});
  const int64_t n = data->size();
  for (int64_t done = 0; done < n;) {
    Batch batch = loader.next();
    // The unshuffled stream wraps around: keep only the samples not seen yet.
    const int64_t take = std::min<int64_t>(static_cast<int64_t>(batch.samples.size()), n - done);
    if (take < static_cast<int64_t>(batch.samples.size())) {
      std::vector<int64_t> rest(batch.samples.begin(), batch.samples.begin() + take);
      batch.arrays = data->batch(rest, BatchOptions{.augment = false});
    }
    Tensor target = !label.empty() && batch.arrays.count(label) ? batch.arrays.at(label) : Tensor();
    auto [batch_loss, output] = forward(batch.arrays);
    if (!std::isnan(batch_loss)) loss.add(batch_loss, take);
    for (auto& m : accumulators) m->update(output, target);
    if (matrix) matrix->update(output, target);
    done += take;
  }
  result.loss = loss.count() ? loss.value() : std::numeric_limits<double>::quiet_NaN();
  for (auto& m : accumulators) result.metrics[m->name()] = m->value();
  result.confusion = std::move(matrix);
  return result;
}

namespace {

// Where a run stands; stored in checkpoints so a resumed run continues exactly.
struct Progress {
  int64_t micro = 0;  // batches trained
  double best = std::numeric_limits<double>::quiet_NaN();
  int bad_epochs = 0;
  // The current epoch and optimizer step so far.
  double epoch_loss_sum = 0, step_loss_sum = 0;
  int64_t epoch_samples = 0, step_micro = 0;
  std::vector<double> train_loss, val_loss, val_metric;

  std::string to_json() const {
    auto nan_safe = [](const std::vector<double>& v) {
      nlohmann::json a = nlohmann::json::array();
      for (double x : v) a.push_back(std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr));
      return a;
    };
    return nlohmann::json{{"micro", micro},
                          {"best", std::isfinite(best) ? nlohmann::json(best) : nlohmann::json(nullptr)},
                          {"bad_epochs", bad_epochs},
                          {"epoch_loss_sum", epoch_loss_sum},
                          {"epoch_samples", epoch_samples},
                          {"step_loss_sum", step_loss_sum},
                          {"step_micro", step_micro},
                          {"train_loss", nan_safe(train_loss)},
                          {"val_loss", nan_safe(val_loss)},
                          {"val_metric", nan_safe(val_metric)}}
        .dump();
  }
  static Progress from_json(const std::string& text) {
    auto j = nlohmann::json::parse(text);
    auto values = [](const nlohmann::json& a) {
      std::vector<double> v;
      for (const auto& x : a) v.push_back(x.is_null() ? std::numeric_limits<double>::quiet_NaN() : x.get<double>());
      return v;
    };
    Progress p;
    p.micro = j.at("micro");
    p.best = j.at("best").is_null() ? std::numeric_limits<double>::quiet_NaN() : j.at("best").get<double>();
    p.bad_epochs = j.at("bad_epochs");
    p.epoch_loss_sum = j.at("epoch_loss_sum");
    p.epoch_samples = j.at("epoch_samples");
    p.step_loss_sum = j.at("step_loss_sum");
    p.step_micro = j.at("step_micro");
    p.train_loss = values(j.at("train_loss"));
    p.val_loss = values(j.at("val_loss"));
    p.val_metric = values(j.at("val_metric"));
    return p;
  }
};

std::string fixed(double v, int digits = 4) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

void write_plot(const fs::path& path, const Progress& p, const std::string& metric) {
  LineChart chart;
  chart.title = "training";
  chart.y_label = "loss";
  chart.series.push_back({.name = "train loss", .y = p.train_loss});
  if (!p.val_loss.empty()) chart.series.push_back({.name = "val loss", .y = p.val_loss});
  if (!p.val_metric.empty()) {
    chart.y2_label = "val " + metric;
    chart.series.push_back({.name = "val " + metric, .y = p.val_metric, .right_axis = true});
  }
  write_file_atomically(path, line_chart_svg(chart));
}

}  // namespace

int run_training(Model& model, TrainingSession& session, DataLoader& train, DatasetPtr val,
                 const TrainingOptions& options, const TrainerConfig& config) {
  const fs::path& dir = config.run_dir;
  const fs::path checkpoint = dir / "checkpoint.npz";
  const bool classification = options.loss.kind == "cross_entropy" || options.loss.kind == "nll";
  const int64_t bpe = train.batches_per_epoch();
  const int k = options.accumulate;
  Progress p;
  if (!config.resume.empty()) {
    auto notes = session.load_checkpoint(config.resume);
    if (!notes.count("progress")) throw DataError(config.resume + " was not written by `onnxtrain train` (no progress note)");
    p = Progress::from_json(notes.at("progress"));
    if (p.micro > config.micro_batches)
      throw DataError(config.resume + " is " + std::to_string(p.micro) + " batches in, beyond this run's " +
                      std::to_string(config.micro_batches));
    train.seek(p.micro / bpe, p.micro % bpe);
    spdlog::info("resumed from {} at optimizer step {}", config.resume, session.step());
  }
  // metric "loss": the validation loss is the score (losses without a label array).
  const bool loss_only = config.metric == "loss";
  std::vector<std::string> extra_columns;
  if (val) extra_columns = loss_only ? std::vector<std::string>{"val_loss"} : std::vector<std::string>{"val_loss", "val_" + config.metric};
  MetricsCsv csv(dir / "metrics.csv", extra_columns, /*append=*/!config.resume.empty() && fs::exists(dir / "metrics.csv"));
  std::optional<MetricsCsv> user_csv;
  if (!config.metrics_csv.empty()) user_csv.emplace(config.metrics_csv, extra_columns, !config.resume.empty() && fs::exists(config.metrics_csv));
  auto write_row = [&](const MetricsRow& row) {
    csv.write(row);
    if (user_csv) user_csv->write(row);
  };

  auto save_checkpoint = [&]() {
    session.save_checkpoint(checkpoint.string(), {{"progress", p.to_json()},
                                                  {"model", fs::absolute(config.model_path).string()},
                                                  {"options", format_training_options(options)}});
  };
  const std::string resume_hint = "resume with: " + config.command_line + " --resume " + checkpoint.string();
  EpochProgress bar(std::cerr, ProgressOptions{.mode = progress_mode_for(config.quiet), .columns = terminal_columns()});
  InterruptGuard interrupt;
  const bool metric_higher_better = !loss_only && make_metric(config.metric)->higher_is_better();
  std::optional<Evaluation> last_eval;

  while (p.micro < config.micro_batches) {
    const int64_t epoch = p.micro / bpe;  // 0-based
    const int64_t epoch_end = std::min((epoch + 1) * bpe, config.micro_batches);
    bar.start_epoch(static_cast<int>(epoch + 1), static_cast<int>(config.epochs), epoch_end - epoch * bpe);
    std::optional<MetricsRow> held;  // the epoch's last row waits for the validation columns
    while (p.micro < epoch_end) {
      Batch batch = train.next();
      const int64_t n = static_cast<int64_t>(batch.samples.size());
      StepResult r;
      try {
        r = session.train_step(batch.arrays);
      } catch (const NonFiniteLoss& e) {
        bar.finish();
        std::cerr << "onnxtrain: training stopped: " << e.what() << "\n";
        if (fs::exists(checkpoint)) std::cerr << "the last good checkpoint is " << checkpoint.string() << "\n";
        std::cerr << "try a lower --lr (now " << options.optimizer.lr << ") or --clip-grad-norm\n";
        return 1;
      }
      ++p.micro;
      p.epoch_loss_sum += r.loss * static_cast<double>(n);
      p.epoch_samples += n;
      p.step_loss_sum += r.loss;
      ++p.step_micro;
      if (r.updated || p.micro == config.micro_batches) {
        if (!r.updated) r = session.optimizer_step();  // leftover micro-batches at the very end
        MetricsRow row{.step = r.step, .epoch = epoch + 1, .lr = r.lr, .loss = p.step_loss_sum / static_cast<double>(p.step_micro)};
        p.step_loss_sum = 0;
        p.step_micro = 0;
        if (held) write_row(*held);
        held = row;
      }
      bar.update(p.micro - epoch * bpe, p.epoch_loss_sum / static_cast<double>(p.epoch_samples), p.epoch_samples);
      if (interrupt.requested()) {
        if (held) write_row(*held);
        bar.finish("interrupted");
        save_checkpoint();
        std::cerr << "interrupted at step " << session.step() << "; checkpoint written to " << checkpoint.string() << "\n"
                  << resume_hint << "\n";
        return interrupt.exit_code();
      }
    }
    // End of an epoch: validate, record, plot, save.
    const double train_loss = p.epoch_samples ? p.epoch_loss_sum / static_cast<double>(p.epoch_samples) : std::nan("");
    p.train_loss.push_back(train_loss);
    p.epoch_loss_sum = 0;
    p.epoch_samples = 0;
    std::string extra;
    double score = train_loss;  // without validation data the best model is the lowest training loss
    bool higher_better = false;
    if (val) {
      last_eval = evaluate(
          [&](const std::map<std::string, Tensor>& b) {
            EvalResult e = session.eval_step(b, {config.output});
            return std::make_pair(e.loss, e.outputs.at(config.output));
          },
          val, loss_only ? std::vector<std::string>{} : std::vector<std::string>{config.metric}, config.label,
          classification);
      p.val_loss.push_back(last_eval->loss);
      if (held) held->extra["val_loss"] = last_eval->loss;
      extra = "val_loss " + fixed(last_eval->loss);
      score = last_eval->loss;
      if (!loss_only) {
        const double m = last_eval->metrics.begin()->second;
        p.val_metric.push_back(m);
        if (held) held->extra["val_" + config.metric] = m;
        extra += "  val_" + config.metric + " " + fixed(m);
        score = m;
        higher_better = metric_higher_better;
      }
    }
    if (held) write_row(*held);
    bar.finish(extra);
    write_plot(dir / "results.svg", p, config.metric);
    model.save_inference((dir / "last.onnx").string());
    const bool improved = std::isnan(p.best) || (higher_better ? score > p.best : score < p.best);
    if (improved) {
      p.best = score;
      p.bad_epochs = 0;
      model.save_inference((dir / "best.onnx").string());
    } else {
      ++p.bad_epochs;
    }
    save_checkpoint();
    if (config.patience > 0 && p.bad_epochs >= config.patience && p.micro < config.micro_batches) {
      if (!config.quiet)
        std::cerr << "early stopping: no improvement in " << p.bad_epochs << " epochs (best " << fixed(p.best) << ")\n";
      break;
    }
  }
  if (last_eval && last_eval->confusion) {
    write_file_atomically(dir / "confusion_matrix.csv", confusion_matrix_csv(*last_eval->confusion));
    write_file_atomically(dir / "confusion_matrix.svg", confusion_matrix_svg(*last_eval->confusion));
    write_file_atomically(dir / "class_report.csv", class_report_csv(*last_eval->confusion));
  }
  if (!config.out.empty()) model.save_inference(config.out);
  if (!config.quiet) {
    std::cout << "results in " << dir.string() << " (last.onnx, best.onnx, metrics.csv, results.svg, checkpoint.npz)\n";
    if (!config.out.empty()) std::cout << "wrote " << config.out << "\n";
  }
  return 0;
}

}  // namespace onnxtrain::cli
