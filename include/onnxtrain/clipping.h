#pragma once
// Gradient clipping, in place, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_ do it.
// float and double gradients (others throw DataError); null pointers and undefined tensors
// are skipped (torch skips parameters without a gradient).
//
// Reductions run in parallel (OpenMP) over fixed blocks of elements, each accumulated in
// double, and the block results are combined in a fixed order, so the total norm is the
// same bit for bit for any thread count. torch accumulates float gradients in float, so
// for float tensors the norms agree with torch to float rounding (~1e-7 relative).
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "onnxtrain/tensor.h"

namespace onnxtrain {

// The p-norm of all gradients together, as if concatenated into one vector:
// (sum |g|^p)^(1/p) for finite p > 0, max |g| for p = +inf (NaNs propagate).
// norm_type must be > 0 (or +inf); DataError otherwise.
double grad_norm(const std::vector<const Tensor*>& grads, double norm_type = 2.0);

// Computes total_norm = grad_norm(grads, norm_type) and, when
// clip_coef = max_norm / (total_norm + 1e-6) is below 1 (or NaN, as in torch), multiplies
// every gradient by clip_coef (converted to the gradient's type). Returns total_norm.
// max_norm must be >= 0. With error_if_nonfinite, a NaN or infinite total norm throws
// DataError and leaves the gradients unchanged; without it (torch's default) the
// gradients are scaled by the resulting coefficient (0 for an infinite norm, NaN for NaN).
// No gradients: returns 0.
double clip_grad_norm(const std::vector<Tensor*>& grads, double max_norm, double norm_type = 2.0,
                      bool error_if_nonfinite = false);
// The gradients of a TrainingSession step (StepGradients::gradients).
double clip_grad_norm(std::map<std::string, Tensor>& grads, double max_norm, double norm_type = 2.0,
                      bool error_if_nonfinite = false);

// Clamps every gradient element into [-clip_value, clip_value] (the bound converted to the
// gradient's type; NaNs stay NaN). clip_value must be >= 0.
void clip_grad_value(const std::vector<Tensor*>& grads, double clip_value);
void clip_grad_value(std::map<std::string, Tensor>& grads, double clip_value);

}  // namespace onnxtrain
