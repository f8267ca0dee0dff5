#include "ops/registry.h"

namespace onnxtrain::ops {

void register_pool_ops(Registry& r) {}

}  // namespace onnxtrain::ops
