// TrainingSession evaluation (loss and outputs with evaluation semantics) and export of the
// trained inference model.
#include <algorithm>

#include "graph/loss.h"
#include "graph/passes/inference_mode.h"
#include "src/training_session_impl.h"

namespace onnxtrain {

std::unique_ptr<graph::Graph> TrainingSession::Impl::build_eval_graph(std::string& loss_name,
                                                                     graph::LossParts* parts) const {
  auto g = model->graph().clone();
  graph::to_inference_mode(*g);
  graph::Value* loss = graph::attach_loss(*g, options.loss, model->metadata());
  g->outputs.push_back(loss);
  loss_name = loss->name;
  if (parts) *parts = graph::loss_parts(*loss, options.loss);
  return g;
}

EvalResult TrainingSession::eval_step(const std::map<std::string, Tensor>& feeds, const std::vector<std::string>& outputs) {
  Impl& s = *impl_;
  if (!s.eval_graph) s.eval_graph = s.build_eval_graph(s.eval_loss, &s.eval_parts);
  std::vector<std::string> names = outputs;
  if (names.empty())
    for (const auto& o : s.model->outputs()) names.push_back(o.name);
  for (const auto& name : names) {
    const graph::Value* v = s.eval_graph->find_value(name);
    if (!v || v->name == s.eval_loss) throw DataError("eval_step: the model has no value named '" + name + "'");
  }
  if (!s.eval_executor) s.eval_executor = std::make_unique<Executor>(*s.eval_graph, ExecutorOptions{s.options.seed});
  std::vector<std::string> fetches{s.eval_loss};
  fetches.insert(fetches.end(), names.begin(), names.end());
  if (!s.eval_parts.value.empty()) fetches.push_back(s.eval_parts.value);
  for (const auto& [name, t] : feeds) {
    const graph::Value* v = s.eval_graph->find_value(name);
    if (!v || v->kind != graph::ValueKind::Input) throw DataError("the evaluation graph has no input named '" + name + "'");
  }
  std::unordered_map<std::string, Tensor> feed_map(feeds.begin(), feeds.end());
  auto values = s.eval_executor->run(feed_map, fetches);
  EvalResult result;
  result.loss = values[0].as_double().at(0);
  if (!s.eval_parts.value.empty()) result.loss_parts = named_loss_parts(s.eval_parts, values.back());
  for (size_t i = 0; i < names.size(); ++i) result.outputs[names[i]] = std::move(values[i + 1]);
  return result;
}

void TrainingSession::export_inference_model(const std::string& path, const std::vector<std::string>& outputs) const {
  impl_->model->save_inference(path, outputs);
}

}  // namespace onnxtrain
