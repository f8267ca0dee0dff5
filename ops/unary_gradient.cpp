#include "ops/unary_gradient.h"

namespace onnxtrain::ops {

Value* typed_scalar(GradientBuilder& b, double value) {
  const DType dtype = b.O(0)->dtype;
  Value* s = b.scalar(value, b.O(0));
  if (dtype == DType::Float || dtype == DType::Double) return s;
  return b.op("Cast", {s}, {{"to", static_cast<int64_t>(dtype)}});
}

Value* with_scalar(GradientBuilder& b, const char* op, Value* v, double value) {
  Attributes attrs;
  // The builder adds broadcast=1 to arithmetic ops before opset 7, not to comparisons.
  if (b.node().opset < 7) attrs["broadcast"] = int64_t{1};
  return b.op(op, {v, typed_scalar(b, value)}, std::move(attrs));
}

Value* select(GradientBuilder& b, Value* cond, Value* a, Value* otherwise) {
  if (b.node().opset >= 9) return b.op("Where", {cond, a, otherwise ? otherwise : typed_scalar(b, 0.0)});
  const auto to = static_cast<int64_t>(b.O(0)->dtype);
  Value* picked = b.mul(a, b.op("Cast", {cond}, {{"to", to}}));
  if (!otherwise) return picked;
  return b.add(picked, b.mul(otherwise, b.op("Cast", {b.op("Not", {cond})}, {{"to", to}})));
}

}  // namespace onnxtrain::ops
