#pragma once
// BatchNormalization running statistics in a training graph. A training-mode node
// computes new running mean/variance as outputs; a training step writes them back to the
// initializers they replace. That write-back is an update binding (initializer <- value),
// the same notion as ONNX TrainingInfoProto's update_binding.
#include <string>
#include <utility>
#include <vector>

#include "graph/ir.h"

namespace onnxtrain::graph {

// One binding per running statistic of every training-mode BatchNormalization whose
// statistics are initializers. With `unbiased_variance` (PyTorch's convention), nodes are
// added that turn ONNX's update with the population batch variance, m*old + (1-m)*var,
// into torch's with the unbiased one: m*old + (1-m)*var*n/(n-1), n = elements per channel.
std::vector<std::pair<std::string, std::string>> bind_running_statistics(Graph& graph, bool unbiased_variance);

}  // namespace onnxtrain::graph
