#pragma once
// Naive MaxPool / AveragePool and their input gradients (ONNX semantics, any number of
// spatial dims). ceil_mode follows ONNX (and PyTorch): a last window must start inside the
// input or its begin padding; count_include_pad counts the window's points inside the
// padded input, never those past the end padding.
#include "ops/reference/array.h"

namespace onnxtrain::reference {

struct PoolParams {
  bool max = true;  // false: average
  Dims kernel, strides, dilations;
  Dims pads;  // begins, then ends
  bool ceil_mode = false;
  bool count_include_pad = false;
};

Dims pool_output_shape(const Dims& x, const PoolParams& p);
Array pool(const Array& x, const PoolParams& p);
// dX for dY; Max routes each window's gradient to its first largest input.
Array pool_backward(const Array& dy, const Array& x, const PoolParams& p);

}  // namespace onnxtrain::reference
