#pragma once
// The ONNX training-preview Gradient op as a graph pass: the importer keeps such nodes as
// they are, this pass replaces them by backward nodes (run by Model's loaders after import).
#include "graph/ir.h"

namespace onnxtrain::graph {

// Replaces every ai.onnx.preview.training Gradient node (attributes xs, y) by the backward
// nodes that compute d y / d xs (the seed is ones, so a non-scalar y means d sum(y) / d xs).
void expand_gradient_ops(Graph& graph);

}  // namespace onnxtrain::graph
