#pragma once
// Forward declarations of the ONNX protobuf types, so that only the files that read or
// write ONNX protos pay for the generated headers.
namespace onnx {
class ModelProto;
class GraphProto;
class TensorProto;
class NodeProto;
}  // namespace onnx
