#pragma once
// Forward FLOPs of the ops that dominate training compute (the convention of FLOP counts
// in papers and benchmarks: a multiply-add is 2 FLOPs, everything else is not counted).
#include <vector>

#include "graph/ir.h"
#include "onnxtrain/tensor.h"

namespace onnxtrain {

// Conv, ConvTranspose, MatMul, Gemm, RNN/GRU/LSTM of the ONNX domain: the FLOPs of one run
// with these inputs and outputs; 0 for every other op (including *Grad ops, whose work
// the usual "training = 3 x forward" estimate covers).
double forward_flops(const graph::Node& node, const std::vector<const Tensor*>& inputs,
                     const std::vector<Tensor>& outputs);

}  // namespace onnxtrain
