#pragma once
// Naive BatchNormalization over X [N, C, D...] with per-channel scale, bias, mean, var.
#include "ops/reference/array.h"

namespace onnxtrain::reference {

struct BatchNormResult {
  Array y;
  Array batch_mean, batch_var;  // training only: the batch statistics (population variance)
  Array running_mean, running_var;  // training only: momentum * input + (1 - momentum) * batch
};

// training: normalise with the batch's own statistics; otherwise with `mean` and `var`.
BatchNormResult batch_norm(const Array& x, const Array& scale, const Array& bias, const Array& mean, const Array& var,
                           double epsilon, double momentum, bool training);

struct BatchNormGrads {
  Array dx, dscale, dbias;
};

// training: mean and var are the batch statistics and depend on X (their derivatives are
// part of dX); otherwise they are the running statistics, constants.
BatchNormGrads batch_norm_backward(const Array& dy, const Array& x, const Array& scale, const Array& mean,
                                   const Array& var, double epsilon, bool training);

// The per-channel batch mean and population variance of X.
void batch_moments(const Array& x, Array& mean, Array& var);

}  // namespace onnxtrain::reference
