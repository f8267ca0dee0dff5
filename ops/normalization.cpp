#include "ops/registry.h"

namespace onnxtrain::ops {

void register_normalization_ops(Registry& r) {}

}  // namespace onnxtrain::ops
