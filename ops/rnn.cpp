#include "ops/registry.h"

namespace onnxtrain::ops {

void register_rnn_ops(Registry& r) {}

}  // namespace onnxtrain::ops
