// Views (Reshape, Flatten, Squeeze, Unsqueeze, Identity) and shape queries (Shape, Size),
// with their gradient rules. Shared helpers: shape_common.h.
#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <string>

#include "ops/shape_common.h"

namespace onnxtrain::ops {

namespace shape_impl {

// ---- views ----------------------------------------------------------------------------

// A view whose output shape depends only on the input shape and integer operands.
template <typename ShapeFn>
std::unique_ptr<Kernel> view_kernel(const std::vector<InputInfo>& in, std::vector<size_t> operands, ShapeFn shape_of) {
  return planned(in, std::move(operands), shape_of,
                 [](KernelContext& ctx, const Shape& shape) { ctx.set_output_view(0, ctx.input(0), shape); });
}

std::unique_ptr<Kernel> make_reshape(const Node& node, const std::vector<InputInfo>& in) {
  const Shape in_shape = in[0].shape;
  const bool allow_zero = node.opset >= 14 && node.attr_int("allowzero", 0) != 0;
  return view_kernel(in, {1}, [&node, in_shape, allow_zero](const IntArgs& args) {
    auto spec = operand(node, args, 5, 1, "shape");
    if (!spec) fail(node, "needs the target shape");
    Shape out = *spec;
    int infer = -1;
    int64_t known = 1;
    for (size_t i = 0; i < out.size(); ++i) {
      if (out[i] == -1) {
        if (infer >= 0) fail_shape(node, "shape " + ints_str(*spec) + " has more than one -1");
        infer = static_cast<int>(i);
        continue;
      }
      if (out[i] == 0 && !allow_zero) {
        if (i >= in_shape.size())
          fail_shape(node, "shape " + ints_str(*spec) + " copies dimension " + std::to_string(i) + " of input " +
                               shape_str(in_shape) + ", which has no such dimension");
        out[i] = in_shape[i];
      }
      if (out[i] < 0) fail_shape(node, "shape " + ints_str(*spec) + " has an invalid dimension");
      if (__builtin_mul_overflow(known, out[i], &known)) fail_shape(node, "shape " + ints_str(*spec) + " is too large");
    }
    const int64_t numel = shape_numel(in_shape);
    if (infer >= 0) {
      if (allow_zero && known == 0)
        fail_shape(node, "shape " + ints_str(*spec) + " has both 0 (allowzero) and -1");
      if (known == 0 || numel % known != 0)
        fail_shape(node, "cannot infer the -1 in shape " + ints_str(*spec) + " for input " + shape_str(in_shape));
      out[infer] = numel / known;
    } else if (known != numel) {
      fail_shape(node, "cannot reshape " + shape_str(in_shape) + " to " + shape_str(out));
    }
    return out;
  });
}

std::unique_ptr<Kernel> make_flatten(const Node& node, const std::vector<InputInfo>& in) {
  const Shape s = in[0].shape;
  const int64_t rank = s.size();
  int64_t axis = node.attr_int("axis", 1);
  if (axis < -rank || axis > rank)
    fail_shape(node, "axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  if (axis < 0) axis += rank;
  Shape out{shape_numel(Shape(s.begin(), s.begin() + axis)), shape_numel(Shape(s.begin() + axis, s.end()))};
  return view_kernel(in, {}, [out](const IntArgs&) { return out; });
}

std::unique_ptr<Kernel> make_squeeze(const Node& node, const std::vector<InputInfo>& in) {
  const Shape s = in[0].shape;
  return view_kernel(in, {1}, [&node, s](const IntArgs& args) {
    auto axes = operand(node, args, 13, 1, "axes");
    std::vector<bool> drop(s.size(), false);
    if (!axes) {
      for (size_t d = 0; d < s.size(); ++d) drop[d] = s[d] == 1;
    } else {
      for (int64_t a : unique_axes(*axes, s.size(), node)) {
        if (s[a] != 1)
          fail_shape(node, "cannot squeeze axis " + std::to_string(a) + " of shape " + shape_str(s) + ": it is not 1");
        drop[a] = true;
      }
    }
    Shape out;
    for (size_t d = 0; d < s.size(); ++d)
      if (!drop[d]) out.push_back(s[d]);
    return out;
  });
}

std::unique_ptr<Kernel> make_unsqueeze(const Node& node, const std::vector<InputInfo>& in) {
  const Shape s = in[0].shape;
  return view_kernel(in, {1}, [&node, s](const IntArgs& args) {
    auto axes = operand(node, args, 13, 1, "axes");
    if (!axes) fail(node, "needs axes");
    const int64_t rank = s.size() + axes->size();
    std::vector<bool> inserted(rank, false);
    for (int64_t a : unique_axes(*axes, rank, node)) inserted[a] = true;
    Shape out;
    size_t next = 0;
    for (int64_t d = 0; d < rank; ++d) out.push_back(inserted[d] ? 1 : s[next++]);
    return out;
  });
}

// ---- shape queries ------------------------------------------------------------------

std::unique_ptr<Kernel> make_shape(const Node& node, const std::vector<InputInfo>& in) {
  const int64_t rank = in[0].shape.size();
  auto clamp_axis = [rank](int64_t a) { return std::clamp(a < 0 ? a + rank : a, int64_t{0}, rank); };
  int64_t start = 0, end = rank;
  if (node.opset >= 15) {
    start = clamp_axis(node.attr_int("start", 0));
    if (node.has_attr("end")) end = clamp_axis(node.attr_int("end"));
  }
  const Shape dims(in[0].shape.begin() + start, in[0].shape.begin() + std::max(start, end));
  return make_function_kernel([dims](KernelContext& ctx) {
    Tensor& y = ctx.output(0, DType::Int64, {static_cast<int64_t>(dims.size())});
    std::copy(dims.begin(), dims.end(), y.data<int64_t>());
  });
}

std::unique_ptr<Kernel> make_size(const Node&, const std::vector<InputInfo>& in) {
  const int64_t n = shape_numel(in[0].shape);
  return make_function_kernel([n](KernelContext& ctx) { *ctx.output(0, DType::Int64, {}).data<int64_t>() = n; });
}

// ---- gradient rules ------------------------------------------------------------------------

// dY viewed with X's shape (Reshape: a view, no copy). The shape is read at run time.
Value* reshape_like(GradientBuilder& b, Value* grad, Value* x) {
  const Node& n = b.node();
  if (n.opset >= 5) {
    Attributes attrs;
    // Shape(X) may hold 0 dims (empty tensors): they are sizes, not "copy this dim".
    if (n.opset >= 14) attrs["allowzero"] = int64_t{1};
    return b.op("Reshape", {grad, b.shape_of(x)}, attrs);
  }
  // Reshape-1 takes the shape as an attribute: only a statically known shape will do.
  std::vector<int64_t> shape;
  bool known = x->dims.has_value();
  if (known)
    for (const auto& d : *x->dims) {
      known = known && d.known() && d.value > 0;
      shape.push_back(d.value);
    }
  if (!known)
    throw UnsupportedOp(n.describe() + ": the gradient needs a Reshape to the input's shape, which opset " +
                        std::to_string(n.opset) + " can only express for a statically known, non-empty shape");
  return b.op("Reshape", {grad}, {{"shape", shape}});
}

void view_gradient(GradientBuilder& b) {
  if (b.needs_grad(0)) b.GI(0, reshape_like(b, b.GO(0), b.I(0)));
}

void identity_gradient(GradientBuilder& b) {
  if (b.needs_grad(0)) b.GI(0, b.GO(0));
}

}  // namespace shape_impl

void register_reshape_ops(Registry& r) {
  using namespace shape_impl;
  auto view = [](const Node&, const std::vector<InputInfo>&) -> std::unique_ptr<Kernel> {
    return make_function_kernel([](KernelContext& ctx) { ctx.set_output(0, ctx.input(0)); });
  };
  r.add({"", "Identity", 1, INT_MAX, view, "own (view)", identity_gradient});
  r.add({"", "Reshape", 1, INT_MAX, make_reshape, "own (view)", view_gradient, {1}});
  r.add({"", "Flatten", 1, INT_MAX, make_flatten, "own (view)", view_gradient});
  r.add({"", "Squeeze", 1, INT_MAX, make_squeeze, "own (view)", view_gradient, {1}});
  r.add({"", "Unsqueeze", 1, INT_MAX, make_unsqueeze, "own (view)", view_gradient, {1}});
  r.add({"", "Shape", 1, INT_MAX, make_shape, "own", {}, {}, /*not_differentiable*/ true});
  r.add({"", "Size", 1, INT_MAX, make_size, "own", {}, {}, /*not_differentiable*/ true});
}

}  // namespace onnxtrain::ops
