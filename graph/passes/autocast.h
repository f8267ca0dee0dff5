#pragma once
// Mixed precision as a plan-time marking (TrainingOptions::precision "bf16"): like
// torch.autocast(cpu, bfloat16), but only on the ops where oneDNN's bf16 kernels pay —
// Conv, ConvTranspose, MatMul, Gemm and the nodes of their gradients (ConvGrad,
// ConvTransposeGrad, MatMulGrad, Gemm). The graph is unchanged otherwise: every value stays
// float32 and each marked kernel converts its inputs for its primitive (ops/dnnl_utils.h).
// The marker (kComputeTypeAttr) is per node, so two sessions of different precision share
// nothing, and the exporter leaves it out. The convolution algorithm
// (TrainingOptions::conv_algorithm) is marked the same way (kConvAlgorithmAttr).
#include <functional>

#include "graph/ir.h"

namespace onnxtrain::graph {

// Whether a node of this domain and type has a bf16 path.
bool autocast_eligible(const Node& node);

// Marks the eligible nodes for which `in_scope` holds (a session leaves out its loss);
// returns how many it marked.
int mark_bf16_compute(Graph& graph, const std::function<bool(const Node&)>& in_scope);

// TrainingOptions::conv_algorithm "direct": marks every ConvGrad node (kConvAlgorithmAttr)
// so its kernel keeps oneDNN's direct algorithm where it would take Winograd; returns how
// many it marked.
int mark_direct_conv_gradients(Graph& graph);

}  // namespace onnxtrain::graph
