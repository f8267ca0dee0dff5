#pragma once
// The optimizer stage as a graph pass: appends gradient clipping (when asked) and the
// fused ai.onnxtrain update nodes to a training graph that already holds the forward
// pass, the loss and the backward pass. The result is one graph — forward, loss,
// backward, clipping, update — that a session runs with one executor and that
// TrainingSession::export_training_model writes as the TrainingInfoProto algorithm.
//
// Graph contract (names are part of the exported training-model format):
//   input  "learning_rate"    double scalar: the scheduled base learning rate; a parameter
//                             group with its own lr multiplies it by group.lr / base lr
//   input  "onnxtrain.step"   int64 scalar: optimizer steps taken so far; the update nodes
//                             see T = step + 1 ("onnxtrain.step.next")
//   initializers "<parameter>.<state>"  optimizer state (zeros until the first update)
//   outputs "<name>.updated"  new values of parameters and states (the update nodes write
//                             in place, so these alias the initializers)
#include <string>
#include <utility>
#include <vector>

#include "graph/ir.h"
#include "onnxtrain/training.h"

namespace onnxtrain::graph {

inline constexpr const char* kLearningRateInput = "learning_rate";
inline constexpr const char* kStepInput = "onnxtrain.step";

struct OptimizerStage {
  std::string learning_rate, step, next_step;
  std::string grad_norm;                    // total norm before clipping; "" without clipping
  std::vector<std::string> states;          // optimizer state initializers
  std::vector<std::string> update_outputs;  // what an update run fetches
  // initializer -> the output that replaces it after an update (parameters, states, step)
  std::vector<std::pair<std::string, std::string>> update_binding;
};

struct OptimizerStageOptions {
  OptimizerOptions optimizer;
  double clip_grad_norm = 0;  // > 0: a ClipGradNorm node before the update
  // State initializers already in the graph (a training model being continued) are used
  // as they are; otherwise an initializer with a state's name is an error.
  bool reuse_state = false;
};

// `parameters` are initializers of `graph`, `gradients` their gradient values (same order).
// Throws DataError for invalid options (unknown optimizer, negative lr, bad group regex).
OptimizerStage append_optimizer_stage(Graph& graph, const std::vector<std::string>& parameters,
                                      const std::vector<std::string>& gradients, const OptimizerStageOptions& options);

}  // namespace onnxtrain::graph
