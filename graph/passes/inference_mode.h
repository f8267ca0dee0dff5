#pragma once
// Training vs evaluation semantics of BatchNormalization and Dropout.
// PyTorch's TRAINING export writes training-form nodes (BatchNormalization on batch
// statistics with running-statistic outputs, Dropout with training_mode = true); its EVAL
// export writes inference-form nodes. These passes move a graph between the two.
#include "graph/ir.h"
#include "graph/onnx_fwd.h"

namespace onnxtrain::graph {

struct InferenceModeOptions {
  bool batchnorm = true;
  bool dropout = true;
};

// Rewrites training-mode BatchNormalization and Dropout nodes in place:
//   BatchNormalization: opset >= 14 training_mode = 0; opsets 7..13 drop the training
//   outputs; opset < 7 is_test = 1. Dropout: opset >= 12 training_mode input becomes a
//   constant false; opset < 7 is_test = 1 (opsets 7..11 never train).
// Throws ModelError naming the node when a training-only output (running statistics,
// saved statistics) is read by another node or is a graph output. Returns the number of
// nodes changed.
int to_inference_mode(Graph& graph, InferenceModeOptions options = {});

// Puts every inference-form BatchNormalization (opset >= 7) in training mode: batch
// statistics, with running-mean/variance outputs (new values) that a training session
// writes back. Returns the number of nodes changed.
int batchnorm_to_training_mode(Graph& graph);

// The same rewrite as to_inference_mode on a ModelProto's main graph (for exporting a
// model trained from a TRAINING export as an inference model); training-only outputs that
// nothing reads are removed and so are initializers and Constant nodes left unused by the
// rewrite. Returns the number of nodes changed.
int to_inference_form(onnx::ModelProto& model);

}  // namespace onnxtrain::graph
