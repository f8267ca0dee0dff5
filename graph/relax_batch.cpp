#include "graph/relax_batch.h"

#include <onnx/onnx_pb.h>

#include <map>
#include <set>

#include "graph/onnx_schemas.h"
#include "graph/tensor_proto.h"

namespace onnxtrain::graph {
namespace {

using Dim = onnx::TensorShapeProto_Dimension;

const onnx::TensorShapeProto* shape_of(const onnx::TypeProto& type) {
  if (!type.has_tensor_type() || !type.tensor_type().has_shape()) return nullptr;
  return &type.tensor_type().shape();
}

const Dim* leading_dim(const onnx::ValueInfoProto& vi) {
  const auto* shape = shape_of(vi.type());
  return shape && shape->dim_size() > 0 ? &shape->dim(0) : nullptr;
}

bool has_symbol(const onnx::TensorShapeProto& shape, const std::string& symbol) {
  for (const auto& d : shape.dim())
    if (d.has_dim_param() && d.dim_param() == symbol) return true;
  return false;
}

std::string shape_text(const onnx::TensorShapeProto& shape) {
  std::string s = "[";
  for (int i = 0; i < shape.dim_size(); ++i) {
    const Dim& d = shape.dim(i);
    s += (i ? "," : "") + (d.has_dim_value() ? std::to_string(d.dim_value()) : d.has_dim_param() ? d.dim_param() : "?");
  }
  return s + "]";
}

std::string node_label(const onnx::NodeProto& n) {
  return "node '" + (n.name().empty() ? n.output(0) : n.name()) + "' (" + n.op_type() + ")";
}

// A symbol no dim of the model's inputs or outputs already uses.
std::string fresh_symbol(const onnx::GraphProto& g) {
  std::set<std::string> used;
  for (const auto* list : {&g.input(), &g.output()})
    for (const auto& vi : *list)
      if (const auto* shape = shape_of(vi.type()))
        for (const auto& d : shape->dim())
          if (d.has_dim_param()) used.insert(d.dim_param());
  std::string symbol = "batch";
  while (used.count(symbol)) symbol += "_";
  return symbol;
}

// Where a constant's tensor lives: an initializer or a Constant node's `value`.
onnx::TensorProto* constant_tensor(onnx::GraphProto& g, const std::string& name) {
  for (auto& t : *g.mutable_initializer())
    if (t.name() == name) return &t;
  for (auto& n : *g.mutable_node()) {
    if (n.op_type() != "Constant" || n.output_size() != 1 || n.output(0) != name) continue;
    for (auto& a : *n.mutable_attribute())
      if (a.name() == "value" && a.has_t()) return a.mutable_t();
  }
  return nullptr;
}

int64_t int_attribute(const onnx::NodeProto& n, const std::string& name, int64_t fallback) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return a.i();
  return fallback;
}

// Shapes after ONNX inference, by value name.
std::map<std::string, onnx::TensorShapeProto> inferred_shapes(onnx::ModelProto model) {
  model.mutable_graph()->clear_value_info();
  for (auto& out : *model.mutable_graph()->mutable_output())
    if (out.type().has_tensor_type()) out.mutable_type()->mutable_tensor_type()->clear_shape();
  infer_shapes(model);
  std::map<std::string, onnx::TensorShapeProto> shapes;
  const auto& g = model.graph();
  for (const auto* list : {&g.input(), &g.value_info(), &g.output()})
    for (const auto& vi : *list)
      if (const auto* shape = shape_of(vi.type())) shapes[vi.name()] = *shape;
  return shapes;
}

// The first node feeding `output` that takes the batch symbol in and puts a shape without
// it out: where the fixed batch is baked in.
std::string find_blocker(const onnx::GraphProto& g, const std::string& output,
                         const std::map<std::string, onnx::TensorShapeProto>& shapes, const std::string& symbol) {
  std::set<std::string> needed = {output};
  std::vector<const onnx::NodeProto*> ancestors;
  for (int i = g.node_size() - 1; i >= 0; --i) {
    const auto& n = g.node(i);
    bool feeds = false;
    for (const auto& o : n.output()) feeds = feeds || needed.count(o);
    if (!feeds) continue;
    ancestors.push_back(&n);
    for (const auto& in : n.input()) needed.insert(in);
  }
  for (auto it = ancestors.rbegin(); it != ancestors.rend(); ++it) {
    const auto& n = **it;
    if (n.op_type() == "Shape" || n.op_type() == "Size") continue;
    bool takes_batch = false;
    for (const auto& in : n.input())
      if (auto s = shapes.find(in); s != shapes.end() && has_symbol(s->second, symbol)) takes_batch = true;
    if (!takes_batch || n.output_size() == 0) continue;
    auto out = shapes.find(n.output(0));
    if (out != shapes.end() && out->second.dim_size() > 0 && !has_symbol(out->second, symbol))
      return node_label(n) + " makes " + shape_text(out->second) + " of its batch-sized input";
  }
  return "output '" + output + "' does not follow the batch";
}

}  // namespace

BatchRelaxation relax_fixed_batch(onnx::ModelProto& model) {
  BatchRelaxation r;
  const auto& g = model.graph();
  std::set<std::string> initializers;
  for (const auto& t : g.initializer()) initializers.insert(t.name());

  // The batch is the first input's fixed leading dim; every input sharing it is relaxed.
  std::vector<int> batch_inputs;
  for (int i = 0; i < g.input_size(); ++i) {
    const auto& in = g.input(i);
    if (initializers.count(in.name())) continue;
    const Dim* d = leading_dim(in);
    if (!d || !d->has_dim_value()) {
      if (r.fixed_batch == 0) return r;  // the first input is already dynamic
      continue;
    }
    if (r.fixed_batch == 0) r.fixed_batch = d->dim_value();
    if (d->dim_value() == r.fixed_batch) batch_inputs.push_back(i);
  }
  if (r.fixed_batch == 0) return r;
  onnx::ModelProto trial = model;
  r.symbol = fresh_symbol(g);
  auto* tg = trial.mutable_graph();
  for (int i : batch_inputs) {
    auto* dim = tg->mutable_input(i)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(0);
    dim->clear_dim_value();
    dim->set_dim_param(r.symbol);
    r.inputs.push_back(g.input(i).name());
  }
  std::map<std::string, onnx::TensorShapeProto> shapes;
  try {
    shapes = inferred_shapes(trial);
  } catch (const std::exception& e) {
    r.blocker = std::string("shape inference with a symbolic batch fails: ") + e.what();
    return r;
  }

  // Reshapes of a batch-led tensor whose constant shape starts with the fixed batch: 0
  // copies the input's dim instead (not under allowzero, where 0 means an empty dim).
  std::map<std::string, std::vector<onnx::NodeProto*>> relaxable;  // shape constant -> its Reshapes
  std::map<std::string, int> uses;
  for (auto& n : *tg->mutable_node())
    for (const auto& in : n.input()) ++uses[in];
  for (auto& n : *tg->mutable_node()) {
    if (n.op_type() != "Reshape" || n.input_size() < 2 || int_attribute(n, "allowzero", 0) != 0) continue;
    auto data = shapes.find(n.input(0));
    if (data == shapes.end() || data->second.dim_size() == 0) continue;
    const Dim& d0 = data->second.dim(0);
    if (!d0.has_dim_param() || d0.dim_param() != r.symbol) continue;
    const onnx::TensorProto* shape = constant_tensor(*tg, n.input(1));
    if (!shape || shape->data_type() != onnx::TensorProto::INT64) continue;
    Tensor values = tensor_from_proto(*shape);
    if (values.numel() == 0 || values.data<int64_t>()[0] != r.fixed_batch) continue;
    relaxable[n.input(1)].push_back(&n);
  }
  for (auto& [name, reshapes] : relaxable) {
    onnx::TensorProto* shape = constant_tensor(*tg, name);
    Tensor values = tensor_from_proto(*shape).clone();
    values.data<int64_t>()[0] = 0;
    if (uses[name] == static_cast<int>(reshapes.size())) {
      const std::string keep = shape->name();
      tensor_to_proto(values, *shape);
      shape->set_name(keep);
    } else {  // shared with something that is not a batch Reshape: a copy for the Reshapes
      onnx::TensorProto* copy = tg->add_initializer();
      tensor_to_proto(values, *copy);
      copy->set_name(name + ".batch");
      for (auto* n : reshapes) n->set_input(1, copy->name());
    }
    for (auto* n : reshapes) r.reshapes.push_back(n->name().empty() ? n->output(0) : n->name());
  }

  try {
    shapes = inferred_shapes(trial);
  } catch (const std::exception& e) {
    r.blocker = std::string("shape inference with a symbolic batch fails: ") + e.what();
    return r;
  }
  for (int i = 0; i < tg->output_size(); ++i) {
    const auto& out = g.output(i);
    const Dim* declared = leading_dim(out);
    if (!declared || !declared->has_dim_value() || declared->dim_value() != r.fixed_batch) continue;
    // An output inference cannot follow is trusted to carry the batch like the rest.
    auto inferred = shapes.find(out.name());
    const bool unknown = inferred == shapes.end() || inferred->second.dim_size() == 0;
    const Dim* d0 = unknown ? nullptr : &inferred->second.dim(0);
    if (unknown || (d0->has_dim_param() && d0->dim_param() == r.symbol)) {
      auto* dim = tg->mutable_output(i)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(0);
      dim->clear_dim_value();
      dim->set_dim_param(r.symbol);
      continue;
    }
    r.blocker = find_blocker(*tg, out.name(), shapes, r.symbol);
    r.inputs.clear();
    r.reshapes.clear();
    return r;
  }
  // Intermediate shapes recorded at the fixed batch would contradict the new one.
  tg->clear_value_info();
  model = std::move(trial);
  r.relaxed = true;
  return r;
}

}  // namespace onnxtrain::graph
