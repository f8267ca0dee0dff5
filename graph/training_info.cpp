#include "graph/training_info.h"

#include <onnx/onnx_pb.h>

#include <map>
#include <set>

#include "graph/exporter.h"
#include "graph/importer.h"
#include "onnxtrain/errors.h"

namespace onnxtrain::graph {

void set_training_info(onnx::ModelProto& model, const Graph& algorithm,
                       const std::vector<std::pair<std::string, std::string>>& update_binding) {
  onnx::ModelProto exported;
  export_graph(algorithm, exported);
  std::map<std::string, int64_t> opsets;
  for (const auto& o : model.opset_import()) opsets[o.domain() == "ai.onnx" ? "" : o.domain()] = o.version();
  for (const auto& o : exported.opset_import()) {
    auto [it, inserted] = opsets.try_emplace(o.domain(), o.version());
    if (inserted || it->second >= o.version()) continue;
    if (o.domain().empty())
      throw ModelError("the training algorithm needs ONNX opset " + std::to_string(o.version()) + ", the model declares " +
                       std::to_string(it->second) + "; convert the model to opset " + std::to_string(o.version()) +
                       " or newer to export it with its training algorithm");
    it->second = o.version();
  }
  model.clear_opset_import();
  for (const auto& [domain, version] : opsets) {
    auto* o = model.add_opset_import();
    o->set_domain(domain);
    o->set_version(version);
  }

  std::set<std::string> main_initializers;
  for (const auto& t : model.graph().initializer()) main_initializers.insert(t.name());
  onnx::GraphProto* g = exported.mutable_graph();
  auto* inits = g->mutable_initializer();
  for (int i = inits->size() - 1; i >= 0; --i)
    if (main_initializers.count(inits->Get(i).name())) inits->DeleteSubrange(i, 1);
  g->set_name("training_algorithm");

  model.clear_training_info();
  auto* info = model.add_training_info();
  info->mutable_algorithm()->Swap(g);
  for (const auto& [key, value] : update_binding) {
    auto* b = info->add_update_binding();
    b->set_key(key);
    b->set_value(value);
  }
}

namespace {

void check_bindings(const google::protobuf::RepeatedPtrField<onnx::StringStringEntryProto>& bindings,
                    const onnx::GraphProto& graph, const std::map<std::string, const onnx::TensorProto*>& initializers,
                    const std::string& where) {
  std::map<std::string, const onnx::ValueInfoProto*> outputs;
  for (const auto& o : graph.output()) outputs[o.name()] = &o;
  std::set<std::string> bound;
  for (const auto& b : bindings) {
    auto init = initializers.find(b.key());
    if (init == initializers.end())
      throw ModelError(where + ": '" + b.key() + "' is not an initializer of the main graph");
    if (!bound.insert(b.key()).second) throw ModelError(where + ": '" + b.key() + "' is bound twice");
    auto out = outputs.find(b.value());
    if (out == outputs.end())
      throw ModelError(where + ": '" + b.key() + "' is bound to '" + b.value() + "', which is not an output of the graph");
    const auto& type = out->second->type().tensor_type();
    const onnx::TensorProto& t = *init->second;
    if (type.elem_type() != 0 && type.elem_type() != t.data_type())
      throw ModelError(where + ": '" + b.key() + "' has element type " + std::to_string(t.data_type()) + ", its update '" +
                       b.value() + "' has " + std::to_string(type.elem_type()));
    if (!type.has_shape()) continue;
    bool same = type.shape().dim_size() == t.dims_size();
    for (int i = 0; same && i < t.dims_size(); ++i)
      if (type.shape().dim(i).has_dim_value()) same = type.shape().dim(i).dim_value() == t.dims(i);
    if (!same) throw ModelError(where + ": the shape of '" + b.value() + "' differs from initializer '" + b.key() + "'");
  }
}

// The graph as a model of its own, with the main graph's initializers in scope, so the
// ONNX checker, shape inference and our importer can judge it.
void check_graph(const onnx::ModelProto& model, const onnx::GraphProto& graph, const std::string& where,
                 const std::function<void(Graph&)>& prepare) {
  onnx::ModelProto standalone;
  standalone.set_ir_version(model.ir_version());
  *standalone.mutable_opset_import() = model.opset_import();
  *standalone.mutable_graph() = graph;
  std::set<std::string> own;
  for (const auto& t : graph.initializer()) own.insert(t.name());
  for (const auto& t : model.graph().initializer())
    if (!own.count(t.name())) *standalone.mutable_graph()->add_initializer() = t;
  ImportOptions options;
  options.model_path = where;
  try {
    auto imported = import_graph(standalone, options);
    if (prepare) prepare(*imported);
  } catch (const Error& e) {
    throw ModelError(std::string(e.what()));
  }
}

}  // namespace

void validate_training_info(const onnx::ModelProto& model, const std::string& source,
                            const std::function<void(Graph&)>& prepare) {
  std::map<std::string, const onnx::TensorProto*> initializers;
  for (const auto& t : model.graph().initializer()) initializers[t.name()] = &t;
  for (int i = 0; i < model.training_info_size(); ++i) {
    const auto& info = model.training_info(i);
    const std::string where = source + ": training_info[" + std::to_string(i) + "]";
    if (info.has_initialization() && info.initialization().node_size() > 0) {
      check_graph(model, info.initialization(), where + ".initialization", prepare);
      check_bindings(info.initialization_binding(), info.initialization(), initializers, where + ".initialization_binding");
    } else if (info.initialization_binding_size() > 0) {
      throw ModelError(where + ": initialization_binding without an initialization graph");
    }
    if (info.has_algorithm() && info.algorithm().node_size() > 0) {
      check_graph(model, info.algorithm(), where + ".algorithm", prepare);
      check_bindings(info.update_binding(), info.algorithm(), initializers, where + ".update_binding");
    } else if (info.update_binding_size() > 0) {
      throw ModelError(where + ": update_binding without an algorithm graph");
    }
  }
}

}  // namespace onnxtrain::graph
