#pragma once
// Which nodes of a graph onnxtrain cannot run or cannot differentiate: the registry's
// verdict on a graph, asked by the executor before planning and by Model::info.
#include <string>
#include <vector>

#include "graph/ir.h"

namespace onnxtrain::graph {

// The nodes of one (domain, op_type, opset) that lack something.
struct MissingOp {
  std::string domain, op_type;
  int opset = 0;
  bool other_versions_known = false;
  std::vector<std::string> nodes;
  // "domain.Op (opset N)", the op's name in reports.
  std::string label() const;
};

// Ops without a kernel. Empty when everything can run.
std::vector<MissingOp> find_missing_kernels(const Graph& graph);
// Ops with a kernel but no gradient rule whose outputs include a float value (ops marked
// not differentiable excluded): training through them would fail.
std::vector<MissingOp> find_missing_gradients(const Graph& graph);
// Throws UnsupportedOp listing every op without a kernel with its nodes and count.
void require_kernels(const Graph& graph, const std::string& source);

}  // namespace onnxtrain::graph
