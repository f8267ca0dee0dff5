#pragma once
// Internal to the loss stage (graph/loss*.cpp): appends the ONNX nodes of a loss to the
// training graph. Every node is a standard op with a gradient rule, so autodiff
// differentiates the loss like the model.
#include <map>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "onnxtrain/training.h"

namespace onnxtrain::graph {

class LossBuilder {
 public:
  // `dtype`: the float type of the model output; constants and results take it.
  LossBuilder(Graph& graph, DType dtype) : g_(graph), dtype_(dtype) {}

  Graph& graph() { return g_; }
  DType dtype() const { return dtype_; }

  // Appends `op` at opset max(model, 13) (the axes-as-input forms); returns its output,
  // of `dtype` (default: the loss dtype).
  Value* op(const std::string& op_type, std::vector<Value*> inputs, const std::string& hint,
            std::map<std::string, AttributeValue> attrs = {}, DType dtype = DType::Undefined);
  // Both outputs of a two-output op (SoftmaxCrossEntropyLoss: loss and log_prob).
  std::pair<Value*, Value*> op2(const std::string& op_type, std::vector<Value*> inputs, const std::string& hint,
                                std::map<std::string, AttributeValue> attrs);

  // Float constants in the loss dtype (a scalar, or `values` with `shape`).
  Value* scalar(double value, const std::string& hint);
  Value* constant(const std::vector<double>& values, Shape shape, const std::string& hint);
  Value* int64s(const std::vector<int64_t>& values, Shape shape, const std::string& hint);

  // ReduceSum / ReduceMean over every element to a scalar ("sum" or "mean").
  Value* reduce_all(Value* v, const std::string& reduction);
  // The size of `v`'s axis as a scalar of the loss dtype: a constant when the shape is
  // known, else Shape -> Gather -> Cast at run time.
  Value* dim_size(Value* v, int64_t axis);

 private:
  std::string name(const std::string& hint) { return g_.unique_name("loss/" + hint); }
  Graph& g_;
  DType dtype_;
};

// The model output named `name` (the first output when empty); throws ModelError when
// `name` is not an output of the model.
Value* model_output(Graph& g, const std::string& name);

// Throws ModelError (naming `v` and `what` it is) unless `v` is float with one element
// (by its static shape).
void require_scalar(const Value& v, const std::string& what);
// Returns `v` (checked by require_scalar) as a new rank-0 value: Identity for a scalar,
// Reshape for a single element.
Value* scalar_loss_value(Graph& g, Value* v, const std::string& what);

// The kinds "dice" and "cross_entropy_dice" (graph/loss_dice.cpp): their option checks
// (also that the dice options are not set for other kinds), and the loss; `cross_entropy`
// is null for dice, the cross-entropy term for cross_entropy_dice.
void check_dice_options(const LossOptions& options);
Value* attach_dice(LossBuilder& b, Value* out, Value* target, const LossOptions& options, Value* cross_entropy);

// The loss kinds "output" and "custom" (graph/loss_custom.cpp).
Value* attach_output_loss(Graph& g, const LossOptions& options);
Value* attach_custom_loss(Graph& g, const LossOptions& options);

}  // namespace onnxtrain::graph
