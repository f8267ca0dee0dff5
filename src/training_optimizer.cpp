// The update run of a TrainingSession: the gradients are fed to the training graph's
// optimizer stage (clipping and the fused update nodes, graph/passes/optimizer.cpp) with
// the scheduled learning rate and the step count.
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

}  // namespace onnxtrain
