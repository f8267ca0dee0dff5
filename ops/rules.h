#pragma once
// The autodiff pass's view of the operator registry: gradient rules and which inputs are
// differentiable, without the kernel contract (ops/kernel.h) that registry.h carries.
#include <optional>
#include <string>
#include <vector>

#include "ops/gradient.h"

namespace onnxtrain::ops {

struct GradientRuleInfo {
  // Emits the backward nodes; nullptr when the op has no gradient rule (yet).
  const GradientRule* rule = nullptr;
  // Inputs no gradient flows to (indices, shapes, axes, ...).
  const std::vector<int>* non_differentiable_inputs = nullptr;
  // Piecewise constant or integer-valued: no input gets a gradient, no rule is needed.
  bool not_differentiable = false;
};

// The rule of the newest registered version of the op that covers `opset`; nothing for an
// op onnxtrain does not know (autodiff treats it as differentiable without a rule, so a
// path through it fails loudly).
std::optional<GradientRuleInfo> find_gradient_rule(const std::string& domain, const std::string& op_type, int opset);

}  // namespace onnxtrain::ops
