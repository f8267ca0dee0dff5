// ai.onnxtrain helper ops that the autodiff driver and gradient rules emit.
#include <cstring>

#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

namespace {

// ReduceSumTo(X, shape): sums X over the dimensions that numpy broadcasting expanded from
// `shape` (leading extra dims and dims of size 1). The inverse of broadcasting.
std::unique_ptr<Kernel> make_reduce_sum_to(const Node& node, const std::vector<InputInfo>& in) {
  // The target and its padded form are kept by the kernel: a training step (the same target
  // every time) allocates nothing here.
  return make_function_kernel([target = Shape(), padded = Shape()](KernelContext& ctx) mutable {
    const Tensor& x = ctx.input(0);
    const Tensor& target_input = ctx.input(1);
    if (target_input.dtype() == DType::Int64)
      target.assign(target_input.data<int64_t>(), target_input.data<int64_t>() + target_input.numel());
    else
      target = int_values(target_input);
    if (target == x.shape()) {
      ctx.set_output(0, x);
      return;
    }
    const Shape& xs = x.shape();
    if (target.size() > xs.size()) fail_shape(ctx.node(), "cannot sum " + shape_str(xs) + " to " + shape_str(target));
    padded.assign(xs.size() - target.size(), 1);
    padded.insert(padded.end(), target.begin(), target.end());
    for (size_t d = 0; d < xs.size(); ++d)
      if (padded[d] != 1 && padded[d] != xs[d])
        fail_shape(ctx.node(), "cannot sum " + shape_str(xs) + " to " + shape_str(target));
    Tensor& y = ctx.output(0, x.dtype(), target);
    dispatch_float(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      sum_to<T>(x.data<T>(), xs, y.data<T>(), padded);
    });
  });
}

template <int kValue>
std::unique_ptr<Kernel> make_filled_like(const Node& node, const std::vector<InputInfo>& in) {
  return make_function_kernel([](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, x.dtype(), x.shape());
    dispatch_all(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      std::fill_n(y.data<T>(), y.numel(), static_cast<T>(kValue));
    });
  });
}

// The inverse of ReduceSumTo: broadcast the gradient back to the input's shape.
void reduce_sum_to_gradient(GradientBuilder& b) { b.GI(0, b.expand_like(b.GO(0), b.I(0))); }

}  // namespace

void register_autodiff_ops(Registry& r) {
  const char* d = graph::kTrainingDomain;
  r.add({d, "ReduceSumTo", 1, INT_MAX, make_reduce_sum_to, "own", reduce_sum_to_gradient, {1}});
  r.add({d, "ZerosLike", 1, INT_MAX, make_filled_like<0>, "own", {}, {}, true});
  r.add({d, "OnesLike", 1, INT_MAX, make_filled_like<1>, "own", {}, {}, true});
}

}  // namespace onnxtrain::ops
