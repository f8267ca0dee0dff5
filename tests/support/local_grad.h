#pragma once
// Gradient-check helpers of the normalization, resize and random (Dropout) families:
// local_check, a finite-difference check with a fresh executor per evaluation (for seeded
// ops and opsets < 8), and check(c, opset), which picks it or test::check_gradients.
#include <map>
#include <string>
#include <vector>

#include "tests/support/unary_grad.h"

namespace onnxtrain::test::local_grad {

using unary_grad::type_name;

// "[2,3]" (ONNX text dims).
inline std::string dims(const Shape& s) { return unary_grad::shape_text(s); }

// float32 cases check the oneDNN backward paths: four-point differences, loose tolerances.
void loosen_for_float(GradCase& c, DType dt);

// A finite-difference check that builds a fresh executor for every evaluation and takes
// sum(Y * R) in C++ instead of with ReduceSumTo. Used (1) for Dropout: its seeded generator
// advances on every run of one executor, so test::check_gradients' single forward
// executor would draw a new mask per evaluation, while a fresh executor draws the same
// mask as the backward run; (2) for models of opset < 8, where check_gradients' loss
// (ReduceSumTo, whose rule emits Expand-8) cannot be differentiated.
std::string local_check(const std::string& model_text, const std::map<std::string, Tensor>& inputs,
                        const std::vector<std::string>& wrt, double eps, double rtol, double atol,
                        bool four_point = false);

// Runs `c` through test::check_gradients, or through local_check for opsets < 8.
std::string check(const GradCase& c, int opset);

}  // namespace onnxtrain::test::local_grad
