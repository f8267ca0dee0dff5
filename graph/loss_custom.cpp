// Loss kinds whose loss comes from a model: "output" (the model computes its own loss) and
// "custom" (a second ONNX model merged into the training graph).
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <filesystem>
#include <unordered_map>

#include "graph/importer.h"
#include "graph/loss_builder.h"
#include "onnxtrain/errors.h"

namespace onnxtrain::graph {

namespace {

std::string names_of(const std::vector<Value*>& values) {
  std::string s;
  for (const Value* v : values) s += (s.empty() ? "" : ", ") + v->name;
  return s;
}

std::string type_of(const Value& v) {
  return dtype_name(v.dtype) + (v.dims ? dims_str(*v.dims) : "[unknown shape]");
}

std::unique_ptr<Graph> import_loss_model(const LossOptions& o, std::string& source) {
  if (o.model_path.empty() == o.model_bytes.empty())
    throw DataError("loss 'custom' needs exactly one of the loss options 'model_path' and 'model_bytes'");
  onnx::ModelProto proto;
  ImportOptions options;
  if (!o.model_path.empty()) {
    source = "the loss model '" + o.model_path + "'";
    load_model_file(o.model_path, proto);
    options = ImportOptions::for_file(o.model_path);
  } else {
    source = "the loss model (model_bytes)";
    load_model_bytes(o.model_bytes.data(), o.model_bytes.size(), proto);
    options.model_path = "loss model (from memory)";
  }
  return import_graph(proto, options);
}

// A loss input read from a model value must agree with it wherever both are known.
void check_connection(const Value& loss_input, const Value& model_value, const std::string& source) {
  bool fits = loss_input.dtype == DType::Undefined || loss_input.dtype == model_value.dtype;
  if (fits && loss_input.dims && model_value.dims) {
    fits = loss_input.dims->size() == model_value.dims->size();
    for (size_t i = 0; fits && i < loss_input.dims->size(); ++i) {
      const Dim &a = (*loss_input.dims)[i], &b = (*model_value.dims)[i];
      fits = !a.known() || !b.known() || a.value == b.value;
    }
  }
  if (!fits)
    throw ModelError(source + ": input '" + loss_input.name + "' is declared " + type_of(loss_input) +
                     ", the model's '" + model_value.name + "' is " + type_of(model_value));
}

}  // namespace

Value* attach_output_loss(Graph& g, const LossOptions& o) {
  return scalar_loss_value(g, model_output(g, o.output), "the model output used as the loss");
}

Value* attach_custom_loss(Graph& g, const LossOptions& o) {
  std::string source;
  std::unique_ptr<Graph> lg = import_loss_model(o, source);
  if (lg->outputs.size() != 1)
    throw ModelError(source + " must have exactly one output (the loss); it has " +
                     std::to_string(lg->outputs.size()) + ": " + names_of(lg->outputs));
  const std::string what = "the output of " + source;
  require_scalar(*lg->outputs.front(), what);

  std::unordered_map<const Value*, Value*> mapped;
  bool reads_an_output = false;
  for (Value* in : lg->inputs) {
    Value* mv = g.find_value(in->name);
    const bool is_output = mv && std::find(g.outputs.begin(), g.outputs.end(), mv) != g.outputs.end();
    const bool is_input = mv && std::find(g.inputs.begin(), g.inputs.end(), mv) != g.inputs.end();
    if (is_output || is_input) {
      check_connection(*in, *mv, source);
      reads_an_output = reads_an_output || is_output;
      mapped[in] = mv;
    } else if (mv) {
      throw ModelError(source + ": input '" + in->name +
                       "' names a value of the model that is neither a model output (" + names_of(g.outputs) +
                       ") nor a model input; rename it if it is a target, or make it a model output");
    } else {  // a target, fed by its own name
      Value* target = g.add_value(in->name, in->dtype, in->dims);
      target->kind = ValueKind::Input;
      g.inputs.push_back(target);
      mapped[in] = target;
    }
  }
  if (!reads_an_output)
    throw ModelError(source + ": none of its inputs (" + names_of(lg->inputs) + ") is an output of the model (" +
                     names_of(g.outputs) + ")");

  // Everything else gets a fresh prefix; initializers become constants so they are never
  // trained (they belong to the loss definition, like class weights).
  const std::string prefix = g.unique_name("loss_model") + "/";
  auto fresh = [&](const std::string& name) {
    if (g.find_value(prefix + name)) throw ModelError(source + ": the value name '" + prefix + name + "' is taken");
    return prefix + name;
  };
  auto value_of = [&](Value* v) -> Value* {
    if (!v) return nullptr;
    auto it = mapped.find(v);
    if (it != mapped.end()) return it->second;
    if (!v->is_constant())
      throw ModelError(source + ": value '" + v->name + "' is used before it is produced");
    return mapped[v] = g.add_constant(fresh(v->name), *v->data);
  };
  for (const auto& ln : lg->nodes()) {
    std::vector<Value*> inputs, outputs;
    for (Value* v : ln->inputs) inputs.push_back(value_of(v));
    for (Value* v : ln->outputs) {
      if (!v) {
        outputs.push_back(nullptr);
        continue;
      }
      outputs.push_back(mapped[v] = g.add_value(fresh(v->name), v->dtype, v->dims));
    }
    Node* n = g.add_node(ln->op_type, std::move(inputs), std::move(outputs), ln->domain, g.unique_name(prefix + ln->name));
    n->opset = ln->opset;
    n->attributes = ln->attributes;
  }
  for (const auto& [domain, version] : lg->opsets) g.opsets.try_emplace(domain, version);
  return scalar_loss_value(g, value_of(lg->outputs.front()), what);
}

}  // namespace onnxtrain::graph
