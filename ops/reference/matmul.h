#pragma once
// Naive MatMul (numpy semantics: batch broadcasting, 1-D operands) with its gradients, and
// Gemm (transA/transB, alpha, beta, C broadcast to [M, N]).
#include "ops/reference/array.h"

namespace onnxtrain::reference {

Array matmul(const Array& a, const Array& b);

struct MatMulGrads {
  Array da, db;  // shaped like A and B: broadcast batch dims summed
};
MatMulGrads matmul_backward(const Array& dy, const Array& a, const Array& b);

Array gemm(const Array& a, const Array& b, const Array* c, bool trans_a, bool trans_b, double alpha, double beta);

}  // namespace onnxtrain::reference
