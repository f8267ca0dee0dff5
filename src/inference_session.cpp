#include <map>

#include "graph/ir.h"
#include "graph/passes/inference_mode.h"
#include "onnxtrain/model.h"
#include "src/executor.h"

namespace onnxtrain {

struct InferenceSession::Impl {
  const Model* model = nullptr;
  std::unique_ptr<graph::Graph> inference_graph;  // set when inference_mode rewrote the graph
  SessionOptions options;
  std::unique_ptr<Executor> executor;
  size_t peak = 0;
};

InferenceSession::InferenceSession(const Model& model, SessionOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->model = &model;
  impl_->options = options;
  set_num_threads(options.threads);
  if (options.inference_mode) {
    // A structural copy sharing the model's tensors, so later initializer updates are seen.
    auto g = model.graph().clone();
    if (graph::to_inference_mode(*g) > 0) impl_->inference_graph = std::move(g);
  }
}

InferenceSession::~InferenceSession() = default;
InferenceSession::InferenceSession(InferenceSession&&) noexcept = default;

std::map<std::string, Tensor> InferenceSession::run(const std::map<std::string, Tensor>& feeds,
                                                    const std::vector<std::string>& outputs) {
  const graph::Graph& g = impl_->inference_graph ? *impl_->inference_graph : impl_->model->graph();
  std::vector<std::string> fetches = outputs;
  if (fetches.empty())
    for (const auto* v : g.outputs) fetches.push_back(v->name);
  for (const auto& [name, t] : feeds) {
    const graph::Value* v = g.find_value(name);
    if (!v || v->kind != graph::ValueKind::Input) {
      std::string known;
      for (const auto* in : g.inputs) known += (known.empty() ? "" : ", ") + in->name;
      throw DataError("the model has no input named '" + name + "' (its inputs: " + known + ")");
    }
  }
  auto& executor = impl_->executor;
  if (!executor) executor = std::make_unique<Executor>(g, ExecutorOptions{impl_->options.seed});
  std::unordered_map<std::string, Tensor> feed_map(feeds.begin(), feeds.end());
  auto values = executor->run(feed_map, fetches);
  impl_->peak = std::max(impl_->peak, executor->pool().peak_bytes_in_use());
  std::map<std::string, Tensor> result;
  for (size_t i = 0; i < fetches.size(); ++i) result[fetches[i]] = std::move(values[i]);
  return result;
}

size_t InferenceSession::peak_activation_bytes() const { return impl_->peak; }

}  // namespace onnxtrain
