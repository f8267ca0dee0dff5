#include "ops/registry.h"

namespace onnxtrain::ops {

void register_random_ops(Registry& r) {}

}  // namespace onnxtrain::ops
