#pragma once
// Evaluation semantics for a graph exported in training form (PyTorch's TRAINING export):
// BatchNormalization uses its running statistics and Dropout passes its input through.
#include "graph/ir.h"

namespace onnxtrain::graph {

// Rewrites training-mode BatchNormalization and Dropout nodes in place:
//   BatchNormalization: opset >= 14 training_mode = 0; opsets 7..13 drop the training
//   outputs; opset < 7 is_test = 1. Dropout: opset >= 12 training_mode input becomes a
//   constant false; opset < 7 is_test = 1 (opsets 7..11 never train).
// Throws ModelError naming the node when a training-only output (running statistics,
// saved statistics) is read by another node or is a graph output. Returns the number of
// nodes changed.
int to_inference_mode(Graph& graph);

}  // namespace onnxtrain::graph
