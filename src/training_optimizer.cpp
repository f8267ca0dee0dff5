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
  // The previous step's feeds and scalar inputs are refilled, so a steady step allocates
  // nothing here.
  if (!lr_input.defined()) lr_input = Tensor::scalar<double>(0);
  if (!step_input.defined()) step_input = Tensor::scalar<int64_t>(0);
  lr_input.data<double>()[0] = result.lr;
  step_input.data<int64_t>()[0] = step;
  if (update_feeds.size() != trainable.size() + 2) {
    update_feeds.clear();
    update_feeds[stage.learning_rate];
    update_feeds[stage.step];
    for (size_t i = 0; i < trainable.size(); ++i) update_feeds[gradient_values[i]];
  }
  update_feeds.at(stage.learning_rate) = lr_input;
  update_feeds.at(stage.step) = step_input;
  for (size_t i = 0; i < trainable.size(); ++i) {
    update_feeds.at(gradient_values[i]) = gradients[i];
    gradients[i].reset();
  }
  std::vector<Tensor>& values = update_values;
  executor->run(update_feeds, update_fetches, values);
  for (auto& [name, t] : update_feeds) t.reset();  // gradients go back to the pool
  const size_t first = stage.grad_norm.empty() ? 0 : 1;
  if (first) result.grad_norm = first_value(values[0]);
  write_back(*graph, update_binding, std::span<const Tensor>(values).subspan(first));
  for (Tensor& t : values) t.reset();
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
