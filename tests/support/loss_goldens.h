#pragma once
// A loss's value and its gradient w.r.t. the model output through the public API, and the
// PyTorch golden files of tests/data/loss (make_loss_goldens.py, make_dice_goldens.py)
// checked with it. The probe model is Y = Add(X, B) with B a zero initializer of X's shape
// (the one parameter), so the gradient of B is dL/dY, computed by the training graph.
#include <map>
#include <string>

#include "onnxtrain/onnxtrain.h"

namespace onnxtrain::test {

std::string probe_model(DType dtype, const Shape& shape);
StepGradients loss_probe(const Tensor& input, const Tensor& target, const LossOptions& loss);

// "kind=...;reduction=...;key=value" (vectors comma-separated) as the golden scripts write
// it; an unknown key fails the test.
LossOptions parse_golden_options(const std::string& text);
// Checks every case <c> of `goldens` whose options have `kind`: <c>.loss within 1e-5
// relative, dL/d(<c>.input) within 1e-5 of <c>.grad (scaled_error). Returns the count.
int check_loss_goldens(const std::map<std::string, Tensor>& goldens, const std::string& kind);

}  // namespace onnxtrain::test
