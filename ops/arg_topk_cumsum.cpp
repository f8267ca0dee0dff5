// ArgMax / ArgMin, TopK and CumSum, with the TopKGrad backward kernel and the gradient
// rules. Shared helpers: reduction_common.h.
#include <algorithm>
#include <cmath>
#include <limits>
#include <omp.h>
#include <optional>
#include <string_view>
#include <utility>

#include "ops/reduction_common.h"

namespace onnxtrain::ops {

namespace reduction_impl {

// --- ArgMax / ArgMin, TopK, CumSum ----------------------------------------------------

// [outer, axis, inner] view of a shape around one axis.
struct AxisSplit {
  int64_t outer = 1, size = 1, inner = 1;
};
AxisSplit split_at(const Shape& shape, int64_t axis) {
  AxisSplit s;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    if (d < axis) s.outer *= shape[d];
    else if (d == axis) s.size = shape[d];
    else s.inner *= shape[d];
  }
  return s;
}

// True when `a` ranks before `b` for TopK(largest) and ArgMax: NaN counts as the largest
// value, which keeps the order strict-weak (std::sort needs that) and matches numpy.
template <typename T>
bool greater_nan_first(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return !std::isnan(b);
    if (std::isnan(b)) return false;
  }
  return a > b;
}

template <typename T>
bool less_nan_first(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return !std::isnan(b);
    if (std::isnan(b)) return false;
  }
  return a < b;
}

std::unique_ptr<Kernel> make_arg_reduce(const Node& node, const std::vector<InputInfo>& in, bool is_max) {
  dispatch_numeric(in[0].dtype, node, [](auto) {});
  const Shape& shape = in[0].shape;
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (rank == 0) fail_shape(node, "needs an input of rank >= 1");
  const int64_t axis = normalize_axis(node.attr_int("axis", 0), rank, node);
  const bool keepdims = node.attr_int("keepdims", 1) != 0;
  const bool last = node.opset >= 12 && node.attr_int("select_last_index", 0) != 0;
  const AxisSplit s = split_at(shape, axis);
  if (s.size == 0 && s.outer * s.inner > 0) fail_shape(node, "cannot take the index of an extremum over an empty axis");
  Shape out_shape = shape;
  if (keepdims) out_shape[axis] = 1;
  else out_shape.erase(out_shape.begin() + axis);
  return make_function_kernel([s, out_shape, is_max, last](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, DType::Int64, out_shape);
    int64_t* out = y.data<int64_t>();
    dispatch_numeric(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const T* src = x.data<T>();
      // NaN wins for both ArgMax and ArgMin, as in numpy; ties go to the first index
      // unless select_last_index asks for the last.
      auto wins = [is_max](T a, T b) { return is_max ? greater_nan_first(a, b) : less_nan_first(a, b); };
      auto better = [&wins, last](T v, T best) { return wins(v, best) || (last && !wins(best, v)); };
      parallel_for(s.outer, [&](int64_t o) {
        const T* base = src + o * s.size * s.inner;
        int64_t* dst = out + o * s.inner;
        std::fill(dst, dst + s.inner, 0);
        for (int64_t r = 1; r < s.size; ++r)
          for (int64_t i = 0; i < s.inner; ++i)
            if (better(base[r * s.inner + i], base[dst[i] * s.inner + i])) dst[i] = r;
      }, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, s.size * s.inner)));
    });
  });
}

std::unique_ptr<Kernel> make_topk(const Node& node, const std::vector<InputInfo>& in) {
  dispatch_numeric(in[0].dtype, node, [](auto) {});
  const Shape shape = in[0].shape;
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (rank == 0) fail_shape(node, "needs an input of rank >= 1");
  const int64_t axis = normalize_axis(node.attr_int("axis", -1), rank, node);
  // `sorted = 0` allows any order; the output is always sorted, which is one of them.
  const bool largest = node.opset < 11 || node.attr_int("largest", 1) != 0;
  std::optional<int64_t> fixed_k;
  if (node.opset < 10) {
    if (!node.has_attr("k")) fail(node, "needs the attribute 'k'");
    fixed_k = node.attr_int("k");
  } else if (in.size() < 2 || !in[1].present) {
    fail(node, "needs the input 'K'");
  }
  const AxisSplit s = split_at(shape, axis);
  return make_function_kernel([s, shape, axis, largest, fixed_k](KernelContext& ctx) {
    int64_t k = 0;
    if (fixed_k) {
      k = *fixed_k;
    } else {
      std::vector<int64_t> kv = int_values(ctx.input(1));
      if (kv.size() != 1) fail_shape(ctx.node(), "input 'K' must hold exactly one value");
      k = kv[0];
    }
    if (k < 0 || k > s.size)
      fail(ctx.node(), "k = " + std::to_string(k) + " is outside [0, " + std::to_string(s.size) + "], the size of axis " +
                           std::to_string(axis));
    Shape out_shape = shape;
    out_shape[axis] = k;
    const Tensor& x = ctx.input(0);
    Tensor& values = ctx.output(0, x.dtype(), out_shape);
    Tensor& indices = ctx.output(1, DType::Int64, out_shape);
    if (k == 0) return;
    dispatch_numeric(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      using Entry = std::pair<T, int64_t>;
      const T* src = x.data<T>();
      T* vout = values.data<T>();
      int64_t* iout = indices.data<int64_t>();
      // Ties keep the lower index first, for both directions.
      auto before = [largest](const Entry& a, const Entry& b) {
        if (largest ? greater_nan_first(a.first, b.first) : greater_nan_first(b.first, a.first)) return true;
        if (largest ? greater_nan_first(b.first, a.first) : greater_nan_first(a.first, b.first)) return false;
        return a.second < b.second;
      };
      parallel_with_buffer<Entry>(s.outer * s.inner, s.size * 8, static_cast<size_t>(s.size), [&](int64_t line, Entry* buf) {
        const int64_t o = line / s.inner, i = line % s.inner;
        const T* in_line = src + o * s.size * s.inner + i;
        for (int64_t r = 0; r < s.size; ++r) buf[r] = {in_line[r * s.inner], r};
        if (k == s.size) std::sort(buf, buf + s.size, before);
        else std::partial_sort(buf, buf + k, buf + s.size, before);
        const int64_t out_base = o * k * s.inner + i;
        for (int64_t r = 0; r < k; ++r) {
          vout[out_base + r * s.inner] = buf[r].first;
          iout[out_base + r * s.inner] = buf[r].second;
        }
      });
    });
  });
}

std::unique_ptr<Kernel> make_cumsum(const Node& node, const std::vector<InputInfo>& in) {
  dispatch_numeric(in[0].dtype, node, [](auto) {});
  if (in.size() < 2 || !in[1].present) fail(node, "needs the input 'axis'");
  const Shape shape = in[0].shape;
  const bool exclusive = node.attr_int("exclusive", 0) != 0;
  const bool reverse = node.attr_int("reverse", 0) != 0;
  return make_function_kernel([shape, exclusive, reverse](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    std::vector<int64_t> axis_values = int_values(ctx.input(1));
    if (axis_values.size() != 1) fail_shape(ctx.node(), "input 'axis' must hold exactly one value");
    const int64_t rank = static_cast<int64_t>(shape.size());
    if (rank == 0) fail_shape(ctx.node(), "needs an input of rank >= 1");
    const int64_t axis = normalize_axis(axis_values[0], rank, ctx.node());
    const AxisSplit s = split_at(shape, axis);
    Tensor& y = ctx.output(0, x.dtype(), shape);
    dispatch_numeric(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      // Floats accumulate in double, integers in uint64_t (wrapping, never undefined).
      using Acc = std::conditional_t<std::is_floating_point_v<T>, double, uint64_t>;
      const T* src = x.data<T>();
      T* dst = y.data<T>();
      parallel_with_buffer<Acc>(s.outer, s.size * s.inner, static_cast<size_t>(s.inner), [&](int64_t o, Acc* acc) {
        std::fill(acc, acc + s.inner, Acc{0});
        for (int64_t step = 0; step < s.size; ++step) {
          const int64_t r = reverse ? s.size - 1 - step : step;
          const int64_t off = (o * s.size + r) * s.inner;
          for (int64_t i = 0; i < s.inner; ++i) {
            const Acc v = static_cast<Acc>(src[off + i]);
            if (exclusive) {
              dst[off + i] = static_cast<T>(acc[i]);
              acc[i] += v;
            } else {
              acc[i] += v;
              dst[off + i] = static_cast<T>(acc[i]);
            }
          }
        }
      });
    });
  });
}

// --- Gradients ---------------------------------------------------------------------------

// CumSum: each x_j feeds the outputs at and after j (before j when reversed), so dX is the
// cumulative sum of dY in the opposite direction, with the same exclusivity.
void cumsum_gradient(GradientBuilder& b) {
  const Node& n = b.node();
  b.GI(0, b.op("CumSum", {b.GO(0), b.I(1)},
               {{"exclusive", n.attr_int("exclusive", 0)}, {"reverse", int64_t{n.attr_int("reverse", 0) != 0 ? 0 : 1}}}));
}

// ai.onnxtrain.TopKGrad(dValues, Indices, X) -> dX: dValues scattered into zeros at the
// indices along `axis` (X gives the shape only).
std::unique_ptr<Kernel> make_topk_grad(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() < 3 || !in[0].present || !in[1].present || !in[2].present)
    fail(node, "needs the inputs dValues, Indices and X");
  dispatch_float(in[0].dtype, node, [](auto) {});
  const Shape shape = in[2].shape;
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (rank == 0) fail_shape(node, "needs an input of rank >= 1");
  const int64_t axis = normalize_axis(node.attr_int("axis", -1), rank, node);
  const AxisSplit s = split_at(shape, axis);
  return make_function_kernel([s, shape, axis](KernelContext& ctx) {
    const Tensor& dv = ctx.input(0);
    const Tensor& idx = ctx.input(1);
    if (idx.dtype() != DType::Int64 || idx.shape() != dv.shape() || dv.shape().size() != shape.size())
      fail_shape(ctx.node(), "dValues " + shape_str(dv.shape()) + " and Indices " + shape_str(idx.shape()) +
                                 " must have the same shape (and Indices int64)");
    const int64_t k = dv.shape()[axis];
    Tensor& dx = ctx.output(0, dv.dtype(), shape);
    const int64_t* ip = idx.data<int64_t>();
    for (int64_t i = 0; i < idx.numel(); ++i)
      if (ip[i] < 0 || ip[i] >= s.size) fail(ctx.node(), "index " + std::to_string(ip[i]) + " is out of range");
    dispatch_float(dv.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const T* g = dv.data<T>();
      T* out = dx.data<T>();
      parallel_for(s.outer, [&](int64_t o) {
        T* block = out + o * s.size * s.inner;
        std::fill(block, block + s.size * s.inner, T{0});
        const int64_t src = o * k * s.inner;
        for (int64_t r = 0; r < k; ++r)
          for (int64_t i = 0; i < s.inner; ++i) block[ip[src + r * s.inner + i] * s.inner + i] += g[src + r * s.inner + i];
      }, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, s.size * s.inner)));
    });
  });
}

void topk_gradient(GradientBuilder& b) {
  Value* indices = b.saved_output(1, DType::Int64);
  b.GI(0, b.train_op("TopKGrad", {b.GO(0), indices, b.I(0)}, {{"axis", b.node().attr_int("axis", -1)}}));
}

}  // namespace reduction_impl

void register_arg_topk_cumsum_ops(Registry& r) {
  using namespace reduction_impl;
  r.add({"", "ArgMax", 1, INT_MAX,
         [](const Node& n, const std::vector<InputInfo>& in) { return make_arg_reduce(n, in, true); }, "own", {}, {},
         /*not_differentiable*/ true});
  r.add({"", "ArgMin", 1, INT_MAX,
         [](const Node& n, const std::vector<InputInfo>& in) { return make_arg_reduce(n, in, false); }, "own", {}, {},
         /*not_differentiable*/ true});
  r.add({"", "TopK", 1, INT_MAX, make_topk, "own", topk_gradient, /*non_differentiable_inputs*/ {1}});
  r.add({"", "CumSum", 11, INT_MAX, make_cumsum, "own", cumsum_gradient, /*non_differentiable_inputs*/ {1}});

  const char* d = graph::kTrainingDomain;
  r.add({d, "TopKGrad", 1, INT_MAX, make_topk_grad, "own"});
}

}  // namespace onnxtrain::ops
