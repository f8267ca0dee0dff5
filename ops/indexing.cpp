#include "ops/registry.h"

namespace onnxtrain::ops {

void register_indexing_ops(Registry& r) {}

}  // namespace onnxtrain::ops
