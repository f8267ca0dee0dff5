#pragma once
// The ONNX library we build on (1.12) knows operator signatures up to opset 17. Models
// from newer exporters use opsets 18-21, where some operators changed signature (Reduce*
// take axes as an input, Split has num_outputs, Pad has axes, Resize has antialias/axes/
// keep_aspect_ratio_policy, pools gained ceil_mode/dilations) and some are new
// (GroupNormalization, Mish, Gelu, Bitwise*). This registry adds those signatures, with our
// own shape rules, in front of ONNX's, so ONNX's checker and shape inference run unchanged on
// such models. Operators whose newer versions only widened their type lists resolve to
// their opset-17 schema; changed operators we do not describe resolve to none, so the
// checker names them instead of validating them against an older signature.
#include <map>
#include <string>

#include "graph/onnx_fwd.h"

namespace onnx {
class ISchemaRegistry;
}

namespace onnxtrain::graph {

// The newest ai.onnx opset onnxtrain imports.
constexpr int kNewestOnnxOpset = 21;
// The newest ai.onnx opset the ONNX library itself describes.
constexpr int kLibraryOnnxOpset = 17;

const onnx::ISchemaRegistry& schema_registry();

// onnx::checker::check_model, against schema_registry() for opsets the library does not know.
// A model with external data is checked from its file (`model_path`, `model_dir` set).
void check_model(const onnx::ModelProto& model, const std::string& model_path, const std::string& model_dir);

// The operators of `model` whose signature at the model's opset is newer than the library's
// (op type -> the opset that introduced that signature): what `onnxtrain info` reports.
std::map<std::string, int> newer_signatures(const onnx::ModelProto& model);

// onnx::shape_inference::InferShapes (with data propagation, errors tolerated per node),
// against schema_registry().
void infer_shapes(onnx::ModelProto& model);

}  // namespace onnxtrain::graph
