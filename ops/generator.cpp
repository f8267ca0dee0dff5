#include "ops/registry.h"

namespace onnxtrain::ops {

void register_generator_ops(Registry& r) {}

}  // namespace onnxtrain::ops
