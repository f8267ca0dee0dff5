#pragma once
// ONNX TrainingInfoProto: a training algorithm stored next to the inference graph. The
// algorithm graph reads the main graph's initializers by name; after each run its outputs
// named in update_binding replace those initializers.
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "graph/ir.h"
#include "graph/onnx_fwd.h"

namespace onnxtrain::graph {

// Replaces model's training_info with one entry whose algorithm is `algorithm` (its
// initializers that the main graph also has are dropped: the main graph's are the ones
// read and updated) and whose update_binding is `update_binding` (initializer -> output).
// Merges the algorithm's opsets into the model's; throws ModelError when the algorithm
// needs a newer default-domain opset than the model declares.
void set_training_info(onnx::ModelProto& model, const Graph& algorithm,
                       const std::vector<std::pair<std::string, std::string>>& update_binding);

// The checks ONNX 1.12's checker skips: every training_info graph is a valid graph in the
// scope of the main graph's initializers (ONNX checker, shape inference and onnxtrain
// kernels for every op), and every binding maps an initializer of the main graph, at most
// once, to an output of the right graph with the same element type and shape. `prepare`
// runs on each imported graph (the passes a loaded model gets; they live above this
// layer). Throws ModelError naming the entry, the binding or the node.
void validate_training_info(const onnx::ModelProto& model, const std::string& source,
                            const std::function<void(Graph&)>& prepare);

}  // namespace onnxtrain::graph
