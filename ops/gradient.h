#pragma once
// Gradient rules emit graph nodes, never compute. A rule sees the forward node's inputs
// I(i), outputs O(i) and the gradients of its outputs GO(i), asks needs_grad(i), and sets
// GI(i). The autodiff driver (graph/passes/autodiff.cpp) does the shared work: reverse walk,
// pruning, fan-out sums and reducing broadcast gradients.
//
// Rules should emit ops whose semantics are stable across opsets 7..17 (Mul, Add, Sub,
// Div, Neg, MatMul, Transpose, Reshape, Where, Exp, ...). Version-sensitive operations
// (reductions, squeeze/unsqueeze, slicing, padding) use the ai.onnxtrain helpers below.
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "graph/ir.h"

namespace onnxtrain::ops {

using graph::Graph;
using graph::Value;
using Attributes = std::map<std::string, graph::AttributeValue>;

class GradientBuilder {
 public:
  GradientBuilder(Graph& graph, graph::Node& node, std::vector<Value*> output_grads,
                  std::vector<bool> input_needs_grad);

  const graph::Node& node() const { return node_; }
  Value* I(size_t i) const;
  Value* O(size_t i) const;
  // Output i of the forward node, created when the model omitted it: for optional outputs
  // that save state for the backward pass (Dropout's mask, MaxPool's Indices,
  // LayerNormalization's Mean and InvStdDev). The forward kernel then produces it.
  Value* saved_output(size_t i, DType dtype);
  // Gradient flowing into output i; zeros shaped like O(i) when nothing flows there.
  Value* GO(size_t i);
  bool has_GO(size_t i) const { return i < output_grads_.size() && output_grads_[i] != nullptr; }
  bool needs_grad(size_t i) const { return i < needs_.size() && needs_[i]; }

  // The gradient of input i, exactly input-shaped.
  void GI(size_t i, Value* grad);
  // The gradient of input i shaped like a broadcast result: the driver sums it back to the
  // input's shape (numpy broadcasting rules).
  void GI_broadcast(size_t i, Value* grad);

  // Emits a node and returns its single output.
  Value* op(const std::string& op_type, std::vector<Value*> inputs, Attributes attrs = {},
            const std::string& domain = graph::kOnnxDomain);
  // Emits a node with several outputs.
  std::vector<Value*> op_n(const std::string& op_type, std::vector<Value*> inputs, size_t outputs,
                           Attributes attrs = {}, const std::string& domain = graph::kOnnxDomain);
  // Emits a node whose output i exists only where wanted[i] (others are omitted, so the
  // kernel can skip them); returns nullptr for the omitted ones.
  std::vector<Value*> op_masked(const std::string& op_type, std::vector<Value*> inputs, const std::vector<bool>& wanted,
                                Attributes attrs = {}, const std::string& domain = graph::kTrainingDomain);
  // Emits an ai.onnxtrain node.
  Value* train_op(const std::string& op_type, std::vector<Value*> inputs, Attributes attrs = {}) {
    return op(op_type, std::move(inputs), std::move(attrs), graph::kTrainingDomain);
  }
  Value* constant(const Tensor& value);
  // A scalar of `like`'s float dtype (float or double).
  Value* scalar(double value, const Value* like);

  // Version-sensitive ONNX ops, emitted in the form of the graph's opset.
  Value* unsqueeze(Value* v, std::vector<int64_t> axes);
  Value* squeeze(Value* v, std::vector<int64_t> axes);
  Value* reduce_sum(Value* v, std::vector<int64_t> axes, bool keepdims);
  Value* transpose(Value* v, std::vector<int64_t> perm) { return op("Transpose", {v}, {{"perm", perm}}); }
  Value* reshape(Value* v, std::vector<int64_t> shape);
  // Rank of a value from shape inference; fails naming the node when it is unknown.
  size_t rank(const Value* v) const;

  // Common helpers built from the ops above.
  Value* shape_of(Value* v);                                  // Shape(v)
  Value* sum_to_shape_of(Value* grad, Value* like);           // ai.onnxtrain.ReduceSumTo
  Value* zeros_like(Value* v);                                // ai.onnxtrain.ZerosLike
  Value* ones_like(Value* v) { return train_op("OnesLike", {v}); }
  // Broadcasts `v` to the shape of `like` (Expand from opset 8, an Add of zeros before).
  Value* expand_like(Value* v, Value* like);
  Value* mul(Value* a, Value* b) { return op("Mul", {a, b}); }
  Value* add(Value* a, Value* b) { return op("Add", {a, b}); }
  Value* sub(Value* a, Value* b) { return op("Sub", {a, b}); }
  Value* div(Value* a, Value* b) { return op("Div", {a, b}); }
  Value* neg(Value* a) { return op("Neg", {a}); }

  // Results, read by the driver.
  struct InputGrad {
    Value* grad = nullptr;
    bool broadcast = false;
  };
  const std::vector<InputGrad>& input_grads() const { return input_grads_; }

 private:
  std::string fresh_name(const std::string& hint);

  Graph& graph_;
  graph::Node& node_;
  std::vector<Value*> output_grads_;
  std::vector<bool> needs_;
  std::vector<InputGrad> input_grads_;
  int counter_ = 0;
};

using GradientRule = std::function<void(GradientBuilder&)>;

}  // namespace onnxtrain::ops
