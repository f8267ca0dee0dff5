#include "ops/registry.h"

namespace onnxtrain::ops {

void register_matmul_ops(Registry& r) {}

}  // namespace onnxtrain::ops
