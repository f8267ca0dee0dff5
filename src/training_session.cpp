#include <onnx/onnx_pb.h>

#include <regex>

#include "graph/autodiff.h"
#include "graph/exporter.h"
#include "graph/loss.h"
#include "onnxtrain/training.h"
#include "src/executor.h"

namespace onnxtrain {

struct TrainingSession::Impl {
  Model* model = nullptr;
  TrainingOptions options;
  std::unique_ptr<graph::Graph> graph;  // model + loss + backward
  std::string loss;
  std::vector<std::string> trainable, gradient_values;
  int64_t trainable_elements = 0;
  size_t backward_nodes = 0;
  std::unique_ptr<Executor> executor;
};

TrainingSession::TrainingSession(Model& model, TrainingOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->model = &model;
  impl_->options = options;
  set_num_threads(options.threads);
  auto g = model.graph().clone();
  const size_t nodes_before = g->nodes().size();
  graph::LossSpec spec{options.loss.kind, options.loss.output, options.loss.target, options.loss.reduction,
                       options.loss.ignore_index};
  graph::Value* loss = graph::attach_loss(*g, spec);
  impl_->loss = loss->name;
  g->outputs.push_back(loss);

  std::optional<std::regex> keep, freeze;
  try {
    if (!options.trainable.empty()) keep.emplace(options.trainable, std::regex::ECMAScript);
    if (!options.freeze.empty()) freeze.emplace(options.freeze, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw DataError(std::string("invalid parameter regex: ") + e.what());
  }
  std::vector<std::string> candidates;
  for (const graph::Value* v : g->initializers()) {
    if (!is_floating(v->dtype)) continue;
    if (keep && !std::regex_search(v->name, *keep)) continue;
    if (freeze && std::regex_search(v->name, *freeze)) continue;
    candidates.push_back(v->name);
  }
  // Parameters the loss does not reach through differentiable inputs drop out here.
  auto grads = graph::build_gradient_graph(*g, loss->name, candidates, /*warn_unreachable=*/false);
  for (const auto& name : candidates) {
    auto it = grads.gradient_of.find(name);
    if (it == grads.gradient_of.end()) continue;
    impl_->trainable.push_back(name);
    impl_->gradient_values.push_back(it->second);
    impl_->trainable_elements += g->value(name).data->numel();
  }
  if (impl_->trainable.empty())
    throw DataError("no trainable parameter reaches the loss (check the trainable/freeze patterns)");
  impl_->backward_nodes = g->nodes().size() - nodes_before;
  std::vector<std::string> fetches{loss->name};
  fetches.insert(fetches.end(), impl_->gradient_values.begin(), impl_->gradient_values.end());
  impl_->graph = std::move(g);
  impl_->executor = std::make_unique<Executor>(*impl_->graph, fetches, ExecutorOptions{options.seed});
}

TrainingSession::~TrainingSession() = default;
TrainingSession::TrainingSession(TrainingSession&&) noexcept = default;

StepGradients TrainingSession::compute_gradients(const std::map<std::string, Tensor>& feeds) {
  for (const auto& [name, t] : feeds) {
    const graph::Value* v = impl_->graph->find_value(name);
    if (!v || v->kind != graph::ValueKind::Input)
      throw DataError("the training graph has no input named '" + name + "'");
  }
  std::unordered_map<std::string, Tensor> feed_map(feeds.begin(), feeds.end());
  auto values = impl_->executor->run(feed_map);
  StepGradients out;
  out.loss = values[0].as_double().at(0);
  for (size_t i = 0; i < impl_->trainable.size(); ++i) out.gradients[impl_->trainable[i]] = std::move(values[i + 1]);
  return out;
}

void TrainingSession::export_training_graph(const std::string& path) const {
  onnx::ModelProto proto;
  graph::export_graph(*impl_->graph, proto);
  graph::save_model_file(proto, path);
}

const std::string& TrainingSession::loss_name() const { return impl_->loss; }

const std::vector<std::string>& TrainingSession::trainable() const { return impl_->trainable; }
int64_t TrainingSession::trainable_elements() const { return impl_->trainable_elements; }
size_t TrainingSession::backward_nodes() const { return impl_->backward_nodes; }
size_t TrainingSession::peak_activation_bytes() const { return impl_->executor->pool().peak_bytes_in_use(); }

}  // namespace onnxtrain
