#pragma once
// check_gradients: compares the backward graph that autodiff builds for a small model
// against central finite differences. The scalar checked is sum(Y * R) for a fixed random
// R, so every element of the output's gradient matters.
#include <map>
#include <string>
#include <vector>

#include "onnxtrain/tensor.h"

namespace onnxtrain::test {

struct GradCase {
  // ONNX text of a model whose inputs are the op's inputs (float64 where the op's kernels
  // support it: differences in double are exact enough for tight tolerances).
  std::string model_text;
  std::map<std::string, Tensor> inputs;
  // Inputs to check; default: every floating-point input.
  std::vector<std::string> wrt;
  // Output to check; default: the first graph output.
  std::string output;
  double eps = 0;   // default: 1e-6 for float64, 1e-2 for float32
  double rtol = 0;  // default: 1e-5 for float64, 2e-2 for float32
  double atol = 0;  // default: 1e-7 for float64, 2e-3 for float32
  bool four_point = false;
  // At most this many elements of each input are perturbed (spread over the tensor).
  int max_elements = 48;
  uint64_t seed = 1;
};

// Empty when every gradient matches; otherwise a per-input report of the worst elements.
std::string check_gradients(const GradCase& c);

// Random tensor helpers for building cases.
Tensor random_tensor(DType dtype, const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0);
// Values in [lo, hi] at least `gap` away from each of `kinks` (e.g. 0 for Relu/Abs).
Tensor random_away_from(DType dtype, const Shape& shape, uint64_t seed, std::vector<double> kinks, double gap = 0.05,
                        double lo = -1.0, double hi = 1.0);

}  // namespace onnxtrain::test
