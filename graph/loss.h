#pragma once
// Attaches the loss of LossOptions (include/onnxtrain/training.h) to a model graph as ONNX
// nodes that autodiff differentiates with the existing gradient rules: the built-in kinds
// add their target as a new graph input; "output" uses a model output as the loss;
// "custom" merges a second ONNX model.
#include "graph/ir.h"
#include "onnxtrain/training.h"

namespace onnxtrain::graph {

// Returns the loss value (a float scalar). Throws DataError for invalid options and
// ModelError when the model (or the custom loss model) does not fit them.
Value* attach_loss(Graph& graph, const LossOptions& options);

}  // namespace onnxtrain::graph
