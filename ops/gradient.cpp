#include "ops/gradient.h"

#include <set>

#include "onnxtrain/errors.h"

namespace onnxtrain::ops {

GradientBuilder::GradientBuilder(Graph& graph, graph::Node& node, std::vector<Value*> output_grads,
                                 std::vector<bool> input_needs_grad)
    : graph_(graph),
      node_(node),
      output_grads_(std::move(output_grads)),
      needs_(std::move(input_needs_grad)),
      input_grads_(node.inputs.size()) {}

Value* GradientBuilder::I(size_t i) const {
  if (i >= node_.inputs.size() || !node_.inputs[i])
    throw ModelError(node_.describe() + ": gradient rule reads missing input " + std::to_string(i));
  return node_.inputs[i];
}

Value* GradientBuilder::O(size_t i) const {
  if (i >= node_.outputs.size() || !node_.outputs[i])
    throw ModelError(node_.describe() + ": gradient rule reads missing output " + std::to_string(i));
  return node_.outputs[i];
}

Value* GradientBuilder::saved_output(size_t i, DType dtype) {
  if (i < node_.outputs.size() && node_.outputs[i]) return node_.outputs[i];
  if (node_.outputs.size() <= i) node_.outputs.resize(i + 1, nullptr);
  Value* v = graph_.add_value(fresh_name("saved"), dtype);
  v->producer = &node_;
  v->producer_output = static_cast<int>(i);
  node_.outputs[i] = v;
  return v;
}

Value* GradientBuilder::GO(size_t i) {
  if (i >= output_grads_.size()) output_grads_.resize(i + 1, nullptr);
  if (!output_grads_[i]) output_grads_[i] = zeros_like(O(i));
  return output_grads_[i];
}

void GradientBuilder::GI(size_t i, Value* grad) {
  if (i >= input_grads_.size()) throw ModelError(node_.describe() + ": gradient for missing input " + std::to_string(i));
  input_grads_[i] = {grad, false};
}

void GradientBuilder::GI_broadcast(size_t i, Value* grad) {
  if (i >= input_grads_.size()) throw ModelError(node_.describe() + ": gradient for missing input " + std::to_string(i));
  input_grads_[i] = {grad, true};
}

std::string GradientBuilder::fresh_name(const std::string& hint) {
  std::string base = (node_.name.empty() ? node_.op_type : node_.name) + "_grad/" + hint + std::to_string(counter_++);
  return graph_.unique_name(base);
}

std::vector<Value*> GradientBuilder::op_n(const std::string& op_type, std::vector<Value*> inputs, size_t outputs,
                                          Attributes attrs, const std::string& domain) {
  // Before opset 7 the arithmetic ops broadcast only when asked to.
  static const std::set<std::string> kLegacyBroadcast = {"Add", "Sub", "Mul", "Div", "Pow"};
  if (domain.empty() && graph_.opset("") < 7 && kLegacyBroadcast.count(op_type) && !attrs.count("broadcast"))
    attrs["broadcast"] = int64_t{1};
  std::vector<Value*> outs;
  for (size_t k = 0; k < outputs; ++k) outs.push_back(graph_.add_value(fresh_name(op_type)));
  graph::Node* n = graph_.add_node(op_type, std::move(inputs), outs, domain, fresh_name(op_type + "_node"));
  n->attributes = std::move(attrs);
  return outs;
}

std::vector<Value*> GradientBuilder::op_masked(const std::string& op_type, std::vector<Value*> inputs,
                                               const std::vector<bool>& wanted, Attributes attrs,
                                               const std::string& domain) {
  std::vector<Value*> outs;
  for (bool w : wanted) outs.push_back(w ? graph_.add_value(fresh_name(op_type)) : nullptr);
  graph::Node* n = graph_.add_node(op_type, std::move(inputs), outs, domain, fresh_name(op_type + "_node"));
  n->attributes = std::move(attrs);
  return outs;
}

Value* GradientBuilder::op(const std::string& op_type, std::vector<Value*> inputs, Attributes attrs,
                           const std::string& domain) {
  return op_n(op_type, std::move(inputs), 1, std::move(attrs), domain)[0];
}

Value* GradientBuilder::constant(const Tensor& value) { return graph_.add_constant(fresh_name("const"), value); }

Value* GradientBuilder::scalar(double value, const Value* like) {
  if (like->dtype == DType::Double) return constant(Tensor::scalar<double>(value));
  return constant(Tensor::scalar<float>(static_cast<float>(value)));
}

Value* GradientBuilder::shape_of(Value* v) { return op("Shape", {v}); }

Value* GradientBuilder::sum_to_shape_of(Value* grad, Value* like) {
  return train_op("ReduceSumTo", {grad, shape_of(like)});
}

Value* GradientBuilder::unsqueeze(Value* v, std::vector<int64_t> axes) {
  if (graph_.opset("") >= 13)
    return op("Unsqueeze", {v, constant(Tensor::from_vector<int64_t>({static_cast<int64_t>(axes.size())}, axes))});
  return op("Unsqueeze", {v}, {{"axes", axes}});
}

Value* GradientBuilder::squeeze(Value* v, std::vector<int64_t> axes) {
  if (graph_.opset("") >= 13)
    return op("Squeeze", {v, constant(Tensor::from_vector<int64_t>({static_cast<int64_t>(axes.size())}, axes))});
  return op("Squeeze", {v}, {{"axes", axes}});
}

Value* GradientBuilder::reduce_sum(Value* v, std::vector<int64_t> axes, bool keepdims) {
  const int64_t keep = keepdims ? 1 : 0;
  if (graph_.opset("") >= 13)
    return op("ReduceSum", {v, constant(Tensor::from_vector<int64_t>({static_cast<int64_t>(axes.size())}, axes))},
              {{"keepdims", keep}});
  return op("ReduceSum", {v}, {{"axes", axes}, {"keepdims", keep}});
}

Value* GradientBuilder::reshape(Value* v, std::vector<int64_t> shape) {
  if (graph_.opset("") < 5) return op("Reshape", {v}, {{"shape", shape}});
  return op("Reshape", {v, constant(Tensor::from_vector<int64_t>({static_cast<int64_t>(shape.size())}, shape))});
}

size_t GradientBuilder::rank(const Value* v) const {
  if (!v->dims)
    throw ShapeError(node_.describe() + ": the gradient rule needs the rank of '" + v->name +
                     "', which shape inference could not determine");
  return v->dims->size();
}

Value* GradientBuilder::expand_like(Value* v, Value* like) {
  if (graph_.opset("") >= 8) return op("Expand", {v, shape_of(like)});
  // Legacy broadcasting (opset < 7) broadcasts the second operand onto the first.
  return add(zeros_like(like), v);
}

Value* GradientBuilder::zeros_like(Value* v) { return train_op("ZerosLike", {v}); }

}  // namespace onnxtrain::ops
