#include "ops/registry.h"

namespace onnxtrain::ops {

void register_loss_ops(Registry& r) {}

}  // namespace onnxtrain::ops
