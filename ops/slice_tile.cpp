// Slice, Expand and Tile (copies through a strided window), with the backward kernels and
// gradient rules. Shared helpers: shape_common.h.
#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <string>

#include "ops/shape_common.h"

namespace onnxtrain::ops {

namespace shape_impl {

// ---- slice / expand / tile -------------------------------------------------------------

// A copy of the input through a strided window: covers Slice, Expand and Tile.
struct WindowPlan {
  Shape copy_shape, src_strides, out_shape;
  int64_t src_offset = 0;
};

void run_window(KernelContext& ctx, const WindowPlan& p) {
  const Tensor& x = ctx.input(0);
  Tensor& y = ctx.output(0, x.dtype(), p.out_shape);
  const size_t es = dtype_size(x.dtype());
  copy_nd(es, p.copy_shape, y.raw(), strides_of(p.copy_shape), static_cast<const std::byte*>(x.raw()) + p.src_offset * int64_t(es),
          p.src_strides);
}

// The window of X (shape `s`) that Slice reads, as a copy plan (shared by Slice and SliceGrad).
WindowPlan slice_window(const Node& node, const Shape& s, const std::vector<int64_t>& starts,
                        const std::vector<int64_t>& ends, std::optional<std::vector<int64_t>> axes,
                        std::optional<std::vector<int64_t>> steps) {
  const size_t n = starts.size();
  if (!axes) {
    axes.emplace(n);
    std::iota(axes->begin(), axes->end(), 0);
  }
  if (!steps) steps.emplace(n, 1);
  if (ends.size() != n || axes->size() != n || steps->size() != n)
    fail(node, "starts, ends, axes and steps differ in length");
  const std::vector<int64_t> ax = unique_axes(*axes, s.size(), node);
  WindowPlan p;
  p.out_shape = s;
  p.src_strides = strides_of(s);
  const Shape in_strides = p.src_strides;
  for (size_t i = 0; i < n; ++i) {
    const int64_t dim = s[ax[i]], step = (*steps)[i];
    if (step == 0) fail(node, "steps must not be 0");
    int64_t start = starts[i], end = ends[i];
    if (start < 0) start += dim;  // cannot overflow: dim >= 0
    if (end < 0) end += dim;
    int64_t count = 0;
    if (dim == 0) {
      start = 0;
    } else if (step > 0) {
      start = std::clamp<int64_t>(start, 0, dim);
      end = std::clamp<int64_t>(end, 0, dim);
      count = end > start ? (end - start - 1) / step + 1 : 0;
    } else {
      start = std::clamp<int64_t>(start, 0, dim - 1);
      end = std::clamp<int64_t>(end, -1, dim - 1);
      // Any step beyond the dimension takes one element; avoids negating INT64_MIN.
      const int64_t stride = step < -dim ? dim : -step;
      count = start > end ? (start - end - 1) / stride + 1 : 0;
    }
    p.out_shape[ax[i]] = count;
    if (count > 0) p.src_offset += start * in_strides[ax[i]];
    p.src_strides[ax[i]] = count > 1 ? in_strides[ax[i]] * step : 0;
  }
  p.copy_shape = p.out_shape;
  return p;
}

std::unique_ptr<Kernel> make_slice(const Node& node, const std::vector<InputInfo>& in) {
  const Shape s = in[0].shape;
  return planned(in, {1, 2, 3, 4}, [&node, s](const IntArgs& args) {
    auto starts = operand(node, args, 10, 1, "starts");
    auto ends = operand(node, args, 10, 2, "ends");
    if (!starts || !ends) fail(node, "needs starts and ends");
    auto axes = operand(node, args, 10, 3, "axes");
    auto steps = node.opset >= 10 ? operand(node, args, 10, 4, "steps") : std::nullopt;
    return slice_window(node, s, *starts, *ends, std::move(axes), std::move(steps));
  }, run_window);
}

std::unique_ptr<Kernel> make_expand(const Node& node, const std::vector<InputInfo>& in) {
  const Shape s = in[0].shape;
  return planned(in, {1}, [&node, s](const IntArgs& args) {
    if (!args[1]) fail(node, "needs the shape input");
    for (int64_t d : *args[1])
      if (d < 0) fail_shape(node, "shape " + ints_str(*args[1]) + " has a negative dimension");
    WindowPlan p;
    p.out_shape = broadcast_shapes({s, *args[1]}, node);
    checked_numel(p.out_shape, node);
    p.copy_shape = p.out_shape;
    p.src_strides = broadcast_strides(s, p.out_shape);
    return p;
  }, run_window);
}

std::unique_ptr<Kernel> make_tile(const Node& node, const std::vector<InputInfo>& in) {
  const Shape s = in[0].shape;
  return planned(in, {1, 2}, [&node, s](const IntArgs& args) {
    std::vector<int64_t> repeats;
    if (node.opset < 6) {  // Tile-1: scalar `tiles` repeats along scalar `axis`.
      if (!args[1] || !args[2] || args[1]->size() != 1 || args[2]->size() != 1) fail(node, "needs scalar tiles and axis");
      repeats.assign(s.size(), 1);
      repeats[normalize_axis((*args[2])[0], s.size(), node)] = (*args[1])[0];
    } else {
      if (!args[1]) fail(node, "needs the repeats input");
      repeats = *args[1];
    }
    if (repeats.size() != s.size())
      fail_shape(node, "repeats " + ints_str(repeats) + " do not match the rank of " + shape_str(s));
    // Output viewed as [r0, d0, r1, d1, ...]: the repeat axes have source stride 0.
    const Shape strides = strides_of(s);
    WindowPlan p;
    for (size_t d = 0; d < s.size(); ++d) {
      if (repeats[d] < 0) fail(node, "repeats " + ints_str(repeats) + " has a negative value");
      p.copy_shape.insert(p.copy_shape.end(), {repeats[d], s[d]});
      p.src_strides.insert(p.src_strides.end(), {0, strides[d]});
      int64_t n = 0;
      if (__builtin_mul_overflow(repeats[d], s[d], &n)) fail_shape(node, "repeats " + ints_str(repeats) + " are too large");
      p.out_shape.push_back(n);
    }
    checked_numel(p.out_shape, node);
    return p;
  }, run_window);
}

// ---- backward kernels (ai.onnxtrain) -------------------------------------------------------

// Zeroes `bytes` bytes, spread over the threads when large.
void zero_fill(void* dst, int64_t bytes) {
  constexpr int64_t kBlock = 1 << 14;
  parallel_ranges((bytes + kBlock - 1) / kBlock, kBlock, [&](int64_t b, int64_t e) {
    const int64_t lo = b * kBlock, hi = std::min(bytes, e * kBlock);
    if (lo < hi) std::memset(static_cast<std::byte*>(dst) + lo, 0, hi - lo);
  });
}

// SliceGrad(dY, shape(X), starts, ends[, axes[, steps]]): dY scattered into zeros shaped
// like X at the window Slice read (any steps, clamping as in Slice-10+).
std::unique_ptr<Kernel> make_slice_grad(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() < 4) fail(node, "expects dY, the input shape, starts and ends");
  struct Plan {
    Shape x_shape;
    WindowPlan window;
  };
  return planned(in, {1, 2, 3, 4, 5}, [&node](const IntArgs& args) {
    Plan p;
    p.x_shape = shape_operand(node, args[1], "input shape");
    p.window = slice_window(node, p.x_shape, shape_operand(node, args[2], "starts"),
                            shape_operand(node, args[3], "ends"), args[4], args[5]);
    return p;
  }, [](KernelContext& ctx, const Plan& p) {
    const Tensor& dy = ctx.input(0);
    if (dy.shape() != p.window.out_shape)
      fail_shape(ctx.node(), "gradient " + shape_str(dy.shape()) + " does not match the slice " + shape_str(p.window.out_shape));
    Tensor& dx = ctx.output(0, dy.dtype(), p.x_shape);
    const size_t es = dtype_size(dy.dtype());
    if (dy.numel() != dx.numel()) zero_fill(dx.raw(), static_cast<int64_t>(dx.nbytes()));
    copy_nd(es, p.window.copy_shape, static_cast<std::byte*>(dx.raw()) + p.window.src_offset * int64_t(es),
            p.window.src_strides, dy.raw(), strides_of(p.window.copy_shape));
  });
}

// dst[o] = sum over the reduce index space of src[o . out_strides + r . reduce_strides]:
// the adjoint of a broadcasting copy (Tile).
struct SumViewPlan {
  Shape out_shape, out_strides;  // out_strides: source strides of the output axes
  Shape reduce_shape, reduce_strides;
};

template <typename T>
void run_sum_view(const SumViewPlan& p, const T* src, T* dst) {
  const int64_t total = shape_numel(p.out_shape);
  if (total == 0) return;
  const size_t rank = p.out_shape.size();
  const int64_t n = rank ? p.out_shape.back() : 1, inner = rank ? p.out_strides.back() : 1;
  const int64_t rows = total / n, reps = shape_numel(p.reduce_shape);
  if (reps == 0) {
    std::fill(dst, dst + total, T(0));
    return;
  }
  const size_t nr = p.reduce_shape.size();
  parallel_ranges(rows, n * reps * int64_t(sizeof(T)), [&](int64_t b, int64_t e) {
    std::vector<int64_t> idx(nr);
    for (int64_t r = b; r < e; ++r) {
      int64_t rest = r, base = 0;
      for (int d = static_cast<int>(rank) - 2; d >= 0; --d) {
        base += rest % p.out_shape[d] * p.out_strides[d];
        rest /= p.out_shape[d];
      }
      T* out = dst + r * n;
      std::fill(idx.begin(), idx.end(), 0);
      int64_t off = base;
      for (int64_t k = 0; k < reps; ++k) {
        const T* s = src + off;
        if (k == 0) {
          for (int64_t j = 0; j < n; ++j) out[j] = s[j * inner];
        } else if (inner == 1) {
          for (int64_t j = 0; j < n; ++j) out[j] += s[j];
        } else {
          for (int64_t j = 0; j < n; ++j) out[j] += s[j * inner];
        }
        for (int d = static_cast<int>(nr) - 1; d >= 0; --d) {
          if (++idx[d] < p.reduce_shape[d]) {
            off += p.reduce_strides[d];
            break;
          }
          off -= (p.reduce_shape[d] - 1) * p.reduce_strides[d];
          idx[d] = 0;
        }
      }
    }
  });
}

// TileGrad(dY, shape(X)): dY viewed as [r0, d0, r1, d1, ...] summed over the repeat axes.
std::unique_ptr<Kernel> make_tile_grad(const Node& node, const std::vector<InputInfo>& in) {
  const Shape ys = in[0].shape;
  dispatch_float(in[0].dtype, node, [](auto) {});
  return planned(in, {1}, [&node, ys](const IntArgs& args) {
    const auto& xs = shape_operand(node, args[1], "input shape");
    if (xs.size() != ys.size())
      fail_shape(node, "input shape " + ints_str(xs) + " does not have the rank of the gradient " + shape_str(ys));
    const Shape y_strides = strides_of(ys);
    SumViewPlan p;
    for (size_t d = 0; d < xs.size(); ++d) {
      int64_t reps = 0;
      if (xs[d] > 0) {
        if (ys[d] % xs[d] != 0)
          fail_shape(node, "gradient " + shape_str(ys) + " is not a tiling of the input shape " + ints_str(xs));
        reps = ys[d] / xs[d];
      } else if (ys[d] != 0) {
        fail_shape(node, "gradient " + shape_str(ys) + " is not a tiling of the input shape " + ints_str(xs));
      }
      p.out_shape.push_back(xs[d]);
      p.out_strides.push_back(y_strides[d]);
      if (reps != 1) {
        p.reduce_shape.push_back(reps);
        p.reduce_strides.push_back(xs[d] * y_strides[d]);
      }
    }
    return p;
  }, [](KernelContext& ctx, const SumViewPlan& p) {
    const Tensor& dy = ctx.input(0);
    Tensor& dx = ctx.output(0, dy.dtype(), p.out_shape);
    dispatch_float(dy.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      run_sum_view<T>(p, dy.data<T>(), dx.data<T>());
    });
  });
}

// ---- gradient rules ------------------------------------------------------------------------

void slice_gradient(GradientBuilder& b) {
  if (!b.needs_grad(0)) return;
  const Node& n = b.node();
  std::vector<Value*> inputs{b.GO(0), b.shape_of(b.I(0))};
  if (n.opset >= 10) {
    for (size_t i = 1; i <= 4; ++i) inputs.push_back(i < n.inputs.size() ? n.inputs[i] : nullptr);
    while (inputs.back() == nullptr) inputs.pop_back();
  } else {
    inputs.push_back(int_constant(b, n.attr_ints("starts")));
    inputs.push_back(int_constant(b, n.attr_ints("ends")));
    if (n.has_attr("axes")) inputs.push_back(int_constant(b, n.attr_ints("axes")));
  }
  b.GI(0, b.train_op("SliceGrad", inputs));
}

void expand_gradient(GradientBuilder& b) {
  if (b.needs_grad(0)) b.GI_broadcast(0, b.GO(0));  // the driver sums it back (ReduceSumTo)
}

void tile_gradient(GradientBuilder& b) {
  if (b.needs_grad(0)) b.GI(0, b.train_op("TileGrad", {b.GO(0), b.shape_of(b.I(0))}));
}

}  // namespace shape_impl

void register_slice_tile_ops(Registry& r) {
  using namespace shape_impl;
  r.add({"", "Slice", 1, INT_MAX, make_slice, "own", slice_gradient, {1, 2, 3, 4}});
  r.add({"", "Expand", 8, INT_MAX, make_expand, "own", expand_gradient, {1}});
  r.add({"", "Tile", 1, INT_MAX, make_tile, "own", tile_gradient, {1, 2}});

  const char* t = graph::kTrainingDomain;
  r.add({t, "SliceGrad", 1, INT_MAX, make_slice_grad, "own"});
  r.add({t, "TileGrad", 1, INT_MAX, make_tile_grad, "own"});
}

}  // namespace onnxtrain::ops
