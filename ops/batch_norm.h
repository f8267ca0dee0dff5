#pragma once
// What graph passes and sessions may ask about BatchNormalization without the kernel
// contract: the training/inference decision belongs to the op's own file.
#include "graph/ir.h"

namespace onnxtrain::ops {

// Whether a BatchNormalization node computes batch statistics. Opsets 1/6 choose training
// with is_test = 0; opsets 7-13 train when the node asks for more than Y; 14+ have the
// training_mode attribute.
bool batchnorm_trains(const graph::Node& node);

}  // namespace onnxtrain::ops
