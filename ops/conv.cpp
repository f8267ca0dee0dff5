#include "ops/registry.h"

namespace onnxtrain::ops {

void register_conv_ops(Registry& r) {}

}  // namespace onnxtrain::ops
