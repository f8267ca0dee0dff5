// Transpose, DepthToSpace and SpaceToDepth (transposes of a 6-d view), with the backward
// kernel and gradient rules. Shared helpers: shape_common.h.
#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <string>

#include "ops/shape_common.h"

namespace onnxtrain::ops {

namespace shape_impl {

// ---- transposes -----------------------------------------------------------------------

// Output = input viewed as `view` with its axes permuted by `perm`, as a copy plan.
struct PermutePlan {
  Shape out_shape, src_strides, final_shape;
};

PermutePlan permute_plan(const Shape& view, const std::vector<int64_t>& perm, Shape final_shape) {
  Shape strides = strides_of(view);
  PermutePlan p;
  for (int64_t a : perm) {
    p.out_shape.push_back(view[a]);
    p.src_strides.push_back(strides[a]);
  }
  p.final_shape = std::move(final_shape);
  return p;
}

std::unique_ptr<Kernel> permute_kernel(PermutePlan plan) {
  return make_function_kernel([plan = std::move(plan)](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, x.dtype(), plan.final_shape);
    copy_nd(dtype_size(x.dtype()), plan.out_shape, y.raw(), strides_of(plan.out_shape), x.raw(), plan.src_strides);
  });
}

std::unique_ptr<Kernel> make_transpose(const Node& node, const std::vector<InputInfo>& in) {
  const Shape& s = in[0].shape;
  std::vector<int64_t> perm(s.size());
  std::iota(perm.rbegin(), perm.rend(), 0);
  if (node.has_attr("perm")) {
    perm = node.attr_ints("perm");
    std::vector<int64_t> sorted = perm;
    std::sort(sorted.begin(), sorted.end());
    bool valid = sorted.size() == s.size();
    for (size_t i = 0; valid && i < sorted.size(); ++i) valid = sorted[i] == static_cast<int64_t>(i);
    if (!valid) fail(node, "perm " + ints_str(perm) + " is not a permutation of the axes of shape " + shape_str(s));
  }
  PermutePlan plan = permute_plan(s, perm, {});
  plan.final_shape = plan.out_shape;
  return permute_kernel(std::move(plan));
}

// DepthToSpace / SpaceToDepth are transposes of a 6-d view of an NCHW tensor.
std::unique_ptr<Kernel> make_depth_to_space(const Node& node, const std::vector<InputInfo>& in) {
  const Shape& s = in[0].shape;
  const int64_t bs = node.attr_int("blocksize");
  if (s.size() != 4) fail_shape(node, "expects a 4-d input, got " + shape_str(s));
  int64_t bs2 = 0;
  if (bs <= 0 || __builtin_mul_overflow(bs, bs, &bs2) || s[1] % bs2 != 0)
    fail_shape(node, "channels of " + shape_str(s) + " are not a multiple of blocksize^2 (blocksize " + std::to_string(bs) + ")");
  const int64_t b = s[0], c = s[1] / bs2, h = s[2], w = s[3];
  const std::string mode = node.attr_string("mode", "DCR");
  Shape out{b, c, h * bs, w * bs};
  if (mode == "DCR") return permute_kernel(permute_plan({b, bs, bs, c, h, w}, {0, 3, 4, 1, 5, 2}, out));
  if (mode == "CRD") return permute_kernel(permute_plan({b, c, bs, bs, h, w}, {0, 1, 4, 2, 5, 3}, out));
  fail(node, "unknown mode '" + mode + "' (expected DCR or CRD)");
}

std::unique_ptr<Kernel> make_space_to_depth(const Node& node, const std::vector<InputInfo>& in) {
  const Shape& s = in[0].shape;
  const int64_t bs = node.attr_int("blocksize");
  if (s.size() != 4) fail_shape(node, "expects a 4-d input, got " + shape_str(s));
  if (bs <= 0 || s[2] % bs != 0 || s[3] % bs != 0)
    fail_shape(node, "spatial dims of " + shape_str(s) + " are not multiples of blocksize " + std::to_string(bs));
  const int64_t b = s[0], c = s[1], h = s[2] / bs, w = s[3] / bs;
  return permute_kernel(permute_plan({b, c, h, bs, w, bs}, {0, 3, 5, 1, 2, 4}, {b, c * bs * bs, h, w}));
}

// ---- backward kernels (ai.onnxtrain) -------------------------------------------------------

// DepthToSpaceGrad(dY) with blocksize and mode: the inverse permutation of DepthToSpace
// (for DCR it equals SpaceToDepth; CRD has no ONNX inverse).
std::unique_ptr<Kernel> make_depth_to_space_grad(const Node& node, const std::vector<InputInfo>& in) {
  const Shape& s = in[0].shape;
  const int64_t bs = node.attr_int("blocksize");
  if (s.size() != 4) fail_shape(node, "expects a 4-d gradient, got " + shape_str(s));
  if (bs <= 0 || s[2] % bs != 0 || s[3] % bs != 0)
    fail_shape(node, "spatial dims of " + shape_str(s) + " are not multiples of blocksize " + std::to_string(bs));
  const int64_t b = s[0], c = s[1], h = s[2] / bs, w = s[3] / bs;
  const std::string mode = node.attr_string("mode", "DCR");
  Shape out{b, c * bs * bs, h, w};
  if (mode == "DCR") return permute_kernel(permute_plan({b, c, h, bs, w, bs}, {0, 3, 5, 1, 2, 4}, out));
  if (mode == "CRD") return permute_kernel(permute_plan({b, c, h, bs, w, bs}, {0, 1, 3, 5, 2, 4}, out));
  fail(node, "unknown mode '" + mode + "' (expected DCR or CRD)");
}

// ---- gradient rules ------------------------------------------------------------------------

void transpose_gradient(GradientBuilder& b) {
  if (!b.needs_grad(0)) return;
  const Node& n = b.node();
  if (!n.has_attr("perm")) {  // the reversal is its own inverse
    b.GI(0, b.op("Transpose", {b.GO(0)}));
    return;
  }
  const std::vector<int64_t> perm = n.attr_ints("perm");
  std::vector<int64_t> inverse(perm.size(), -1);
  for (size_t i = 0; i < perm.size(); ++i) {
    if (perm[i] < 0 || perm[i] >= static_cast<int64_t>(perm.size()) || inverse[perm[i]] >= 0)
      throw UnsupportedOp(n.describe() + ": perm " + ints_str(perm) + " is not a permutation");
    inverse[perm[i]] = static_cast<int64_t>(i);
  }
  b.GI(0, b.transpose(b.GO(0), inverse));
}

void depth_to_space_gradient(GradientBuilder& b) {
  if (!b.needs_grad(0)) return;
  const Node& n = b.node();
  const int64_t bs = n.attr_int("blocksize");
  const std::string mode = n.attr_string("mode", "DCR");
  if (mode == "DCR") b.GI(0, b.op("SpaceToDepth", {b.GO(0)}, {{"blocksize", bs}}));
  else b.GI(0, b.train_op("DepthToSpaceGrad", {b.GO(0)}, {{"blocksize", bs}, {"mode", mode}}));
}

// SpaceToDepth is the inverse of DepthToSpace in DCR mode (the default in every opset).
void space_to_depth_gradient(GradientBuilder& b) {
  if (b.needs_grad(0)) b.GI(0, b.op("DepthToSpace", {b.GO(0)}, {{"blocksize", b.node().attr_int("blocksize")}}));
}

}  // namespace shape_impl

void register_transpose_ops(Registry& r) {
  using namespace shape_impl;
  r.add({"", "Transpose", 1, INT_MAX, make_transpose, "own", transpose_gradient});
  r.add({"", "DepthToSpace", 1, INT_MAX, make_depth_to_space, "own", depth_to_space_gradient});
  r.add({"", "SpaceToDepth", 1, INT_MAX, make_space_to_depth, "own", space_to_depth_gradient});

  const char* t = graph::kTrainingDomain;
  r.add({t, "DepthToSpaceGrad", 1, INT_MAX, make_depth_to_space_grad, "own"});
}

}  // namespace onnxtrain::ops
