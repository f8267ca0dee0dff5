#include "graph/loss_builder.h"

#include <algorithm>

#include "onnxtrain/errors.h"

namespace onnxtrain::graph {

namespace {

// SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss need opset 12+, ReduceSum takes
// its axes as an input from 13: the loss runs at that version whatever the model's is.
constexpr int kLossOpset = 13;

}  // namespace

Value* LossBuilder::op(const std::string& op_type, std::vector<Value*> inputs, const std::string& hint,
                       std::map<std::string, AttributeValue> attrs, DType dtype) {
  Value* out = g_.add_value(name(hint), dtype == DType::Undefined ? dtype_ : dtype);
  Node* n = g_.add_node(op_type, std::move(inputs), {out}, kOnnxDomain, name(hint + "_node"));
  n->opset = std::max(n->opset, kLossOpset);
  n->attributes = std::move(attrs);
  return out;
}

std::pair<Value*, Value*> LossBuilder::op2(const std::string& op_type, std::vector<Value*> inputs,
                                           const std::string& hint, std::map<std::string, AttributeValue> attrs) {
  Value* first = g_.add_value(name(hint), dtype_);
  Value* second = g_.add_value(name(hint + "_1"), dtype_);
  Node* n = g_.add_node(op_type, std::move(inputs), {first, second}, kOnnxDomain, name(hint + "_node"));
  n->opset = std::max(n->opset, kLossOpset);
  n->attributes = std::move(attrs);
  return {first, second};
}

Value* LossBuilder::scalar(double value, const std::string& hint) { return constant({value}, {}, hint); }

Value* LossBuilder::constant(const std::vector<double>& values, Shape shape, const std::string& hint) {
  if (dtype_ == DType::Double) return g_.add_constant(name(hint), Tensor::from_vector<double>(std::move(shape), values));
  Value* c = g_.add_constant(name(hint), Tensor::from_vector<float>(std::move(shape), {values.begin(), values.end()}));
  if (dtype_ == DType::Float) return c;
  // Half-precision outputs: a Cast keeps this free of per-format conversions.
  Value* cast = op("Cast", {c}, hint + "_cast", {{"to", static_cast<int64_t>(dtype_)}});
  cast->dims = c->dims;
  return cast;
}

Value* LossBuilder::int64s(const std::vector<int64_t>& values, Shape shape, const std::string& hint) {
  return g_.add_constant(name(hint), Tensor::from_vector<int64_t>(std::move(shape), values));
}

Value* LossBuilder::reduce_all(Value* v, const std::string& reduction) {
  // Without axes both reduce every dimension in every opset.
  Value* r = op(reduction == "sum" ? "ReduceSum" : "ReduceMean", {v}, "reduce", {{"keepdims", int64_t{0}}});
  r->dims = Dims{};
  return r;
}

Value* LossBuilder::dim_size(Value* v, int64_t axis) {
  if (v->dims && axis < static_cast<int64_t>(v->dims->size()) && (*v->dims)[axis].known())
    return scalar(static_cast<double>((*v->dims)[axis].value), "size");
  Value* shape = op("Shape", {v}, "shape", {}, DType::Int64);
  Value* size = op("Gather", {shape, int64s({axis}, {}, "axis")}, "size_int", {}, DType::Int64);
  return op("Cast", {size}, "size", {{"to", static_cast<int64_t>(dtype_)}});
}

Value* model_output(Graph& g, const std::string& name) {
  if (g.outputs.empty()) throw ModelError("the model has no outputs to attach a loss to");
  if (name.empty()) return g.outputs.front();
  auto it = std::find_if(g.outputs.begin(), g.outputs.end(), [&](const Value* v) { return v->name == name; });
  if (it == g.outputs.end()) {
    std::string list;
    for (const Value* v : g.outputs) list += (list.empty() ? "" : ", ") + v->name;
    throw ModelError("the loss output '" + name + "' is not an output of the model (" + list + ")");
  }
  return *it;
}

void require_scalar(const Value& v, const std::string& what) {
  const std::string type = dtype_name(v.dtype) + (v.dims ? dims_str(*v.dims) : "[unknown shape]");
  if (!is_floating(v.dtype)) throw ModelError(what + " '" + v.name + "' must be a float scalar, it is " + type);
  bool single = v.dims.has_value();
  for (const Dim& d : v.dims.value_or(Dims{})) single = single && d.value == 1;
  if (!single)
    throw ModelError(what + " '" + v.name + "' must be a float scalar (or hold a single element), it is " + type);
}

Value* scalar_loss_value(Graph& g, Value* v, const std::string& what) {
  require_scalar(*v, what);
  Value* loss = g.add_value(g.unique_name("loss"), v->dtype, Dims{});
  if (v->dims->empty()) {
    g.add_node("Identity", {v}, {loss}, kOnnxDomain, g.unique_name("loss/identity"));
  } else {
    Value* shape = g.add_constant(g.unique_name("loss/scalar_shape"), Tensor(DType::Int64, {0}));
    g.add_node("Reshape", {v, shape}, {loss}, kOnnxDomain, g.unique_name("loss/to_scalar"))->opset =
        std::max(g.opset(kOnnxDomain), kLossOpset);
  }
  return loss;
}

}  // namespace onnxtrain::graph
