#pragma once
// Attaches a loss to a model output: adds the target as a new graph input and the loss
// nodes, and returns the scalar loss value.
#include <string>

#include "graph/ir.h"

namespace onnxtrain::graph {

struct LossSpec {
  // cross_entropy (class-index targets, SoftmaxCrossEntropyLoss semantics), nll (targets
  // are class indices, the output holds log-probabilities), mse, l1.
  std::string kind = "cross_entropy";
  std::string output;            // model output the loss reads; default: the first
  std::string target = "label";  // name of the new graph input holding the targets
  std::string reduction = "mean";  // mean | sum
  int64_t ignore_index = -100;   // cross_entropy / nll: targets with this value are skipped
};

// Returns the loss value (a float scalar). Throws ModelError for an unknown kind, output
// or a target name that is already used.
Value* attach_loss(Graph& graph, const LossSpec& spec);

}  // namespace onnxtrain::graph
