#pragma once
// A single-node gradient case builder for ops with several inputs of mixed roles (data,
// indices, well-separated values for max pooling): check(dtype, node text, inputs, rank of
// Y) builds the GradCase (gradcheck.h) and runs check_gradients. Used by the matmul, conv
// and pool gradient checks.
#include <optional>
#include <string>
#include <vector>

#include "tests/support/gradcheck.h"

namespace onnxtrain::test::node_grad {

struct In {
  std::string name;
  Shape shape;
  // Float inputs take the case's dtype; others (indices) are given.
  std::optional<Tensor> value = std::nullopt;
  bool distinct = false;  // well-separated values (max pooling: no argmax flips under eps)
  bool away_from_zero = false;
};

std::string type_name(DType t);

// ONNX text: "double X" is a rank-0 tensor.
std::string dims_text(const Shape& s);

// A shuffled arithmetic sequence with step 0.05 centred on 0: ties and near-ties are impossible.
Tensor distinct_tensor(DType dtype, const Shape& shape, uint64_t seed);

// Checks the gradients of `node_text` (a node with output Y of rank `y_rank`) in `dtype`.
std::string check(DType dtype, const std::string& node_text, const std::vector<In>& ins, size_t y_rank,
                  std::vector<std::string> wrt = {}, int opset = 17);

inline constexpr DType kBoth[] = {DType::Double, DType::Float};

}  // namespace onnxtrain::test::node_grad
