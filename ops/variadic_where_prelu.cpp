// Max, Min, Sum, Mean (variadic, numpy broadcasting), Where and PRelu, with the PReluGrad
// kernel and the gradient rules. Registered from register_binary_ops; shared machinery:
// binary_common.h.
#include "ops/binary_common.h"

namespace onnxtrain::ops {

namespace {

using namespace binary_impl;

// Before opset 7 PRelu's slope was per channel (dim 1), as old PyTorch exports use it; from
// opset 7 it broadcasts to X unidirectionally.
std::vector<Shape> prelu_shapes(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() < 2 || !in[0].present || !in[1].present) fail(node, "expects inputs X and slope");
  const Shape& x = in[0].shape;
  Shape slope = in[1].shape;
  if (node.opset < 7 && slope.size() == 1 && slope[0] != 1 && x.size() >= 2 && slope[0] == x[1]) {
    slope = Shape(x.size() - 1, 1);
    slope[0] = x[1];
  }
  if (broadcast_shapes({x, slope}, node) != x)
    fail_shape(node, "slope " + shape_str(in[1].shape) + " does not broadcast to X " + shape_str(x));
  return {x, slope};
}

// Max/Min/Sum/Mean: the first two inputs produce the output, the others fold into it in
// place. Mean divides at the end.
template <typename Types, typename Core>
KernelFactory variadic(Types types, Core core, bool mean) {
  return [=](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    if (in.empty()) fail(node, "needs at least one input");
    std::vector<Shape> shapes;
    for (const auto& i : in) {
      if (!i.present) fail(node, "inputs cannot be omitted");
      if (i.dtype != in[0].dtype) fail(node, "inputs have different types");
      shapes.push_back(i.shape);
    }
    dispatch(types, in[0].dtype, node, [](auto) {});
    if (in.size() == 1)
      return make_function_kernel([](KernelContext& ctx) { ctx.set_output_view(0, ctx.input(0), ctx.input(0).shape()); });
    Shape out = broadcast_shapes(shapes, node);
    std::vector<Plan> plans{make_plan({shapes[0], shapes[1]}, out)};
    for (size_t k = 2; k < shapes.size(); ++k) plans.push_back(make_plan({out, shapes[k]}, out));
    return make_function_kernel([=](KernelContext& ctx) {
      dispatch(types, ctx.input(0).dtype(), ctx.node(), [&](auto tag) {
        using T = decltype(tag);
        Tensor& y = ctx.output(0, dtype_for<T>(), out);
        T* dst = mdata<T>(y);
        auto f = lift<T, T, T>(core);
        run2(plans[0], cdata<T>(ctx.input(0)), cdata<T>(ctx.input(1)), dst, f);
        for (size_t k = 2; k < ctx.num_inputs(); ++k) run2(plans[k - 1], dst, cdata<T>(ctx.input(k)), dst, f);
        if (mean) {
          const auto n = static_cast<compute_t<T>>(ctx.num_inputs());
          parallel_for(y.numel(), [&](int64_t i) { dst[i] = store<T>(load(dst[i]) / n); });
        }
      });
    });
  };
}

std::unique_ptr<Kernel> make_where(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() != 3 || !in[0].present || !in[1].present || !in[2].present) fail(node, "expects three inputs");
  if (in[0].dtype != DType::Bool) fail(node, "condition must be bool, got " + dtype_name(in[0].dtype));
  if (in[1].dtype != in[2].dtype) fail(node, "X and Y have different types");
  dispatch(AllTypes{}, in[1].dtype, node, [](auto) {});
  std::vector<Shape> shapes{in[0].shape, in[1].shape, in[2].shape};
  Plan plan = make_plan(shapes, broadcast_shapes(shapes, node));
  return make_function_kernel([plan](KernelContext& ctx) {
    const Tensor& c = ctx.input(0);
    const Tensor& x = ctx.input(1);
    const Tensor& yv = ctx.input(2);
    dispatch(AllTypes{}, x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      Tensor& out = ctx.output(0, x.dtype(), plan.out_shape);
      const bool* cd = c.data<bool>();
      const T *xd = cdata<T>(x), *yd = cdata<T>(yv);
      T* od = mdata<T>(out);
      const int64_t sc = plan.contiguous[0], sx = plan.contiguous[1], sy = plan.contiguous[2];
      for_each_span(plan, [&](const Strides& off, int64_t o, int64_t n) {
        const bool* cp = cd + off[0];
        const T *xp = xd + off[1], *yp = yd + off[2];
        T* op = od + o;
        for (int64_t i = 0; i < n; ++i) op[i] = cp[i * sc] ? xp[i * sx] : yp[i * sy];
      });
    });
  });
}

// Max/Min: the gradient goes to the input(s) equal to the output; ties split it evenly
// (as PyTorch's maximum/minimum do for two tensors). Where the output is NaN the gradients
// are NaN.
void select_gradient(GradientBuilder& b) {
  const size_t n = b.node().inputs.size();
  if (n == 1) {
    b.GI(0, b.GO(0));
    return;
  }
  Value* y = b.O(0);
  const auto to = static_cast<int64_t>(y->dtype);
  std::vector<Value*> masks;
  for (size_t i = 0; i < n; ++i) masks.push_back(b.op("Cast", {b.op("Equal", {y, b.I(i)})}, {{"to", to}}));
  Value* share = b.div(b.GO(0), b.op("Sum", masks));
  for (size_t i = 0; i < n; ++i)
    if (b.needs_grad(i)) b.GI_broadcast(i, b.mul(share, masks[i]));
}

void sum_gradient(GradientBuilder& b) {
  for (size_t i = 0; i < b.node().inputs.size(); ++i)
    if (b.needs_grad(i)) b.GI_broadcast(i, b.GO(0));
}

void mean_gradient(GradientBuilder& b) {
  const size_t n = b.node().inputs.size();
  Value* g = b.GO(0);
  if (n > 1) g = b.op("Mul", {g, scalar_of(b, 1.0 / static_cast<double>(n), b.O(0)->dtype)}, legacy_broadcast(b));
  for (size_t i = 0; i < n; ++i)
    if (b.needs_grad(i)) b.GI_broadcast(i, g);
}

// Where(C, X, Y): dX = Where(C, dY, 0), dY = Where(C, 0, dY); no gradient to C.
void where_gradient(GradientBuilder& b) {
  Value* zero = scalar_of(b, 0.0, b.O(0)->dtype);
  if (b.needs_grad(1)) b.GI_broadcast(1, b.op("Where", {b.I(0), b.GO(0), zero}));
  if (b.needs_grad(2)) b.GI_broadcast(2, b.op("Where", {b.I(0), zero, b.GO(0)}));
}
// ai.onnxtrain.PReluGrad(dY, X, slope) -> (dX, dSlope). dX = dY * (X < 0 ? slope : 1);
// dSlope = dY * X where X < 0, summed over the broadcast dims to slope's own shape in the
// kernel (in double). legacy_channel=1: the opset < 7 per-channel slope ([C] against dim 1).
std::unique_ptr<Kernel> make_prelu_grad(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() != 3 || !in[0].present || !in[1].present || !in[2].present) fail(node, "expects dY, X and slope");
  if (in[0].dtype != in[1].dtype || in[1].dtype != in[2].dtype) fail(node, "input types differ");
  if (in[0].shape != in[1].shape) fail_shape(node, "dY and X differ in shape");
  dispatch(FloatTypes{}, in[0].dtype, node, [](auto) {});
  const Shape x_shape = in[1].shape;
  Shape slope = in[2].shape;
  if (node.attr_int("legacy_channel", 0) && slope.size() == 1 && slope[0] != 1 && x_shape.size() >= 2 &&
      slope[0] == x_shape[1]) {
    slope = Shape(x_shape.size() - 1, 1);
    slope[0] = x_shape[1];
  }
  if (broadcast_shapes({x_shape, slope}, node) != x_shape)
    fail_shape(node, "slope " + shape_str(in[2].shape) + " does not broadcast to X " + shape_str(x_shape));
  Plan plan = make_plan({x_shape, x_shape, slope}, x_shape);
  const Shape slope_out = in[2].shape;
  return make_function_kernel([plan, slope_out](KernelContext& ctx) {
    const Tensor& dy = ctx.input(0);
    const Tensor& x = ctx.input(1);
    const Tensor& s = ctx.input(2);
    dispatch(FloatTypes{}, x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      using C = compute_t<T>;
      const T *gd = cdata<T>(dy), *xd = cdata<T>(x), *sd = cdata<T>(s);
      Tensor& dx = ctx.output(0, x.dtype(), x.shape());
      T* dxd = mdata<T>(dx);
      const int64_t ss = plan.contiguous[2];
      for_each_span(plan, [&](const Strides& off, int64_t o, int64_t n) {
        const T* sp = sd + off[2];
        for (int64_t i = 0; i < n; ++i) {
          C xv = load(xd[o + i]), gv = load(gd[o + i]);
          dxd[o + i] = store<T>(xv < 0 ? gv * load(sp[i * ss]) : gv);
        }
      });
      if (!ctx.wants_output(1)) return;
      Tensor& ds = ctx.output(1, x.dtype(), slope_out);
      std::vector<double> acc(static_cast<size_t>(ds.numel()), 0.0);
      auto contribution = [&](int64_t k) -> double {
        C xv = load(xd[k]);
        return xv < 0 ? static_cast<double>(load(gd[k])) * static_cast<double>(xv) : 0.0;
      };
      const int64_t rows = plan.rows(), inner = plan.inner;
      if (plan.numel > 0 && ss) {
        // slope varies along the inner dim: fold rows serially (vectorisable inner loop).
        Strides off;
        for (int64_t r = 0; r < rows; ++r) {
          plan.offsets(r, off);
          double* a = acc.data() + off[2];
          for (int64_t i = 0; i < inner; ++i) a[i] += contribution(r * inner + i);
        }
      } else if (plan.numel > 0) {
        // one slope element per row: row sums in parallel, then folded.
        std::vector<double> part(static_cast<size_t>(rows));
        parallel_for(rows, [&](int64_t r) {
          double sum = 0;
          for (int64_t i = 0; i < inner; ++i) sum += contribution(r * inner + i);
          part[r] = sum;
        }, std::max<int64_t>(1, kBlock / inner));
        Strides off;
        for (int64_t r = 0; r < rows; ++r) {
          plan.offsets(r, off);
          acc[off[2]] += part[r];
        }
      }
      T* dsd = mdata<T>(ds);
      for (size_t k = 0; k < acc.size(); ++k) dsd[k] = store<T>(acc[k]);
    });
  });
}

void prelu_gradient(GradientBuilder& b) {
  Attributes attrs{{"legacy_channel", int64_t{b.node().opset < 7 ? 1 : 0}}};
  const bool slope = b.needs_grad(1);
  auto outs = b.op_n("PReluGrad", {b.GO(0), b.I(0), b.I(1)}, slope ? 2 : 1, std::move(attrs), graph::kTrainingDomain);
  if (b.needs_grad(0)) b.GI(0, outs[0]);
  if (slope) b.GI(1, outs[1]);
}

}  // namespace
void register_variadic_where_prelu_ops(Registry& r) {
  auto both = [](auto f) { return plain(f); };
  // NaN wins in Max and Min, as in numpy.
  auto max = [](auto a, auto b) { return (a > b || a != a) ? a : b; };
  auto min = [](auto a, auto b) { return (a < b || a != a) ? a : b; };
  auto add = [](auto a, auto b) { return a + b; };
  r.add({"", "Max", 1, INT_MAX, variadic(NumericTypes{}, max, false), "own", select_gradient});
  r.add({"", "Min", 1, INT_MAX, variadic(NumericTypes{}, min, false), "own", select_gradient});
  r.add({"", "Sum", 1, INT_MAX, variadic(FloatTypes{}, add, false), "own", sum_gradient});
  r.add({"", "Mean", 1, INT_MAX, variadic(FloatTypes{}, add, true), "own", mean_gradient});

  r.add({"", "Where", 9, INT_MAX, make_where, "own", where_gradient, {0}});
  r.add({"", "PRelu", 1, INT_MAX,
         binary<false>(NumericTypes{}, both([](auto x, auto slope) {
                         if constexpr (std::is_unsigned_v<decltype(x)>) return x;
                         else return x < 0 ? wrap_mul(x, slope) : x;
                       }),
                       prelu_shapes),
         "own", prelu_gradient});
  r.add({graph::kTrainingDomain, "PReluGrad", 1, INT_MAX, make_prelu_grad, "own"});
}

}  // namespace onnxtrain::ops
