#include "graph/passes/autocast.h"

#include <string_view>

namespace onnxtrain::graph {

bool autocast_eligible(const Node& node) {
  const std::string_view op = node.op_type;
  if (node.domain == kOnnxDomain) return op == "Conv" || op == "ConvTranspose" || op == "MatMul" || op == "Gemm";
  if (node.domain == kTrainingDomain) return op == "ConvGrad" || op == "ConvTransposeGrad" || op == "MatMulGrad";
  return false;
}

int mark_bf16_compute(Graph& graph, const std::function<bool(const Node&)>& in_scope) {
  int marked = 0;
  for (const auto& n : graph.nodes()) {
    if (!autocast_eligible(*n) || !in_scope(*n)) continue;
    n->attributes[kComputeTypeAttr] = std::string("bf16");
    ++marked;
  }
  return marked;
}

int mark_direct_conv_gradients(Graph& graph) {
  int marked = 0;
  for (const auto& n : graph.nodes()) {
    if (n->domain == kTrainingDomain && n->op_type == "ConvGrad") {
      n->attributes[kConvAlgorithmAttr] = std::string("direct");
      ++marked;
    }
  }
  return marked;
}

}  // namespace onnxtrain::graph
