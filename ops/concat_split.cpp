// Concat and Split, with the backward kernel and gradient rules. Shared helpers:
// shape_common.h.
#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <string>

#include "ops/shape_common.h"

namespace onnxtrain::ops {

namespace shape_impl {

// ---- concat / split -------------------------------------------------------------------

std::unique_ptr<Kernel> make_concat(const Node& node, const std::vector<InputInfo>& in) {
  if (in.empty()) fail(node, "needs at least one input");
  if (node.opset >= 4 && !node.has_attr("axis")) fail(node, "needs the 'axis' attribute");
  const int64_t rank = in[0].shape.size();
  if (rank == 0) fail_shape(node, "cannot concatenate scalars");
  const int64_t axis = normalize_axis(node.attr_int("axis", 1), rank, node);
  Shape out = in[0].shape;
  out[axis] = 0;
  for (const InputInfo& x : in) {
    bool fits = x.present && static_cast<int64_t>(x.shape.size()) == rank && x.dtype == in[0].dtype;
    for (int64_t d = 0; fits && d < rank; ++d) fits = d == axis || x.shape[d] == out[d];
    if (!fits) fail_shape(node, "input " + shape_str(x.shape) + " does not fit " + shape_str(in[0].shape) + " on axis " + std::to_string(axis));
    out[axis] += x.shape[axis];
  }
  return make_function_kernel([axis, out](KernelContext& ctx) {
    Tensor& y = ctx.output(0, ctx.input(0).dtype(), out);
    const Shape dst_strides = strides_of(out);
    const size_t es = dtype_size(y.dtype());
    int64_t offset = 0;
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      const Tensor& x = ctx.input(i);
      copy_nd(es, x.shape(), static_cast<std::byte*>(y.raw()) + offset * dst_strides[axis] * es, dst_strides, x.raw(),
              strides_of(x.shape()));
      offset += x.dim(axis);
    }
  });
}

std::unique_ptr<Kernel> make_split(const Node& node, const std::vector<InputInfo>& in) {
  const Shape s = in[0].shape;
  const int64_t axis = normalize_axis(node.attr_int("axis", 0), s.size(), node);
  const int64_t parts = node.outputs.size();
  return planned(in, {1}, [&node, s, axis, parts](const IntArgs& args) {
    // Opset 1 took `split` from an attribute or a second input, 2-12 from the attribute.
    std::optional<std::vector<int64_t>> split;
    if (node.opset >= 13 || (node.opset == 1 && !node.has_attr("split"))) split = args[1];
    else if (node.has_attr("split")) split = node.attr_ints("split");
    if (!split && node.opset >= 18 && node.has_attr("num_outputs")) {
      // Opset 18: num_outputs chunks of ceil(dim / n), the last one smaller.
      if (node.attr_int("num_outputs") != parts)
        fail(node, "num_outputs is " + std::to_string(node.attr_int("num_outputs")) + " but the node has " +
                       std::to_string(parts) + " outputs");
      const int64_t chunk = (s[axis] + parts - 1) / parts;
      split.emplace();
      for (int64_t i = 0; i < parts; ++i) split->push_back(std::max<int64_t>(0, std::min(chunk, s[axis] - chunk * i)));
    }
    if (!split) {
      if (parts == 0 || s[axis] % parts != 0)
        fail_shape(node, "cannot split axis " + std::to_string(axis) + " of " + shape_str(s) + " into " +
                             std::to_string(parts) + " equal parts");
      split = std::vector<int64_t>(parts, s[axis] / parts);
    }
    if (static_cast<int64_t>(split->size()) != parts)
      fail(node, "split " + ints_str(*split) + " does not have one length per output (" + std::to_string(parts) + ")");
    int64_t total = 0;
    for (int64_t v : *split) {
      if (v < 0 || __builtin_add_overflow(total, v, &total)) fail(node, "invalid split " + ints_str(*split));
    }
    if (total != s[axis])
      fail_shape(node, "split " + ints_str(*split) + " does not sum to dimension " + std::to_string(s[axis]) + " of " + shape_str(s));
    return *split;
  }, [axis](KernelContext& ctx, const std::vector<int64_t>& split) {
    const Tensor& x = ctx.input(0);
    const Shape src_strides = strides_of(x.shape());
    const size_t es = dtype_size(x.dtype());
    int64_t offset = 0;
    for (size_t i = 0; i < split.size(); ++i) {
      Shape shape = x.shape();
      shape[axis] = split[i];
      Tensor& y = ctx.output(i, x.dtype(), shape);
      copy_nd(es, shape, y.raw(), strides_of(shape),
              static_cast<const std::byte*>(x.raw()) + offset * src_strides[axis] * es, src_strides);
      offset += split[i];
    }
  });
}

// ---- backward kernels (ai.onnxtrain) -------------------------------------------------------

// ConcatGrad(dY, shape(X0), shape(X1), ...) with attributes axis and outputs (the input
// indices whose gradients it produces, one output each): the slices of dY along axis.
std::unique_ptr<Kernel> make_concat_grad(const Node& node, const std::vector<InputInfo>& in) {
  const Shape s = in[0].shape;
  const int64_t axis = normalize_axis(node.attr_int("axis"), s.size(), node);
  const std::vector<int64_t> which = node.attr_ints("outputs");
  const int64_t parts = static_cast<int64_t>(in.size()) - 1;
  if (which.size() != node.outputs.size()) fail(node, "needs one entry of 'outputs' per output");
  for (int64_t i : which)
    if (i < 0 || i >= parts) fail(node, "output index " + std::to_string(i) + " is out of range");
  std::vector<size_t> operands;
  for (int64_t i = 1; i <= parts; ++i) operands.push_back(i);
  return planned(in, operands, [&node, s, axis, parts](const IntArgs& args) {
    std::vector<int64_t> offsets{0};  // parts + 1 offsets along the axis
    for (int64_t i = 1; i <= parts; ++i) {
      const auto& shape = shape_operand(node, args[i], "input shape");
      if (shape.size() != s.size())
        fail_shape(node, "input shape " + ints_str(shape) + " does not have the rank of the gradient " + shape_str(s));
      offsets.push_back(offsets.back() + shape[axis]);
    }
    if (offsets.back() != s[axis])
      fail_shape(node, "input sizes along axis " + std::to_string(axis) + " do not add up to the gradient " + shape_str(s));
    return offsets;
  }, [axis, which](KernelContext& ctx, const std::vector<int64_t>& offsets) {
    const Tensor& dy = ctx.input(0);
    const Shape src_strides = strides_of(dy.shape());
    const size_t es = dtype_size(dy.dtype());
    for (size_t k = 0; k < which.size(); ++k) {
      Shape shape = dy.shape();
      shape[axis] = offsets[which[k] + 1] - offsets[which[k]];
      Tensor& dx = ctx.output(k, dy.dtype(), shape);
      copy_nd(es, shape, dx.raw(), strides_of(shape),
              static_cast<const std::byte*>(dy.raw()) + offsets[which[k]] * src_strides[axis] * int64_t(es), src_strides);
    }
  });
}

// ---- gradient rules ------------------------------------------------------------------------

void concat_gradient(GradientBuilder& b) {
  const Node& n = b.node();
  std::vector<int64_t> which;
  for (size_t i = 0; i < n.inputs.size(); ++i)
    if (b.needs_grad(i)) which.push_back(static_cast<int64_t>(i));
  if (which.empty()) return;
  // Every input's size along the axis places the slices, so all shapes are inputs.
  std::vector<Value*> inputs{b.GO(0)};
  for (size_t i = 0; i < n.inputs.size(); ++i) inputs.push_back(b.shape_of(b.I(i)));
  auto grads = b.op_n("ConcatGrad", inputs, which.size(), {{"axis", n.attr_int("axis", 1)}, {"outputs", which}},
                      graph::kTrainingDomain);
  for (size_t k = 0; k < which.size(); ++k) b.GI(which[k], grads[k]);
}

void split_gradient(GradientBuilder& b) {
  if (!b.needs_grad(0)) return;
  const Node& n = b.node();
  int64_t axis = n.attr_int("axis", 0);
  if (axis < 0 && n.opset < 11) axis += static_cast<int64_t>(b.rank(b.I(0)));  // Concat < 11: axis >= 0
  std::vector<Value*> grads;
  for (size_t i = 0; i < n.outputs.size(); ++i) grads.push_back(b.GO(i));
  b.GI(0, grads.size() == 1 ? grads[0] : b.op("Concat", grads, {{"axis", axis}}));
}

}  // namespace shape_impl

void register_concat_split_ops(Registry& r) {
  using namespace shape_impl;
  r.add({"", "Concat", 1, INT_MAX, make_concat, "own", concat_gradient});
  r.add({"", "Split", 1, INT_MAX, make_split, "own", split_gradient, {1}});

  const char* t = graph::kTrainingDomain;
  r.add({t, "ConcatGrad", 1, INT_MAX, make_concat_grad, "own"});
}

}  // namespace onnxtrain::ops
