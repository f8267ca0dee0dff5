// evaluate(): a model's loss and metrics over a whole dataset, in bounded batches.
#include <algorithm>
#include <cmath>
#include <functional>

#include "onnxtrain/errors.h"
#include "onnxtrain/trainer.h"
#include "src/batches.h"

namespace onnxtrain {

namespace {

// Returns a batch's loss (NaN when there is none) and the output the metrics read.
using Forward = std::function<std::pair<double, Tensor>(const std::map<std::string, Tensor>& batch)>;

Evaluation evaluate_with(const Forward& forward, DatasetPtr data, const EvaluateOptions& options) {
  if (options.batch_size <= 0)
    throw DataError("evaluate: batch_size must be positive, got " + std::to_string(options.batch_size));
  if (options.output.empty()) throw DataError("evaluate: name the model output the metrics read (output)");
  Evaluation result;
  std::vector<std::unique_ptr<Metric>> metrics;
  for (const auto& m : options.metrics) metrics.push_back(make_metric(m, options.ignore_index));
  std::optional<ConfusionMatrix> matrix;
  if (options.confusion) matrix.emplace(0, data->class_names(), options.ignore_index);
  MeanLoss loss;
  for_each_batch(data, options.batch_size, [&](Batch& batch, int64_t) {
    const int64_t take = static_cast<int64_t>(batch.samples.size());
    const auto label = batch.arrays.find(options.label);
    Tensor target = !options.label.empty() && label != batch.arrays.end() ? label->second : Tensor();
    auto [batch_loss, output] = forward(batch.arrays);
    ++result.batches;
    if (!std::isnan(batch_loss)) loss.add(batch_loss, take);
    for (auto& m : metrics) m->update(output, target);
    if (matrix) matrix->update(output, target);
  });
  result.loss = loss.count() ? loss.value() : std::numeric_limits<double>::quiet_NaN();
  result.loss_count = loss.count();
  for (auto& m : metrics) {
    result.metrics[m->name()] = m->value();
    result.metric_counts[m->name()] = m->count();
  }
  result.confusion = std::move(matrix);
  return result;
}

}  // namespace

void for_each_batch(const DatasetPtr& data, int64_t batch_size, const std::function<void(Batch&, int64_t first)>& fn) {
  DataLoader loader(data, LoaderOptions{.batch_size = batch_size, .shuffle = false, .drop_last = false, .augment = false});
  const int64_t n = data->size();
  for (int64_t done = 0; done < n;) {
    Batch batch = loader.next();
    // The unshuffled stream wraps around: keep only the samples not seen yet.
    const int64_t take = std::min<int64_t>(static_cast<int64_t>(batch.samples.size()), n - done);
    if (take < static_cast<int64_t>(batch.samples.size())) {
      batch.samples.resize(static_cast<size_t>(take));
      batch.arrays = data->batch(batch.samples, BatchOptions{.augment = false});
    }
    fn(batch, done);
    done += take;
  }
}

Evaluation evaluate(TrainingSession& session, DatasetPtr data, const EvaluateOptions& options) {
  return evaluate_with(
      [&](const std::map<std::string, Tensor>& batch) {
        EvalResult e = session.eval_step(batch, {options.output});
        return std::make_pair(e.loss, e.outputs.at(options.output));
      },
      std::move(data), options);
}

Evaluation evaluate(InferenceSession& session, DatasetPtr data, const EvaluateOptions& options) {
  return evaluate_with(
      [&](const std::map<std::string, Tensor>& batch) {
        std::map<std::string, Tensor> inputs = batch;
        inputs.erase(options.label);
        return std::make_pair(std::nan(""), session.run(inputs, {options.output}).at(options.output));
      },
      std::move(data), options);
}

}  // namespace onnxtrain
