#include "graph/passes/kernel_check.h"

#include <map>
#include <sstream>
#include <tuple>

#include "ops/registry.h"

namespace onnxtrain::graph {

namespace {

// Groups the nodes `lacking` picks by (domain, op_type, opset), in that order.
template <typename Lacking>
std::vector<MissingOp> group_nodes(const Graph& graph, Lacking lacking) {
  const auto& registry = ops::Registry::instance();
  std::map<std::tuple<std::string, std::string, int>, MissingOp> missing;
  for (const auto& n : graph.nodes()) {
    if (!lacking(registry, *n)) continue;
    auto& m = missing[{n->domain, n->op_type, n->opset}];
    m.domain = n->domain;
    m.op_type = n->op_type;
    m.opset = n->opset;
    m.other_versions_known = registry.knows(n->domain, n->op_type);
    m.nodes.push_back(n->name);
  }
  std::vector<MissingOp> out;
  for (auto& [key, m] : missing) out.push_back(std::move(m));
  return out;
}

}  // namespace

std::string MissingOp::label() const {
  return (domain.empty() ? "" : domain + ".") + op_type + " (opset " + std::to_string(opset) + ")";
}

std::vector<MissingOp> find_missing_kernels(const Graph& graph) {
  return group_nodes(graph, [](const ops::Registry& registry, const Node& n) {
    return registry.find(n.domain, n.op_type, n.opset) == nullptr;
  });
}

std::vector<MissingOp> find_missing_gradients(const Graph& graph) {
  return group_nodes(graph, [](const ops::Registry& registry, const Node& n) {
    const ops::OpDef* def = registry.find(n.domain, n.op_type, n.opset);
    if (!def || def->not_differentiable || def->gradient) return false;
    bool float_path = false;
    for (const auto* out : n.outputs) float_path = float_path || (out && is_floating(out->dtype));
    return float_path;
  });
}

void require_kernels(const Graph& graph, const std::string& source) {
  auto missing = find_missing_kernels(graph);
  if (missing.empty()) return;
  std::ostringstream msg;
  size_t total = 0;
  for (const auto& m : missing) total += m.nodes.size();
  msg << source << ": " << total << " node(s) use operators onnxtrain has no kernel for:";
  for (const auto& m : missing) {
    msg << "\n  " << (m.domain.empty() ? "" : m.domain + ".") << m.op_type << " (opset " << m.opset;
    if (m.other_versions_known) msg << "; other opset versions are supported";
    msg << "), " << m.nodes.size() << " node(s): ";
    for (size_t i = 0; i < m.nodes.size() && i < 8; ++i) msg << (i ? ", " : "") << m.nodes[i];
    if (m.nodes.size() > 8) msg << ", ...";
  }
  throw UnsupportedOp(msg.str());
}

}  // namespace onnxtrain::graph
