#include "ops/registry.h"

namespace onnxtrain::ops {

void register_reduction_ops(Registry& r) {}

}  // namespace onnxtrain::ops
