#pragma once
// TensorProto <-> Tensor, including tensors stored beside the model (external data).
#include <string>

#include "graph/onnx_fwd.h"
#include "onnxtrain/tensor.h"

namespace onnxtrain::graph {

// `model_dir` resolves external data locations, which must lie inside it; empty (a model
// from memory) refuses external data.
Tensor tensor_from_proto(const onnx::TensorProto& proto, const std::string& model_dir = {});
void tensor_to_proto(const Tensor& tensor, onnx::TensorProto& proto);

}  // namespace onnxtrain::graph
