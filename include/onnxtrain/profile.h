#pragma once
// Opt-in timing of a session's runs by operator type and phase
// (TrainingSession::set_profiling / profile). Off, it costs one branch per executed node.
#include <cstdint>
#include <string>
#include <vector>

namespace onnxtrain {

struct OpProfile {
  // The node's op type ("Conv", "ai.onnxtrain.ConvGrad"), or "Reorder": the layout
  // conversions that oneDNN-backed kernels of this phase made between our row-major tensors
  // and oneDNN's preferred layouts (not counted in those kernels' own rows).
  std::string op_type;
  // "forward" (model and loss), "backward" (the autodiff nodes) or "optimizer" (clipping
  // and the update).
  std::string phase;
  double ms = 0;        // total over the profiled runs
  int64_t calls = 0;    // node executions
  // Forward FLOPs of Conv, ConvTranspose, MatMul, Gemm and RNN/GRU/LSTM nodes (a multiply-
  // add counts 2); 0 for other ops.
  double flops = 0;
};

struct ProfileSummary {
  std::vector<OpProfile> ops;  // longest first
  double total_ms = 0;         // sum of ops[].ms
  // Sum of the forward-phase flops: the usual estimate of a training step's compute is 3x
  // this (forward, gradient of the inputs, gradient of the weights) per profiled step.
  double forward_flops = 0;
};

}  // namespace onnxtrain
