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

// The bytes `proto` declares (element type x shape), after checking that the shape is valid
// and that its inline data (raw or the typed field) holds exactly that many; throws
// ModelError naming the tensor (UnsupportedOp for an element type without a fixed size,
// e.g. complex). Allocates nothing.
size_t check_tensor_proto(const onnx::TensorProto& proto);

// check_tensor_proto on every tensor stored in the model: initializers, tensor attributes
// (Constant values), subgraphs, training_info graphs and model functions. ONNX's checker
// does not compare stored data with dims, and its shape inference reads constants as
// stored (a short int64 raw_data overflows a buffer in onnx 1.12's data propagation), so
// this runs before any ONNX code sees the model.
void check_stored_tensors(const onnx::ModelProto& model);

}  // namespace onnxtrain::graph
