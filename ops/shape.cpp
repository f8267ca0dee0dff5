#include "ops/registry.h"

namespace onnxtrain::ops {

void register_shape_ops(Registry& r) {}

}  // namespace onnxtrain::ops
