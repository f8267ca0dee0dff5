#include "graph/exporter.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <set>

#include "graph/tensor_proto.h"

namespace onnxtrain::graph {

namespace {

void set_type(onnx::ValueInfoProto& vi, const Value& v) {
  vi.set_name(v.name);
  auto* tt = vi.mutable_type()->mutable_tensor_type();
  tt->set_elem_type(static_cast<int32_t>(v.dtype));
  if (!v.dims) return;
  auto* shape = tt->mutable_shape();
  for (const Dim& d : *v.dims) {
    auto* dim = shape->add_dim();
    if (d.known()) dim->set_dim_value(d.value);
    else if (!d.symbol.empty()) dim->set_dim_param(d.symbol);
  }
}

void set_attribute(onnx::AttributeProto& a, const std::string& name, const AttributeValue& value) {
  using A = onnx::AttributeProto;
  a.set_name(name);
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, int64_t>) {
          a.set_type(A::INT);
          a.set_i(v);
        } else if constexpr (std::is_same_v<T, float>) {
          a.set_type(A::FLOAT);
          a.set_f(v);
        } else if constexpr (std::is_same_v<T, std::string>) {
          a.set_type(A::STRING);
          a.set_s(v);
        } else if constexpr (std::is_same_v<T, Tensor>) {
          a.set_type(A::TENSOR);
          tensor_to_proto(v, *a.mutable_t());
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
          a.set_type(A::INTS);
          for (auto x : v) a.add_ints(x);
        } else if constexpr (std::is_same_v<T, std::vector<float>>) {
          a.set_type(A::FLOATS);
          for (auto x : v) a.add_floats(x);
        } else {
          a.set_type(A::STRINGS);
          for (const auto& x : v) a.add_strings(x);
        }
      },
      value);
}

}  // namespace

void export_graph(const Graph& graph, onnx::ModelProto& model) {
  model.Clear();
  model.set_ir_version(8);
  model.set_producer_name("onnxtrain");
  // One version per domain in a file: nodes added at a newer opset than the graph's (the
  // loss ops run at 13 or later) are only exportable when the graph is at least that new.
  std::map<std::string, int> opsets = graph.opsets;
  for (const auto& n : graph.nodes()) {
    auto [it, inserted] = opsets.try_emplace(n->domain, n->opset);
    if (!inserted && n->opset > it->second && n->domain == kOnnxDomain)
      throw ModelError(n->describe() + " needs opset " + std::to_string(n->opset) + " but the graph is at opset " +
                       std::to_string(it->second) + "; convert the model to opset " + std::to_string(n->opset) +
                       " or newer to export this graph");
  }
  for (const auto& [domain, version] : opsets) {
    auto* op = model.add_opset_import();
    op->set_domain(domain);
    op->set_version(version);
  }
  auto* g = model.mutable_graph();
  g->set_name(graph.name.empty() ? "onnxtrain" : graph.name);
  for (const Value* v : graph.all_values()) {
    if (!v->data) continue;
    auto* t = g->add_initializer();
    tensor_to_proto(*v->data, *t);
    t->set_name(v->name);
  }
  for (const Value* v : graph.inputs) set_type(*g->add_input(), *v);
  for (const Value* v : graph.outputs) set_type(*g->add_output(), *v);
  for (const auto& n : graph.nodes()) {
    auto* np = g->add_node();
    np->set_name(n->name);
    np->set_op_type(n->op_type);
    np->set_domain(n->domain);
    for (const Value* in : n->inputs) np->add_input(in ? in->name : "");
    for (const Value* out : n->outputs) {
      np->add_output(out ? out->name : "");
      if (out && out->dtype != DType::Undefined && out->dims) set_type(*g->add_value_info(), *out);
    }
    for (const auto& [name, value] : n->attributes)
      if (!is_internal_attribute(name)) set_attribute(*np->add_attribute(), name, value);
  }
}

void replace_initializers(onnx::ModelProto& model, const std::map<std::string, Tensor>& values) {
  std::map<std::string, onnx::TensorProto*> by_name;
  for (auto& t : *model.mutable_graph()->mutable_initializer()) by_name[t.name()] = &t;
  for (const auto& [name, tensor] : values) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw ModelError("the model has no initializer named '" + name + "'");
    onnx::TensorProto& t = *it->second;
    Shape old_shape(t.dims().begin(), t.dims().end());
    if (static_cast<DType>(t.data_type()) != tensor.dtype() || old_shape != tensor.shape())
      throw ShapeError("initializer '" + name + "' is " + dtype_name(static_cast<DType>(t.data_type())) +
                       shape_str(old_shape) + ", the new value is " + dtype_name(tensor.dtype()) +
                       shape_str(tensor.shape()));
    tensor_to_proto(tensor, t);
  }
}

void select_outputs(onnx::ModelProto& model, const Graph& graph, const std::vector<std::string>& outputs) {
  onnx::GraphProto& g = *model.mutable_graph();
  std::map<std::string, onnx::ValueInfoProto> known;
  for (const auto& vi : g.value_info()) known[vi.name()] = vi;
  for (const auto& vi : g.output()) known[vi.name()] = vi;
  google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> chosen;
  for (const auto& name : outputs) {
    if (auto it = known.find(name); it != known.end()) {
      *chosen.Add() = it->second;
    } else if (const Value* v = graph.find_value(name); v && v->dtype != DType::Undefined) {
      set_type(*chosen.Add(), *v);
    } else {
      throw ModelError("cannot export output '" + name + "': the model has no value of that name");
    }
  }
  *g.mutable_output() = std::move(chosen);

  // Nodes are topologically sorted (ONNX requires it): one backward sweep finds what the
  // outputs need. Subgraph ops are rejected at import, so inputs are all explicit.
  std::set<std::string> needed(outputs.begin(), outputs.end());
  std::vector<bool> keep(g.node_size());
  for (int i = g.node_size() - 1; i >= 0; --i) {
    const auto& n = g.node(i);
    keep[i] = std::any_of(n.output().begin(), n.output().end(), [&](const std::string& o) { return needed.count(o); });
    if (keep[i]) needed.insert(n.input().begin(), n.input().end());
  }
  google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
  for (int i = 0; i < g.node_size(); ++i)
    if (keep[i]) *nodes.Add() = g.node(i);
  *g.mutable_node() = std::move(nodes);
  auto drop_unneeded = [&](auto* field) {
    for (int i = field->size() - 1; i >= 0; --i)
      if (!needed.count(field->Get(i).name())) field->DeleteSubrange(i, 1);
  };
  drop_unneeded(g.mutable_input());
  drop_unneeded(g.mutable_initializer());
  drop_unneeded(g.mutable_value_info());
}

}  // namespace onnxtrain::graph
