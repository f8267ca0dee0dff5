#pragma once
// Naive Softmax / LogSoftmax over one axis (opset 13 semantics) and their gradients.
#include "ops/reference/array.h"

namespace onnxtrain::reference {

Array softmax(const Array& x, int64_t axis, bool log);
// dX from dY and the forward's output Y.
Array softmax_backward(const Array& dy, const Array& y, int64_t axis, bool log);

}  // namespace onnxtrain::reference
