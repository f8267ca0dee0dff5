#include "ops/registry.h"

namespace onnxtrain::ops {

void register_softmax_ops(Registry& r) {}

}  // namespace onnxtrain::ops
