#include "graph/importer.h"

#include <onnx/defs/parser.h>
#include <onnx/onnx_pb.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "graph/onnx_schemas.h"
#include "graph/tensor_proto.h"

namespace onnxtrain::graph {

namespace {


std::string source_of(const ImportOptions& options) {
  return options.model_path.empty() ? std::string("model") : options.model_path;
}

std::optional<Dims> dims_of(const onnx::TypeProto& type) {
  if (!type.has_tensor_type() || !type.tensor_type().has_shape()) return std::nullopt;
  Dims dims;
  for (const auto& d : type.tensor_type().shape().dim()) {
    Dim dim;
    if (d.has_dim_value()) dim.value = d.dim_value();
    else if (d.has_dim_param()) dim.symbol = d.dim_param();
    dims.push_back(dim);
  }
  return dims;
}

DType dtype_of_type(const onnx::TypeProto& type) {
  return type.has_tensor_type() ? static_cast<DType>(type.tensor_type().elem_type()) : DType::Undefined;
}

AttributeValue attribute_from_proto(const onnx::AttributeProto& a, const onnx::NodeProto& node,
                                    const std::string& model_dir) {
  using A = onnx::AttributeProto;
  switch (a.type()) {
    case A::INT: return static_cast<int64_t>(a.i());
    case A::FLOAT: return a.f();
    case A::STRING: return a.s();
    case A::TENSOR: return tensor_from_proto(a.t(), model_dir);
    case A::INTS: return std::vector<int64_t>(a.ints().begin(), a.ints().end());
    case A::FLOATS: return std::vector<float>(a.floats().begin(), a.floats().end());
    case A::STRINGS: return std::vector<std::string>(a.strings().begin(), a.strings().end());
    case A::GRAPH:
    case A::GRAPHS:
      throw UnsupportedOp(node.op_type() + " '" + node.name() + "' has a subgraph attribute '" + a.name() +
                          "'; control flow (If/Loop/Scan) is not supported yet");
    default:
      throw UnsupportedOp(node.op_type() + " '" + node.name() + "': attribute '" + a.name() +
                          "' has a type onnxtrain does not support");
  }
}

// Constant's value in whichever attribute form the opset used.
Tensor constant_value(const onnx::NodeProto& node, const std::string& model_dir) {
  for (const auto& a : node.attribute()) {
    const std::string& k = a.name();
    if (k == "value") return tensor_from_proto(a.t(), model_dir);
    if (k == "value_float") return Tensor::scalar<float>(a.f());
    if (k == "value_int") return Tensor::scalar<int64_t>(a.i());
    if (k == "value_floats")
      return Tensor::from_vector<float>({a.floats_size()}, {a.floats().begin(), a.floats().end()});
    if (k == "value_ints")
      return Tensor::from_vector<int64_t>({a.ints_size()}, {a.ints().begin(), a.ints().end()});
    if (k == "sparse_value" || k == "value_string" || k == "value_strings")
      throw UnsupportedOp("Constant '" + node.name() + "' uses attribute '" + k + "', which onnxtrain does not support");
  }
  throw ModelError("Constant '" + node.name() + "' has no value attribute");
}

bool has_external_data(const onnx::GraphProto& g) {
  for (const auto& t : g.initializer())
    if (t.data_location() == onnx::TensorProto::EXTERNAL) return true;
  return false;
}

}  // namespace

ImportOptions ImportOptions::for_file(const std::string& path) {
  ImportOptions options;
  options.model_path = path;
  // "." for a bare file name: an empty directory would mean "from memory".
  const auto dir = std::filesystem::path(path).parent_path();
  options.model_dir = dir.empty() ? "." : dir.string();
  return options;
}

void load_model_file(const std::string& path, onnx::ModelProto& model) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ModelError("cannot open model file '" + path + "'");
  if (!model.ParseFromIstream(&in))
    throw ModelError("'" + path + "' is not a valid ONNX model (protobuf parsing failed)");
}

void load_model_bytes(const void* data, size_t size, onnx::ModelProto& model) {
  if (!model.ParseFromArray(data, static_cast<int>(size)))
    throw ModelError("the model bytes are not a valid ONNX model (protobuf parsing failed)");
}

void load_model_text(const std::string& text, onnx::ModelProto& model) {
  auto status = onnx::OnnxParser::Parse(model, text.c_str());
  if (!status.IsOK()) throw ModelError("cannot parse ONNX text: " + status.ErrorMessage());
}

std::unique_ptr<Graph> import_graph(const onnx::ModelProto& model, const ImportOptions& options) {
  const std::string source = source_of(options);
  auto graph = std::make_unique<Graph>();
  for (const auto& op : model.opset_import()) {
    std::string domain = op.domain() == "ai.onnx" ? "" : op.domain();
    graph->opsets[domain] = static_cast<int>(op.version());
  }
  if (!graph->opsets.count("")) graph->opsets[""] = 1;
  if (graph->opsets[""] > kNewestOnnxOpset)
    throw ModelError(source + ": ONNX opset " + std::to_string(graph->opsets[""]) +
                     " is newer than the newest onnxtrain supports (" + std::to_string(kNewestOnnxOpset) + ")");

  check_stored_tensors(model);
  if (options.run_checker) {
    try {
      const bool external = has_external_data(model.graph()) && !options.model_path.empty();
      check_model(model, external ? options.model_path : "", external ? options.model_dir : "");
    } catch (const std::exception& e) {
      throw ModelError(source + ": the ONNX checker rejects the model: " + e.what());
    }
  }

  onnx::ModelProto inferred;
  const onnx::ModelProto* typed = &model;
  if (options.infer_shapes) {
    inferred = model;
    try {
      // Data propagation folds Shape -> Gather -> Concat chains, so PyTorch exports keep
      // their ranks through computed Reshapes (gradient rules need ranks).
      infer_shapes(inferred);
      typed = &inferred;
    } catch (const std::exception& e) {
      spdlog::warn("{}: ONNX shape inference failed ({}); continuing with declared shapes", source, e.what());
    }
  }
  const onnx::GraphProto& g = typed->graph();
  graph->name = g.name();

  for (const auto& t : g.initializer()) {
    Value* v = graph->add_constant(t.name(), tensor_from_proto(t, options.model_dir));
    v->kind = ValueKind::Initializer;
  }
  auto require_tensor = [&](const onnx::ValueInfoProto& vi, const char* role) {
    if (vi.has_type() && !vi.type().has_tensor_type())
      throw UnsupportedOp(source + ": graph " + role + " '" + vi.name() +
                          "' is a sequence, map or optional value; onnxtrain supports tensors only");
  };
  for (const auto& in : g.input()) require_tensor(in, "input");
  for (const auto& out : g.output()) require_tensor(out, "output");
  for (const auto& in : g.input()) {
    // IR < 4 lists initializers among the inputs; the initializer is the default value.
    if (graph->find_value(in.name())) continue;
    Value* v = graph->add_value(in.name(), dtype_of_type(in.type()), dims_of(in.type()));
    v->kind = ValueKind::Input;
    graph->inputs.push_back(v);
  }
  std::map<std::string, const onnx::ValueInfoProto*> infos;
  for (const auto& vi : g.value_info()) infos[vi.name()] = &vi;
  for (const auto& vi : g.output()) infos[vi.name()] = &vi;

  auto value_for = [&](const std::string& name) -> Value* {
    if (name.empty()) return nullptr;
    Value* v = graph->find_value(name);
    if (!v) throw ModelError(source + ": value '" + name + "' is used before it is defined");
    return v;
  };

  int unnamed = 0;
  for (const auto& np : g.node()) {
    std::string node_name = np.name().empty() ? np.op_type() + "_" + std::to_string(unnamed++) : np.name();
    const bool is_constant =
        np.op_type() == "Constant" && (np.domain().empty() || np.domain() == "ai.onnx");
    if (is_constant) {
      if (np.output_size() != 1) throw ModelError(source + ": Constant '" + node_name + "' must have one output");
      graph->add_constant(np.output(0), constant_value(np, options.model_dir));
      continue;
    }
    std::vector<Value*> inputs, outputs;
    for (const auto& name : np.input()) inputs.push_back(value_for(name));
    for (const auto& name : np.output()) {
      if (name.empty()) {
        outputs.push_back(nullptr);
        continue;
      }
      DType dtype = DType::Undefined;
      std::optional<Dims> dims;
      if (auto it = infos.find(name); it != infos.end()) {
        dtype = dtype_of_type(it->second->type());
        dims = dims_of(it->second->type());
      }
      outputs.push_back(graph->add_value(name, dtype, dims));
    }
    Node* n = graph->add_node(np.op_type(), std::move(inputs), std::move(outputs), np.domain(), node_name);
    for (const auto& a : np.attribute()) {
      if (!a.ref_attr_name().empty())
        throw ModelError(source + ": " + n->describe() + " uses a function attribute reference");
      if (!is_internal_attribute(a.name())) n->attributes[a.name()] = attribute_from_proto(a, np, options.model_dir);
    }
  }
  for (const auto& out : g.output()) {
    Value* v = graph->find_value(out.name());
    if (!v) throw ModelError(source + ": graph output '" + out.name() + "' is never produced");
    if (v->dtype == DType::Undefined) v->dtype = dtype_of_type(out.type());
    if (!v->dims) v->dims = dims_of(out.type());
    graph->outputs.push_back(v);
  }
  graph->topological_sort();
  return graph;
}

}  // namespace onnxtrain::graph
