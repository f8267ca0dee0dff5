#pragma once
// Gradient-norm arithmetic shared by the ai.onnxtrain ClipGradNorm op and the public
// clipping functions (include/onnxtrain/clipping.h): fixed-size blocks reduced in double
// and combined in a fixed order, so results do not depend on the thread count.
#include <vector>

#include "onnxtrain/tensor.h"

namespace onnxtrain::ops {

// The p-norm of all tensors together (null and undefined tensors skipped). `what` names
// the caller in errors (non-float tensors, norm_type <= 0).
double gradient_norm(const std::vector<const Tensor*>& grads, double norm_type, const char* what);
// torch's clip coefficient max_norm / (total_norm + 1e-6); scaling happens below 1 or for NaN.
double clip_coefficient(double max_norm, double total_norm);
bool clip_scales(double coefficient);
// dst = src * coefficient (converted to the tensor's type); dst may be src.
void scale_gradient(const Tensor& src, Tensor& dst, double coefficient);
// Clamps every element into [-clip_value, clip_value]; NaNs stay.
void clamp_gradient(Tensor& grad, double clip_value);

}  // namespace onnxtrain::ops
