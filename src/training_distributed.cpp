// TrainingSession across ranks: rank 0's state broadcast once, then gradients summed in
// buckets (src/gradient_buckets.h) weighted so that N ranks train like one process with
// their batches joined.
#include <cmath>

#include "onnxtrain/distributed.h"
#include "src/training_session_impl.h"

namespace onnxtrain {

std::string non_finite_elsewhere(int64_t step) {
  return "the loss of another rank is not finite at step " + std::to_string(step) +
         "; parameters were not updated (try a lower learning rate)";
}

namespace {

class WorldSums final : public ops::Collective {
 public:
  explicit WorldSums(Distributed& world) : world_(world) {}
  void allreduce_sum(double* values, int64_t count) override { world_.allreduce_sum(values, count); }

 private:
  Distributed& world_;
};

}  // namespace

void TrainingSession::set_distributed(Distributed& world) {
  Impl& s = *impl_;
  if (s.pending) throw DataError("set_distributed: " + std::to_string(s.pending) + " micro-batches are pending");
  s.world = &world;
  s.buckets.reset();
  s.executor->set_collective(nullptr);
  s.batch_statistics.reset();
  if (world.size() == 1) return;
  if (s.options.sync_batchnorm) {
    s.batch_statistics = std::make_unique<WorldSums>(world);
    s.executor->set_collective(s.batch_statistics.get());
  }
  // Everything training changes: parameters, running statistics, optimizer state (every
  // rank holds the same graph, so the initializers come in the same order).
  for (const graph::Value* v : s.graph->initializers())
    if (v->data && is_floating(v->dtype)) {
      Tensor shared = *v->data;  // the same storage
      world.broadcast(shared);
    }
  Tensor step = Tensor::scalar<int64_t>(s.step);
  world.broadcast(step);
  s.step = step.data<int64_t>()[0];
  std::vector<DType> dtypes;
  std::vector<int64_t> sizes;
  for (const auto& name : s.trainable) {
    const Tensor& p = *s.graph->value(name).data;
    dtypes.push_back(p.dtype());
    sizes.push_back(p.numel());
  }
  s.buckets = std::make_unique<GradientBuckets>(world, dtypes, sizes);
}

bool TrainingSession::Impl::finite_everywhere(double loss) const {
  const bool bad = !std::isfinite(loss);
  return !(distributed() ? world->any(bad) : bad);
}

double TrainingSession::Impl::run_backward_allreduced(const std::map<std::string, Tensor>& feeds,
                                                      std::vector<Tensor>& gradients) {
  // Mean reduction: rank r's gradient is a mean over its w_r samples, so it counts
  // w_r / sum(w) of the joined batch's; a summed loss adds up as it is.
  double scale = 1;
  if (options.loss.reduction != "sum") {
    const double w = batch_weight(feeds);
    double total = w;
    world->allreduce_sum(&total, 1);
    scale = w / total;
  }
  buckets->begin(scale);
  const size_t n = trainable.size();
  // Fetch 0 is the loss, then one gradient per parameter (backward_fetches).
  executor->set_fetch_hook([&](size_t f, const Tensor& value) {
    if (f >= 1 && f <= n) buckets->ready(f - 1, value);
  });
  double loss = 0;
  try {
    loss = run_backward(feeds, gradients);
  } catch (...) {
    executor->set_fetch_hook(nullptr);
    throw;
  }
  executor->set_fetch_hook(nullptr);
  buckets->finish(gradients);
  // A rank whose own loss is not finite throws in train_step (refuse_non_finite).
  if (!finite_everywhere(loss) && std::isfinite(loss)) throw NonFiniteLoss(non_finite_elsewhere(step + 1));
  return loss;
}

void TrainingSession::Impl::allreduce_accumulated() {
  // The accumulated gradients are sums of weight * gradient: summing them and the weights
  // over the ranks gives what one process accumulating every rank's batches would hold.
  buckets->begin(1);
  buckets->finish(accumulated);
  world->allreduce_sum(&pending_weight, 1);
}

}  // namespace onnxtrain
