#include "graph/tensor_proto.h"

#include <onnx/onnx_pb.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "onnxtrain/memory_limit.h"

namespace onnxtrain::graph {

namespace {

std::string read_external(const onnx::TensorProto& proto, const std::string& model_dir,
                          size_t expected_bytes) {
  const std::string what = "tensor '" + proto.name() + "'";
  auto number = [&](const std::string& key, const std::string& text) {
    size_t end = 0;
    int64_t v = -1;
    try {
      v = std::stoll(text, &end);
    } catch (const std::exception&) {
      end = 0;
    }
    if (end == 0 || end != text.size() || v < 0)
      throw ModelError(what + ": external data " + key + " '" + text + "' is not a non-negative integer");
    return v;
  };
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& entry : proto.external_data()) {
    if (entry.key() == "location") location = entry.value();
    else if (entry.key() == "offset") offset = number("offset", entry.value());
    else if (entry.key() == "length") length = number("length", entry.value());
  }
  if (location.empty()) throw ModelError(what + ": external data without a location");
  // A model read from memory has no directory its external data could safely come from.
  if (model_dir.empty())
    throw ModelError(what + ": external data ('" + location + "') needs the model loaded from a file, beside its data");
  std::filesystem::path rel(location);
  bool escapes = rel.is_absolute();
  for (const auto& part : rel) escapes = escapes || part == "..";
  if (escapes)
    throw ModelError(what + ": external data location '" + location +
                     "' must be a relative path inside the model's directory");
  const auto dir = std::filesystem::weakly_canonical(model_dir.empty() ? std::filesystem::path(".") : std::filesystem::path(model_dir));
  // Symbolic links must not lead out of the directory either.
  const auto path = std::filesystem::weakly_canonical(dir / rel);
  const auto inside = std::filesystem::relative(path, dir);
  if (inside.empty() || *inside.begin() == "..")
    throw ModelError(what + ": external data location '" + location + "' resolves to " + path.string() +
                     ", outside the model's directory " + dir.string());
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ModelError(what + ": cannot open external data file " + path.string());
  if (length < 0) length = static_cast<int64_t>(expected_bytes);
  if (static_cast<size_t>(length) != expected_bytes)
    throw ModelError(what + ": external data length " + std::to_string(length) + " does not match " +
                     std::to_string(expected_bytes) + " bytes for its shape");
  std::error_code ec;
  const uintmax_t file_bytes = std::filesystem::file_size(path, ec);
  if (ec || static_cast<uint64_t>(offset) > file_bytes || expected_bytes > file_bytes - static_cast<uint64_t>(offset))
    throw ModelError(what + ": external data file " + path.string() + " is shorter than offset " +
                     std::to_string(offset) + " + " + std::to_string(expected_bytes) + " bytes");
  std::string bytes(expected_bytes, '\0');
  in.seekg(offset);
  in.read(bytes.data(), static_cast<std::streamsize>(expected_bytes));
  if (in.gcount() != static_cast<std::streamsize>(expected_bytes))
    throw ModelError(what + ": external data file " + path.string() + " is shorter than offset " +
                     std::to_string(offset) + " + " + std::to_string(expected_bytes) + " bytes");
  return bytes;
}

template <typename Src, typename Dst>
void copy_field(const google::protobuf::RepeatedField<Src>& field, Dst* dst, int64_t n,
                const std::string& name) {
  if (field.size() != n)
    throw ModelError("tensor '" + name + "' holds " + std::to_string(field.size()) +
                     " values for " + std::to_string(n) + " elements");
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<Dst>(field.Get(static_cast<int>(i)));
}

// How many values the typed field that ONNX assigns to `dtype` holds.
size_t typed_values(const onnx::TensorProto& proto, DType dtype) {
  switch (dtype) {
    case DType::Float: return static_cast<size_t>(proto.float_data_size());
    case DType::Double: return static_cast<size_t>(proto.double_data_size());
    case DType::Int64: return static_cast<size_t>(proto.int64_data_size());
    case DType::UInt32:
    case DType::UInt64: return static_cast<size_t>(proto.uint64_data_size());
    default: return static_cast<size_t>(proto.int32_data_size());  // every narrower type, f16 and bf16 as bits
  }
}

}  // namespace

size_t check_tensor_proto(const onnx::TensorProto& proto) {
  const DType dtype = static_cast<DType>(proto.data_type());
  const Shape shape(proto.dims().begin(), proto.dims().end());
  const std::string what = "tensor '" + proto.name() + "'";
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || (d > 0 && n > (int64_t{1} << 40) / d))
      throw ModelError(what + " has an invalid shape " + shape_str(shape));
    n *= d;
  }
  if (dtype == DType::String) {
    if (proto.data_location() != onnx::TensorProto::EXTERNAL && proto.string_data_size() != n)
      throw ModelError(what + " declares " + std::to_string(n) + " strings but stores " +
                       std::to_string(proto.string_data_size()));
    return 0;
  }
  size_t element = 0;
  try {
    element = dtype_size(dtype);
  } catch (const DataError&) {
    throw UnsupportedOp(what + " has unsupported element type " + dtype_name(dtype));
  }
  const size_t bytes = static_cast<size_t>(n) * element;
  if (proto.data_location() == onnx::TensorProto::EXTERNAL) return bytes;  // read_external checks it
  const size_t stored = proto.has_raw_data() ? proto.raw_data().size() : typed_values(proto, dtype) * element;
  if (stored != bytes)
    throw ModelError(what + " declares " + dtype_name(dtype) + shape_str(shape) + " (" + std::to_string(bytes) +
                     " bytes) but stores " + std::to_string(stored) + " bytes");
  return bytes;
}

static void check_graph_tensors(const onnx::GraphProto& graph);

static void check_node_tensors(const onnx::NodeProto& node) {
  for (const auto& a : node.attribute()) {
    if (a.has_t()) check_tensor_proto(a.t());
    for (const auto& t : a.tensors()) check_tensor_proto(t);
    if (a.has_sparse_tensor()) {
      check_tensor_proto(a.sparse_tensor().values());
      check_tensor_proto(a.sparse_tensor().indices());
    }
    if (a.has_g()) check_graph_tensors(a.g());
    for (const auto& g : a.graphs()) check_graph_tensors(g);
  }
}

static void check_graph_tensors(const onnx::GraphProto& graph) {
  for (const auto& t : graph.initializer()) check_tensor_proto(t);
  for (const auto& s : graph.sparse_initializer()) {
    check_tensor_proto(s.values());
    check_tensor_proto(s.indices());
  }
  for (const auto& node : graph.node()) check_node_tensors(node);
}

void check_stored_tensors(const onnx::ModelProto& model) {
  check_graph_tensors(model.graph());
  for (const auto& info : model.training_info()) {
    check_graph_tensors(info.initialization());
    check_graph_tensors(info.algorithm());
  }
  for (const auto& f : model.functions())
    for (const auto& node : f.node()) check_node_tensors(node);
}

Tensor tensor_from_proto(const onnx::TensorProto& proto, const std::string& model_dir) {
  const DType dtype = static_cast<DType>(proto.data_type());
  const Shape shape(proto.dims().begin(), proto.dims().end());
  const std::string what = "tensor '" + proto.name() + "'";
  if (dtype == DType::String)
    throw UnsupportedOp(what + " holds strings, which onnxtrain does not support");
  // Validate the declared size against the stored data before allocating anything, so a
  // corrupt or non-tensor proto cannot ask for terabytes.
  const size_t bytes = check_tensor_proto(proto);
  const int64_t n = shape_numel(shape);
  if (auto problem = memory_limit_problem(bytes, what + " (" + dtype_name(dtype) + shape_str(shape) + ")"); !problem.empty())
    throw ModelError(problem);
  Tensor t(dtype, shape);
  if (proto.data_location() == onnx::TensorProto::EXTERNAL) {
    std::string raw = read_external(proto, model_dir, bytes);
    std::memcpy(t.raw(), raw.data(), bytes);
    return t;
  }
  if (proto.has_raw_data()) {
    if (proto.raw_data().size() != bytes)
      throw ModelError("tensor '" + proto.name() + "' has " + std::to_string(proto.raw_data().size()) +
                       " raw bytes, its shape " + shape_str(shape) + " needs " + std::to_string(bytes));
    if (bytes) std::memcpy(t.raw(), proto.raw_data().data(), bytes);
    return t;
  }
  const std::string& name = proto.name();
  switch (dtype) {
    case DType::Float: copy_field(proto.float_data(), t.data<float>(), n, name); break;
    case DType::Double: copy_field(proto.double_data(), t.data<double>(), n, name); break;
    case DType::Int64: copy_field(proto.int64_data(), t.data<int64_t>(), n, name); break;
    case DType::UInt32: copy_field(proto.uint64_data(), t.data<uint32_t>(), n, name); break;
    case DType::UInt64: copy_field(proto.uint64_data(), t.data<uint64_t>(), n, name); break;
    case DType::Int32: copy_field(proto.int32_data(), t.data<int32_t>(), n, name); break;
    case DType::Int16: copy_field(proto.int32_data(), t.data<int16_t>(), n, name); break;
    case DType::Int8: copy_field(proto.int32_data(), t.data<int8_t>(), n, name); break;
    case DType::UInt8: copy_field(proto.int32_data(), t.data<uint8_t>(), n, name); break;
    case DType::UInt16: copy_field(proto.int32_data(), t.data<uint16_t>(), n, name); break;
    case DType::Bool: copy_field(proto.int32_data(), t.data<bool>(), n, name); break;
    case DType::Float16:
    case DType::BFloat16: {
      // Stored as the raw 16-bit pattern in int32_data.
      auto* dst = static_cast<uint16_t*>(t.raw());
      copy_field(proto.int32_data(), dst, n, name);
      break;
    }
    default:
      throw UnsupportedOp("tensor '" + name + "' has unsupported element type " + dtype_name(dtype));
  }
  return t;
}

void tensor_to_proto(const Tensor& tensor, onnx::TensorProto& proto) {
  proto.set_data_type(static_cast<int32_t>(tensor.dtype()));
  proto.clear_dims();
  for (int64_t d : tensor.shape()) proto.add_dims(d);
  proto.clear_float_data();
  proto.clear_double_data();
  proto.clear_int32_data();
  proto.clear_int64_data();
  proto.clear_uint64_data();
  proto.clear_external_data();
  proto.set_data_location(onnx::TensorProto::DEFAULT);
  proto.set_raw_data(tensor.raw(), tensor.nbytes());
}

}  // namespace onnxtrain::graph
