#include "ops/registry.h"

namespace onnxtrain::ops {

void register_binary_ops(Registry& r) {}

}  // namespace onnxtrain::ops
