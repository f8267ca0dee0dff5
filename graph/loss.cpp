#include "graph/loss.h"

#include <algorithm>

#include "onnxtrain/errors.h"

namespace onnxtrain::graph {

namespace {

// The loss ops need opset 12/13 forms; they run at that version whatever the model's is.
constexpr int kLossOpset = 13;

Value* add_op(Graph& g, const std::string& op, std::vector<Value*> inputs, const std::string& hint,
              std::map<std::string, AttributeValue> attrs = {}, DType dtype = DType::Undefined) {
  Value* out = g.add_value(g.unique_name("loss/" + hint), dtype);
  Node* n = g.add_node(op, std::move(inputs), {out}, kOnnxDomain, g.unique_name("loss/" + hint + "_node"));
  n->opset = std::max(n->opset, kLossOpset);
  n->attributes = std::move(attrs);
  return out;
}

// Reduces every element: ReduceMean/ReduceSum without axes reduce all dims in every opset.
Value* reduce_all(Graph& g, Value* v, const std::string& reduction) {
  const std::string op = reduction == "sum" ? "ReduceSum" : "ReduceMean";
  return add_op(g, op, {v}, "reduce", {{"keepdims", int64_t{0}}}, v->dtype);
}

}  // namespace

Value* attach_loss(Graph& g, const LossSpec& spec) {
  if (g.outputs.empty()) throw ModelError("the model has no outputs to attach a loss to");
  Value* out = spec.output.empty() ? g.outputs.front() : &g.value(spec.output);
  if (std::find(g.outputs.begin(), g.outputs.end(), out) == g.outputs.end())
    throw ModelError("'" + out->name + "' is not an output of the model");
  if (!is_floating(out->dtype))
    throw ModelError("the loss needs a float output, '" + out->name + "' is " + dtype_name(out->dtype));
  if (g.find_value(spec.target))
    throw ModelError("the target name '" + spec.target + "' is already a value of the model; choose another");
  if (spec.reduction != "mean" && spec.reduction != "sum")
    throw ModelError("unknown loss reduction '" + spec.reduction + "' (mean or sum)");

  const bool classification = spec.kind == "cross_entropy" || spec.kind == "nll";
  std::optional<Dims> target_dims;
  if (out->dims && classification && out->dims->size() >= 2) {
    Dims d = *out->dims;
    d.erase(d.begin() + 1);  // [N, C, d1...] -> [N, d1...]
    target_dims = d;
  } else if (!classification) {
    target_dims = out->dims;
  }
  Value* target = g.add_value(spec.target, classification ? DType::Int64 : out->dtype, target_dims);
  target->kind = ValueKind::Input;
  g.inputs.push_back(target);

  Value* loss = nullptr;
  if (classification) {
    const std::string op = spec.kind == "cross_entropy" ? "SoftmaxCrossEntropyLoss" : "NegativeLogLikelihoodLoss";
    loss = add_op(g, op, {out, target}, spec.kind,
                  {{"reduction", spec.reduction}, {"ignore_index", spec.ignore_index}}, out->dtype);
  } else if (spec.kind == "mse") {
    Value* diff = add_op(g, "Sub", {out, target}, "diff", {}, out->dtype);
    loss = reduce_all(g, add_op(g, "Mul", {diff, diff}, "square", {}, out->dtype), spec.reduction);
  } else if (spec.kind == "l1") {
    Value* diff = add_op(g, "Sub", {out, target}, "diff", {}, out->dtype);
    loss = reduce_all(g, add_op(g, "Abs", {diff}, "abs", {}, out->dtype), spec.reduction);
  } else {
    throw ModelError("unknown loss '" + spec.kind + "' (cross_entropy, nll, mse, l1)");
  }
  loss->dtype = out->dtype;
  loss->dims = Dims{};
  return loss;
}

}  // namespace onnxtrain::graph
