#pragma once
// Attaches the loss of LossOptions (include/onnxtrain/training.h) to a model graph as ONNX
// nodes that autodiff differentiates with the existing gradient rules: the built-in kinds
// add their target as a new graph input; "output" uses a model output as the loss;
// "custom" merges a second ONNX model.
#include <map>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "onnxtrain/training.h"

namespace onnxtrain::graph {

// Returns the loss value (a float scalar). Throws DataError for invalid options and
// ModelError when the model (or the custom loss model) does not fit them.
// `metadata`: the model's metadata_props (the detection losses read "anchors" there).
Value* attach_loss(Graph& graph, const LossOptions& options, const std::map<std::string, std::string>& metadata = {});

// The detection kinds (yolov5, yolov8), graph/loss_detection.cpp.
bool is_detection_loss(const std::string& kind);
Value* attach_detection_loss(Graph& graph, const LossOptions& options, const std::map<std::string, std::string>& metadata);
// The feed name of the loss's target: options.target, except that the detection kinds read
// "boxes" while it is left at its default ("label").
std::string loss_target(const LossOptions& options);
// metadata_props "anchors": a JSON list of numbers, or of one list per level, flattened;
// empty when the key is absent. Throws ModelError when it does not parse.
std::vector<double> anchors_from_metadata(const std::map<std::string, std::string>& metadata);

// The named parts of a loss: the value holding them ([k]) and their names; empty for kinds
// without parts. The detection kinds' parts are the loss node's second output.
struct LossParts {
  std::string value;
  std::vector<std::string> names;
};
LossParts loss_parts(const Value& loss, const LossOptions& options);

}  // namespace onnxtrain::graph
