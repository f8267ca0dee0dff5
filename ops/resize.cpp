#include "ops/registry.h"

namespace onnxtrain::ops {

void register_resize_ops(Registry& r) {}

}  // namespace onnxtrain::ops
