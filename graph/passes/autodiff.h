#pragma once
// Reverse-mode autodiff as a graph pass: appends the backward nodes of `loss` with respect
// to `wrt` to the graph and adds each gradient as a graph output named "<value>_grad".
#include <map>
#include <string>
#include <vector>

#include "graph/ir.h"

namespace onnxtrain::graph {

struct GradientGraph {
  // Names of the gradient values; each is also added as a graph output.
  std::map<std::string, std::string> gradient_of;  // wrt value -> its gradient value
  size_t backward_nodes = 0;
};

// The loss must be a float scalar (or single-element tensor). Values in `wrt` that the
// loss does not depend on get no gradient output and are listed in a warning.
// Throws UnsupportedOp naming the node, op and opset when a float op on the path from a
// wrt value to the loss has no gradient rule.
GradientGraph build_gradient_graph(Graph& graph, const std::string& loss, const std::vector<std::string>& wrt,
                                   bool warn_unreachable = true);

// The backward pass proper, through `forward` (nodes in topological order): appends the
// backward nodes and returns wrt name -> accumulated gradient value (absent when the loss
// does not depend on it). The seed is ones, so a non-scalar loss means d sum(loss).
// backward_nodes receives the number of nodes added.
std::map<std::string, Value*> differentiate(Graph& graph, const std::vector<Node*>& forward, Value& loss,
                                            const std::vector<std::string>& wrt, size_t& backward_nodes);

}  // namespace onnxtrain::graph
