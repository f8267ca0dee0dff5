// The update run of a TrainingSession: the gradients are fed to the training graph's
// optimizer stage (clipping and the fused update nodes, graph/passes/optimizer.cpp) with
// the scheduled learning rate and the step count; the learning rate's schedule and its
// replacement (set_lr, set_schedule).
#include <cmath>

#include "src/training_session_impl.h"

namespace onnxtrain {

StepResult TrainingSession::Impl::apply_update(std::vector<Tensor>& gradients) {
  StepResult result;
  result.step = step + 1;
  result.lr = schedule->lr(step);
  std::unordered_map<std::string, Tensor> feeds{{stage.learning_rate, Tensor::scalar<double>(result.lr)},
                                                {stage.step, Tensor::scalar<int64_t>(step)}};
  for (size_t i = 0; i < trainable.size(); ++i) feeds[gradient_values[i]] = std::move(gradients[i]);
  auto values = executor->run(feeds, update_fetches);
  const size_t first = stage.grad_norm.empty() ? 0 : 1;
  if (first) result.grad_norm = values[0].as_double().at(0);
  write_back(*graph, update_binding, std::vector<Tensor>(values.begin() + first, values.end()));
  step = result.step;
  return result;
}

double TrainingSession::current_lr() const { return impl_->schedule->lr(impl_->step); }

void TrainingSession::set_lr(double lr) {
  if (!(lr > 0) || !std::isfinite(lr)) throw DataError("set_lr: the learning rate must be positive, got " + std::to_string(lr));
  TrainingOptions& o = impl_->options;
  // The update nodes hold each group's ratio to the base lr; the options (stored by
  // export_training_model) keep that ratio.
  for (auto& group : o.optimizer.groups)
    if (group.lr && o.optimizer.lr > 0) *group.lr *= lr / o.optimizer.lr;
  o.optimizer.lr = lr;
  o.schedule = {};
  impl_->schedule.emplace(o.schedule, lr, o.total_steps);
}

void TrainingSession::set_schedule(const ScheduleOptions& schedule, int64_t total_steps) {
  TrainingOptions& o = impl_->options;
  impl_->schedule.emplace(schedule, o.optimizer.lr, total_steps);  // validates
  o.schedule = schedule;
  o.total_steps = total_steps;
}

}  // namespace onnxtrain
