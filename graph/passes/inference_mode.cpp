#include "graph/passes/inference_mode.h"

#include <algorithm>
#include <unordered_set>

#include "onnxtrain/errors.h"

namespace onnxtrain::graph {

namespace {

bool batchnorm_trains(const Node& n) {
  if (n.opset < 7) return n.attr_int("is_test", 0) == 0;
  if (n.opset < 14)
    return std::any_of(n.outputs.begin() + std::min<size_t>(1, n.outputs.size()), n.outputs.end(),
                       [](const Value* v) { return v != nullptr; });
  return n.attr_int("training_mode", 0) != 0;
}

}  // namespace

int to_inference_mode(Graph& graph) {
  auto uses = graph.uses();
  std::unordered_set<const Value*> graph_outputs(graph.outputs.begin(), graph.outputs.end());
  auto drop_outputs_from = [&](Node& n, size_t first) {
    for (size_t i = first; i < n.outputs.size(); ++i) {
      Value* v = n.outputs[i];
      if (!v) continue;
      if (uses.count(v) || graph_outputs.count(v))
        throw ModelError(n.describe() + ": its training output '" + v->name +
                         "' is used, so the node cannot run in inference mode");
      v->producer = nullptr;
      n.outputs[i] = nullptr;
    }
    while (n.outputs.size() > first && !n.outputs.back()) n.outputs.pop_back();
  };
  int changed = 0;
  Value* false_value = nullptr;
  for (const auto& node : graph.nodes()) {
    Node& n = *node;
    if (!n.domain.empty()) continue;
    if (n.op_type == "BatchNormalization" && batchnorm_trains(n)) {
      if (n.opset < 7) n.attributes["is_test"] = int64_t{1};
      else if (n.opset >= 14) n.attributes["training_mode"] = int64_t{0};
      drop_outputs_from(n, 1);
      ++changed;
    } else if (n.op_type == "Dropout") {
      if (n.opset < 7 && n.attr_int("is_test", 0) == 0) {
        n.attributes["is_test"] = int64_t{1};
        ++changed;
      } else if (n.opset >= 12 && n.has_input(2)) {
        if (!false_value) false_value = graph.add_constant(graph.unique_name("inference_mode_false"), Tensor::scalar<bool>(false));
        n.inputs[2] = false_value;
        ++changed;
      }
    }
  }
  return changed;
}

}  // namespace onnxtrain::graph
