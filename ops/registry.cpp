#include "ops/registry.h"

#include <algorithm>

#include "ops/rules.h"

namespace onnxtrain::ops {

const Registry& Registry::instance() {
  static const Registry registry = [] {
    Registry r;
    register_elementwise_ops(r);
    register_activation_ops(r);
    register_binary_ops(r);
    register_reduction_ops(r);
    register_matmul_ops(r);
    register_conv_ops(r);
    register_pool_ops(r);
    register_normalization_ops(r);
    register_softmax_ops(r);
    register_loss_ops(r);
    register_shape_ops(r);
    register_indexing_ops(r);
    register_generator_ops(r);
    register_resize_ops(r);
    register_rnn_ops(r);
    register_rnn_grad_ops(r);
    register_random_ops(r);
    register_autodiff_ops(r);
    register_optimizer_ops(r);
    register_clip_grad_ops(r);
    register_yolo_v5_loss_ops(r);
    register_yolo_v8_loss_ops(r);
    return r;
  }();
  return registry;
}

static std::string canonical_domain(const std::string& domain) {
  return domain == "ai.onnx" ? std::string() : domain;
}

void Registry::add(OpDef def) {
  auto& list = defs_[{canonical_domain(def.domain), def.op_type}];
  list.push_back(std::move(def));
  std::sort(list.begin(), list.end(),
            [](const OpDef& a, const OpDef& b) { return a.since_version > b.since_version; });
}

const OpDef* Registry::find(const std::string& domain, const std::string& op_type, int opset) const {
  auto it = defs_.find({canonical_domain(domain), op_type});
  if (it == defs_.end()) return nullptr;
  for (const OpDef& d : it->second)
    if (d.since_version <= opset && opset <= d.until_version) return &d;
  return nullptr;
}

bool Registry::knows(const std::string& domain, const std::string& op_type) const {
  return defs_.count({canonical_domain(domain), op_type}) != 0;
}

std::vector<const OpDef*> Registry::all() const {
  std::vector<const OpDef*> out;
  for (const auto& [key, list] : defs_)
    for (const OpDef& d : list) out.push_back(&d);
  return out;
}

std::optional<GradientRuleInfo> find_gradient_rule(const std::string& domain, const std::string& op_type, int opset) {
  const OpDef* def = Registry::instance().find(domain, op_type, opset);
  if (!def) return std::nullopt;
  return GradientRuleInfo{def->gradient ? &def->gradient : nullptr, &def->non_differentiable_inputs,
                          def->not_differentiable};
}

const Tensor& KernelContext::input(size_t i) const {
  if (!has_input(i)) fail(node_, "required input " + std::to_string(i) + " is missing");
  return *inputs_[i];
}

Tensor& KernelContext::output(size_t i, DType dtype, std::span<const int64_t> shape) {
  if (i >= outputs_.size()) fail(node_, "has no output " + std::to_string(i));
  allocator_.allocate_into(outputs_[i], dtype, shape);
  return outputs_[i];
}

void KernelContext::set_output_view(size_t i, const Tensor& source, std::span<const int64_t> shape) {
  if (i >= outputs_.size()) fail(node_, "has no output " + std::to_string(i));
  outputs_[i].assign_reshaped(source, shape);
}

void KernelContext::set_output(size_t i, const Tensor& tensor) {
  if (i >= outputs_.size()) fail(node_, "has no output " + std::to_string(i));
  outputs_[i] = tensor;  // assignment reuses the output's shape capacity
}

void KernelContext::set_output(size_t i, Tensor&& tensor) {
  if (i >= outputs_.size()) fail(node_, "has no output " + std::to_string(i));
  outputs_[i] = std::move(tensor);
}

void fail(const Node& node, const std::string& message) {
  throw ModelError(node.describe() + ": " + message);
}

void fail_shape(const Node& node, const std::string& message) {
  throw ShapeError(node.describe() + ": " + message);
}

}  // namespace onnxtrain::ops
