#pragma once
// Helpers of the activation, elementwise and binary gradient checks: the backward graph run
// directly (for gradients at kinks, where finite differences cannot judge), and the
// single-input case (UnaryCase) checked against finite differences in one dtype and shape.
#include <ostream>
#include <string>
#include <unordered_map>
#include <vector>

#include "tests/support/gradcheck.h"

namespace onnxtrain::test::unary_grad {

// Runs the backward graph of `loss` (seeded with ones) and returns the gradients of `wrt`.
std::vector<Tensor> gradients(const std::string& text, const std::string& loss, const std::vector<std::string>& wrt,
                              const std::unordered_map<std::string, Tensor>& feeds);

std::vector<double> values(const Tensor& t);

std::string type_name(DType t);

std::string shape_text(const Shape& s);

struct UnaryCase {
  std::string name;   // test name
  std::string node;   // e.g. "LeakyRelu<alpha = 0.1>(X)"
  int opset = 17;
  double lo = -1, hi = 1;
  std::vector<double> kinks;  // inputs kept 0.05 away from these
  std::string extra;          // extra nodes before Y (bounds as Constants); TYPE = element type
};

inline void PrintTo(const UnaryCase& c, std::ostream* os) { *os << c.name; }

std::string unary_check(const UnaryCase& p, DType dtype, const Shape& shape);

}  // namespace onnxtrain::test::unary_grad
