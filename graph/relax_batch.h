#pragma once
// A model exported with a fixed batch (torch.onnx.export without dynamic_axes writes
// [1, 3, 224, 224] inputs and `Reshape(x, [1, -1])` after pooling) is made to take any batch:
// the inputs' and outputs' leading dim becomes a symbol and the Reshape shape constants that
// carry the batch copy it from their input (0) instead. ONNX shape inference with the
// symbolic batch proves the result: every output that had the fixed batch must follow the
// symbol, or nothing is changed and `blocker` names the node that bakes the batch in.
#include <cstdint>
#include <string>
#include <vector>

#include "graph/onnx_fwd.h"

namespace onnxtrain::graph {

struct BatchRelaxation {
  int64_t fixed_batch = 0;             // the inputs' fixed leading dim; 0 when none is fixed
  bool relaxed = false;                // the model was rewritten
  std::string symbol;                  // the batch dim's name after relaxing
  std::vector<std::string> inputs;     // inputs whose leading dim was relaxed
  std::vector<std::string> reshapes;   // Reshape nodes whose shape now copies the batch
  std::string blocker;                 // why a fixed batch stays fixed (names the node)
};

// Rewrites `model` in place when the relaxation is proven safe; leaves it untouched
// otherwise. Models whose inputs have no fixed leading dim are returned as they are.
BatchRelaxation relax_fixed_batch(onnx::ModelProto& model);

}  // namespace onnxtrain::graph
