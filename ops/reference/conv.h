#pragma once
// Naive Conv / ConvTranspose and their gradients (ONNX semantics, any number of spatial
// dims). Conv: X [N, C, D...], W [M, C/group, K...], Y [N, M, O...]. ConvTranspose: X
// [N, C, D...], W [C, M/group, K...], Y [N, M, O...].
#include <optional>

#include "ops/reference/array.h"

namespace onnxtrain::reference {

struct ConvParams {
  Dims strides, dilations;
  Dims pads;            // begins, then ends
  Dims output_padding;  // ConvTranspose only; empty = zeros
  int64_t group = 1;
};

struct ConvGrads {
  Array dx, dw, db;
};

Array conv(const Array& x, const Array& w, const Array* b, const ConvParams& p);
ConvGrads conv_backward(const Array& dy, const Array& x, const Array& w, const ConvParams& p);

Array conv_transpose(const Array& x, const Array& w, const Array* b, const ConvParams& p);
ConvGrads conv_transpose_backward(const Array& dy, const Array& x, const Array& w, const ConvParams& p);

}  // namespace onnxtrain::reference
