#include "ops/registry.h"

namespace onnxtrain::ops {

void register_elementwise_ops(Registry& r) {}

}  // namespace onnxtrain::ops
