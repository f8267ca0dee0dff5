#pragma once
// Operators are registered by (domain, op_type, opset range). Each family file has one
// register_<family>_ops(Registry&) called from registry.cpp.
#include <climits>
#include <map>
#include <string>
#include <vector>

#include "ops/gradient.h"
#include "ops/kernel.h"

namespace onnxtrain::ops {

struct OpDef {
  std::string domain;
  std::string op_type;
  int since_version = 1;
  int until_version = INT_MAX;  // inclusive
  KernelFactory kernel;
  // "oneDNN <primitive>" or "own": shown by docs/operators.md and `onnxtrain info`.
  std::string backend = "own";
  // Emits the backward nodes; empty when the op has no gradient rule (yet).
  GradientRule gradient;
  // Inputs no gradient flows to (indices, shapes, axes, ...).
  std::vector<int> non_differentiable_inputs;
  // The op is piecewise constant or integer-valued: its inputs get no gradient and the
  // autodiff pass does not need a rule (Floor, Sign, ArgMax, Shape, comparisons, ...).
  bool not_differentiable = false;
};

class Registry {
 public:
  static const Registry& instance();

  void add(OpDef def);
  // The newest definition whose version range contains `opset`, or nullptr.
  const OpDef* find(const std::string& domain, const std::string& op_type, int opset) const;
  // True when some version of the op is registered (to tell "no kernel" from "not this opset").
  bool knows(const std::string& domain, const std::string& op_type) const;
  std::vector<const OpDef*> all() const;

 private:
  std::map<std::pair<std::string, std::string>, std::vector<OpDef>> defs_;
};

// One per family file.
void register_elementwise_ops(Registry& r);
void register_activation_ops(Registry& r);
void register_binary_ops(Registry& r);
void register_reduction_ops(Registry& r);
void register_matmul_ops(Registry& r);
void register_conv_ops(Registry& r);
void register_pool_ops(Registry& r);
void register_normalization_ops(Registry& r);
void register_softmax_ops(Registry& r);
void register_loss_ops(Registry& r);
void register_shape_ops(Registry& r);
void register_indexing_ops(Registry& r);
void register_generator_ops(Registry& r);
void register_resize_ops(Registry& r);
void register_rnn_ops(Registry& r);
void register_rnn_grad_ops(Registry& r);
void register_random_ops(Registry& r);
void register_autodiff_ops(Registry& r);
void register_optimizer_ops(Registry& r);
void register_clip_grad_ops(Registry& r);
void register_yolo_v5_loss_ops(Registry& r);
void register_yolo_v8_loss_ops(Registry& r);

}  // namespace onnxtrain::ops
