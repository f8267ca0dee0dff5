#pragma once
// Anomaly mode (TrainingOptions::detect_anomaly, like torch.autograd.detect_anomaly): the
// executor checks each node's float outputs as it runs, so the first node producing NaN or
// Inf is named, not only the loss.
#include <vector>

#include "graph/ir.h"
#include "onnxtrain/tensor.h"

namespace onnxtrain {

// Throws NonFiniteLoss naming `node`, its output `output` and the first non-finite element
// when `value` (float or double) holds NaN or Inf; says which input already did, if any.
void check_finite(const graph::Node& node, size_t output, const Tensor& value, const std::vector<const Tensor*>& inputs);

}  // namespace onnxtrain
