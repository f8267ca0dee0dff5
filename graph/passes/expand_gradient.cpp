#include "graph/passes/expand_gradient.h"

#include "graph/passes/autodiff.h"
#include "onnxtrain/errors.h"

namespace onnxtrain::graph {

void expand_gradient_ops(Graph& graph) {
  std::vector<Node*> gradient_nodes;
  for (const auto& n : graph.nodes())
    if (n->domain == kPreviewTrainingDomain && n->op_type == "Gradient") gradient_nodes.push_back(n.get());
  for (Node* g : gradient_nodes) {
    auto xs = g->attr_strings("xs");
    std::string y = g->attr_string("y", "");
    if (xs.empty() || y.empty()) throw ModelError(g->describe() + ": attributes 'xs' and 'y' are required");
    if (g->outputs.size() != xs.size())
      throw ModelError(g->describe() + ": has " + std::to_string(g->outputs.size()) + " outputs for " +
                       std::to_string(xs.size()) + " values in 'xs'");
    std::vector<Node*> forward;
    for (const auto& n : graph.nodes())
      if (n->domain != kPreviewTrainingDomain || n->op_type != "Gradient") forward.push_back(n.get());
    size_t count = 0;
    auto grads = differentiate(graph, forward, graph.value(y), xs, count);
    std::vector<Value*> outputs = g->outputs;
    const std::string name = g->name;
    graph.remove_nodes({g});
    for (size_t i = 0; i < xs.size(); ++i) {
      if (!outputs[i]) continue;
      Value* source = grads.count(xs[i]) ? grads[xs[i]] : nullptr;
      if (!source) {
        // y does not depend on this x: its gradient is zero.
        graph.add_node("ZerosLike", {&graph.value(xs[i])}, {outputs[i]}, kTrainingDomain,
                       graph.unique_name(name + "_zeros"));
        continue;
      }
      graph.add_node("Identity", {source}, {outputs[i]}, kOnnxDomain, graph.unique_name(name + "_output"));
    }
  }
  if (!gradient_nodes.empty()) graph.topological_sort();
}

}  // namespace onnxtrain::graph
