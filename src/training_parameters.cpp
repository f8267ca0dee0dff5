// TrainingSession parameter access by name (copies and zero-copy views of the live storage,
// which the model, the training graph and the evaluation graph share) and the contiguous
// parameter buffer (ORT's CopyParametersToBuffer / CopyBufferToParameters).
#include <cstring>

#include "src/training_session_impl.h"

namespace onnxtrain {

namespace {

// The storage of a float initializer of the model; optimizer state and the step count are
// initializers of the training graph only, so they are not reachable by name here.
Tensor& storage(const Model& model, const graph::Graph& graph, const std::string& name) {
  const graph::Value* in_model = model.graph().find_value(name);
  graph::Value* v = graph.find_value(name);
  if (!in_model || in_model->kind != graph::ValueKind::Initializer || !v || !v->data || !is_floating(v->dtype))
    throw DataError("the model has no float parameter or buffer named '" + name + "'");
  return *v->data;
}

void check_same(const Tensor& value, const Tensor& target, const std::string& what) {
  if (value.dtype() != target.dtype() || value.shape() != target.shape())
    throw ShapeError(what + " is " + dtype_name(target.dtype()) + shape_str(target.shape()) + ", the value given is " +
                     dtype_name(value.dtype()) + shape_str(value.shape()));
}

// The one dtype of the trainable parameters (the buffer's).
DType buffer_dtype(const graph::Graph& graph, const std::vector<std::string>& trainable) {
  const DType dtype = graph.value(trainable.front()).dtype;
  for (const auto& name : trainable)
    if (graph.value(name).dtype != dtype)
      throw DataError("the trainable parameters mix " + dtype_name(dtype) + " and " +
                      dtype_name(graph.value(name).dtype) + " ('" + name + "'): no single buffer holds them");
  return dtype;
}

void check_buffer(const graph::Graph& graph, const std::vector<std::string>& trainable, int64_t elements,
                  const Tensor& buffer) {
  const DType dtype = buffer_dtype(graph, trainable);
  if (buffer.dtype() != dtype || buffer.numel() != elements)
    throw ShapeError("the parameter buffer must hold " + std::to_string(elements) + " " + dtype_name(dtype) +
                     " values, it is " + dtype_name(buffer.dtype()) + shape_str(buffer.shape()));
}

}  // namespace

Tensor TrainingSession::parameter(const std::string& name) const { return storage(*impl_->model, *impl_->graph, name).clone(); }

void TrainingSession::set_parameter(const std::string& name, const Tensor& value) {
  Tensor& target = storage(*impl_->model, *impl_->graph, name);
  check_same(value, target, "parameter '" + name + "'");
  std::memcpy(target.raw(), value.raw(), target.nbytes());
}

Tensor TrainingSession::parameter_view(const std::string& name) { return storage(*impl_->model, *impl_->graph, name); }

Tensor TrainingSession::copy_parameters_to_buffer() const {
  Tensor buffer(buffer_dtype(*impl_->graph, impl_->trainable), {impl_->trainable_elements});
  copy_parameters_to_buffer(buffer);
  return buffer;
}

void TrainingSession::copy_parameters_to_buffer(Tensor& buffer) const {
  const Impl& s = *impl_;
  check_buffer(*s.graph, s.trainable, s.trainable_elements, buffer);
  auto* out = static_cast<std::byte*>(buffer.raw());
  for (const auto& name : s.trainable) {
    const Tensor& p = *s.graph->value(name).data;
    std::memcpy(out, p.raw(), p.nbytes());
    out += p.nbytes();
  }
}

void TrainingSession::copy_buffer_to_parameters(const Tensor& buffer) {
  Impl& s = *impl_;
  check_buffer(*s.graph, s.trainable, s.trainable_elements, buffer);
  const auto* in = static_cast<const std::byte*>(buffer.raw());
  for (const auto& name : s.trainable) {
    Tensor& p = *s.graph->value(name).data;
    std::memcpy(p.raw(), in, p.nbytes());
    in += p.nbytes();
  }
}

}  // namespace onnxtrain
