// Gather, GatherElements and GatherND, with their backward kernels (ai.onnxtrain GatherGrad,
// GatherElementsGrad, GatherNDGrad) and gradient rules. Shared helpers: indexing_common.h.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ops/indexing_common.h"

namespace onnxtrain::ops {

namespace indexing_impl {

// ---------------------------------------------------------------- Gather

std::unique_ptr<Kernel> make_gather(const Node& node, const std::vector<InputInfo>& in) {
  require_index_type(node, in[1], "indices");
  const Shape& ds = in[0].shape;
  if (ds.empty()) fail_shape(node, "data must have rank >= 1");
  const int64_t rank = static_cast<int64_t>(ds.size());
  const int64_t axis = normalize_axis(node.attr_int("axis", 0), rank, node);
  Shape out_shape(ds.begin(), ds.begin() + axis);
  out_shape.insert(out_shape.end(), in[1].shape.begin(), in[1].shape.end());
  out_shape.insert(out_shape.end(), ds.begin() + axis + 1, ds.end());
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= ds[d];
  for (int64_t d = axis + 1; d < rank; ++d) inner *= ds[d];
  const int64_t dim = ds[axis];

  return make_function_kernel([=](KernelContext& ctx) {
    const Tensor& data = ctx.input(0);
    const Tensor& indices = ctx.input(1);
    Tensor& out = ctx.output(0, data.dtype(), out_shape);
    const int64_t n_idx = indices.numel();
    if (out.numel() == 0) return;
    const size_t esize = dtype_size(data.dtype());
    const auto* src = static_cast<const std::byte*>(data.raw());
    auto* dst = static_cast<std::byte*>(out.raw());
    dispatch_index(indices.dtype(), ctx.node(), [&](auto itag) {
      using I = decltype(itag);
      check_indices<I>(ctx.node(), indices, "indices", axis, dim);
      const I* idx = indices.data<I>();
      if (inner == 1) {
        // Element gather (embedding of width 1, 1-D tables, last-axis gathers).
        dispatch_element_size(data.dtype(), ctx.node(), [&](auto size_tag) {
          constexpr size_t S = decltype(size_tag)::size;
          parallel_for(outer * n_idx, [&](int64_t i) {
            const int64_t o = i / n_idx, j = i % n_idx;
            std::memcpy(dst + i * S, src + (o * dim + wrap(idx[j], dim)) * S, S);
          });
        });
        return;
      }
      const size_t block = static_cast<size_t>(inner) * esize;
      parallel_for(
          outer * n_idx,
          [&](int64_t i) {
            const int64_t o = i / n_idx, j = i % n_idx;
            std::memcpy(dst + i * block, src + (o * dim + wrap(idx[j], dim)) * block, block);
          },
          std::max<int64_t>(1, 65536 / static_cast<int64_t>(block)));
    });
  });
}

std::unique_ptr<Kernel> make_gather_elements(const Node& node, const std::vector<InputInfo>& in) {
  require_index_type(node, in[1], "indices");
  const ElementsLayout l = elements_layout(node, in[0].shape, in[1].shape);
  return make_function_kernel([l](KernelContext& ctx) {
    const Tensor& data = ctx.input(0);
    const Tensor& indices = ctx.input(1);
    Tensor& out = ctx.output(0, data.dtype(), indices.shape());
    if (out.numel() == 0) return;
    const auto* src = static_cast<const std::byte*>(data.raw());
    auto* dst = static_cast<std::byte*>(out.raw());
    dispatch_index(indices.dtype(), ctx.node(), [&](auto itag) {
      using I = decltype(itag);
      check_indices<I>(ctx.node(), indices, "indices", l.axis, l.axis_dim);
      const I* idx = indices.data<I>();
      dispatch_element_size(data.dtype(), ctx.node(), [&](auto size_tag) {
        constexpr size_t S = decltype(size_tag)::size;
        parallel_for(
            l.rows,
            [&](int64_t row) {
              const int64_t base = l.row_base(row);
              const I* ri = idx + row * l.row_len;
              std::byte* ro = dst + row * l.row_len * S;
              for (int64_t j = 0; j < l.row_len; ++j) std::memcpy(ro + j * S, src + l.offset(base, j, ri[j]) * S, S);
            },
            std::max<int64_t>(1, 16384 / std::max<int64_t>(l.row_len, 1)));
      });
    });
  });
}

std::unique_ptr<Kernel> make_gather_nd(const Node& node, const std::vector<InputInfo>& in) {
  require_index_type(node, in[1], "indices");
  const NdLayout l = nd_layout(node, in[0].shape, in[1].shape, node.opset >= 12 ? node.attr_int("batch_dims", 0) : 0);
  Shape out_shape(in[1].shape.begin(), in[1].shape.end() - 1);
  out_shape.insert(out_shape.end(), in[0].shape.begin() + l.batch_dims + l.k, in[0].shape.end());
  return make_function_kernel([l, out_shape](KernelContext& ctx) {
    const Tensor& data = ctx.input(0);
    const Tensor& indices = ctx.input(1);
    Tensor& out = ctx.output(0, data.dtype(), out_shape);
    if (out.numel() == 0) return;
    const auto* src = static_cast<const std::byte*>(data.raw());
    auto* dst = static_cast<std::byte*>(out.raw());
    const size_t esize = dtype_size(data.dtype());
    const size_t block = static_cast<size_t>(l.slice) * esize;
    dispatch_index(indices.dtype(), ctx.node(), [&](auto itag) {
      using I = decltype(itag);
      l.check<I>(ctx.node(), indices);
      const I* idx = indices.data<I>();
      parallel_for(
          l.batches * l.tuples,
          [&](int64_t t) { std::memcpy(dst + t * block, src + l.offset(idx, t) * esize, block); },
          std::max<int64_t>(1, 65536 / static_cast<int64_t>(block)));
    });
  });
}

// =============================================================== Gradients

// Positions 0..n-1 grouped by destination key, each group in position order (counting
// sort). A scatter-add over these groups runs one destination row per task, so it needs no
// atomics and sums every row in the same order on every run (deterministic results).
struct Buckets {
  std::vector<int64_t> start;  // n_keys + 1
  std::vector<int64_t> items;
};

template <typename KeyFn>
Buckets bucket_by_key(int64_t n, int64_t n_keys, KeyFn&& key) {
  Buckets b;
  b.start.assign(static_cast<size_t>(n_keys) + 1, 0);
  b.items.resize(static_cast<size_t>(n));
  std::vector<int64_t> keys(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ++b.start[(keys[i] = key(i)) + 1];
  for (int64_t k = 0; k < n_keys; ++k) b.start[k + 1] += b.start[k];
  std::vector<int64_t> fill(b.start.begin(), b.start.end() - 1);
  for (int64_t i = 0; i < n; ++i) b.items[fill[keys[i]]++] = i;
  return b;
}

// dst[o, r, :] = sum of src[o, j, :] over the items j of bucket r, for rows of `inner`
// elements; every destination row is written (zeros where no item lands).
template <typename T>
void scatter_add_rows(T* dst, const T* src, const Buckets& b, int64_t outer, int64_t n_keys, int64_t n_items,
                      int64_t inner) {
  const int64_t rows = outer * n_keys;
  const int64_t work = rows * inner + outer * n_items * inner;
  // Dynamic schedule: popular rows (padding tokens, frequent words) hold many items.
#pragma omp parallel for schedule(dynamic, 16) if (work >= 65536)
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t o = i / n_keys, r = i % n_keys;
    T* d = dst + i * inner;
    std::fill_n(d, inner, T(0));
    const T* base = src + o * n_items * inner;
    for (int64_t p = b.start[r]; p < b.start[r + 1]; ++p) {
      const T* s = base + b.items[p] * inner;
      for (int64_t e = 0; e < inner; ++e) d[e] += s[e];
    }
  }
}

// The data shape handed to a *Grad op as its last input (an int64 tensor, e.g. Shape(data)).
Shape shape_input(KernelContext& ctx, size_t i) {
  const Tensor& t = ctx.input(i);
  if (t.dtype() != DType::Int64 || t.rank() != 1)
    fail(ctx.node(), "the shape input must be a 1-D int64 tensor, got " + dtype_name(t.dtype()) + " " +
                         shape_str(t.shape()));
  Shape s = t.to_vector<int64_t>();
  for (int64_t d : s)
    if (d < 0) fail_shape(ctx.node(), "the shape input " + shape_str(s) + " has a negative dimension");
  return s;
}

// ai.onnxtrain.GatherGrad(dY, indices, shape) <axis>: zeros of `shape` with each slice of dY
// added at its index along axis (repeated indices accumulate, negative ones wrap).
std::unique_ptr<Kernel> make_gather_grad(const Node& node, const std::vector<InputInfo>& in) {
  require_float_grad(node, in[0]);
  require_index_type(node, in[1], "indices");
  const int64_t axis_attr = node.attr_int("axis", 0);
  return make_function_kernel([axis_attr](KernelContext& ctx) {
    const Node& node = ctx.node();
    const Tensor& dy = ctx.input(0);
    const Tensor& indices = ctx.input(1);
    const Shape ds = shape_input(ctx, 2);
    if (ds.empty()) fail_shape(node, "data must have rank >= 1");
    const int64_t rank = static_cast<int64_t>(ds.size());
    const int64_t axis = normalize_axis(axis_attr, rank, node);
    Shape expected(ds.begin(), ds.begin() + axis);
    expected.insert(expected.end(), indices.shape().begin(), indices.shape().end());
    expected.insert(expected.end(), ds.begin() + axis + 1, ds.end());
    if (dy.shape() != expected)
      fail_shape(node, "gradient " + shape_str(dy.shape()) + " must have shape " + shape_str(expected) + " for data " +
                           shape_str(ds) + " and indices " + shape_str(indices.shape()));
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= ds[d];
    for (int64_t d = axis + 1; d < rank; ++d) inner *= ds[d];
    const int64_t dim = ds[axis], n_idx = indices.numel();
    Tensor& dx = ctx.output(0, dy.dtype(), ds);
    if (dx.numel() == 0) return;
    dispatch_index(indices.dtype(), node, [&](auto itag) {
      using I = decltype(itag);
      check_indices<I>(node, indices, "indices", axis, dim);
      const I* idx = indices.data<I>();
      const Buckets b = bucket_by_key(n_idx, dim, [&](int64_t j) { return wrap(idx[j], dim); });
      dispatch_float(dy.dtype(), node, [&](auto tag) {
        using T = decltype(tag);
        scatter_add_rows<T>(dx.data<T>(), dy.data<T>(), b, outer, dim, n_idx, inner);
      });
    });
  });
}

// ai.onnxtrain.GatherElementsGrad(dY, indices, shape) <axis>: zeros of `shape`, then
// dX[..., idx[p], ...] += dY[p] along axis.
std::unique_ptr<Kernel> make_gather_elements_grad(const Node& node, const std::vector<InputInfo>& in) {
  require_float_grad(node, in[0]);
  require_index_type(node, in[1], "indices");
  if (in[0].shape != in[1].shape)
    fail_shape(node, "gradient " + shape_str(in[0].shape) + " must have the shape of indices " + shape_str(in[1].shape));
  return make_function_kernel([](KernelContext& ctx) {
    const Node& node = ctx.node();
    const Tensor& dy = ctx.input(0);
    const Tensor& indices = ctx.input(1);
    const Shape ds = shape_input(ctx, 2);
    const ElementsLayout l = elements_layout(node, ds, indices.shape());
    Tensor& dx = ctx.output(0, dy.dtype(), ds);
    if (dx.numel() == 0) return;
    const Shape& is = indices.shape();
    const int64_t rank = static_cast<int64_t>(is.size());
    // Index space = outer x A x inner around the axis; every (outer, inner) pair is one line
    // of destinations along the axis, disjoint from all other lines.
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < l.axis; ++d) outer *= is[d];
    for (int64_t d = l.axis + 1; d < rank; ++d) inner *= is[d];
    const int64_t A = is[l.axis];
    // Data offsets of the outer and inner multi-indices (data dims may exceed index dims).
    auto offsets = [&](int64_t from, int64_t to, int64_t count) {
      std::vector<int64_t> off(static_cast<size_t>(count), 0);
      for (int64_t f = 0; f < count; ++f) {
        int64_t rest = f, o = 0;
        for (int64_t d = to - 1; d >= from; --d) {
          o += (rest % is[d]) * l.data_strides[d];
          rest /= is[d];
        }
        off[f] = o;
      }
      return off;
    };
    const std::vector<int64_t> outer_off = offsets(0, l.axis, outer), inner_off = offsets(l.axis + 1, rank, inner);
    const int64_t axis_stride = l.data_strides[l.axis];
    dispatch_index(indices.dtype(), node, [&](auto itag) {
      using I = decltype(itag);
      check_indices<I>(node, indices, "indices", l.axis, l.axis_dim);
      const I* idx = indices.data<I>();
      dispatch_float(dy.dtype(), node, [&](auto tag) {
        using T = decltype(tag);
        T* dst = dx.data<T>();
        const T* g = dy.data<T>();
        std::memset(dst, 0, dx.nbytes());
        if (indices.numel() == 0) return;
        // Tasks: (outer, chunk of inner); within a task the axis loop runs in index order.
        constexpr int64_t kChunk = 1024;
        const int64_t chunks = (inner + kChunk - 1) / kChunk;
        parallel_for(
            outer * chunks,
            [&](int64_t task) {
              const int64_t o = task / chunks, c0 = (task % chunks) * kChunk, c1 = std::min(inner, c0 + kChunk);
              T* base = dst + outer_off[o];
              for (int64_t a = 0; a < A; ++a) {
                const int64_t row = (o * A + a) * inner;
                for (int64_t i = c0; i < c1; ++i)
                  base[wrap(idx[row + i], l.axis_dim) * axis_stride + inner_off[i]] += g[row + i];
              }
            },
            std::max<int64_t>(1, 16384 / std::max<int64_t>(A * std::min(inner, kChunk), 1)));
      });
    });
  });
}

// ai.onnxtrain.GatherNDGrad(dY, indices, shape) <batch_dims>: zeros of `shape` with each
// slice of dY added at the slice its index tuple addresses.
std::unique_ptr<Kernel> make_gather_nd_grad(const Node& node, const std::vector<InputInfo>& in) {
  require_float_grad(node, in[0]);
  require_index_type(node, in[1], "indices");
  const int64_t batch_dims = node.attr_int("batch_dims", 0);
  return make_function_kernel([batch_dims](KernelContext& ctx) {
    const Node& node = ctx.node();
    const Tensor& dy = ctx.input(0);
    const Tensor& indices = ctx.input(1);
    const Shape ds = shape_input(ctx, 2);
    const NdLayout l = nd_layout(node, ds, indices.shape(), batch_dims);
    Shape expected(indices.shape().begin(), indices.shape().end() - 1);
    expected.insert(expected.end(), ds.begin() + l.batch_dims + l.k, ds.end());
    if (dy.shape() != expected)
      fail_shape(node, "gradient " + shape_str(dy.shape()) + " must have shape " + shape_str(expected) + " for data " +
                           shape_str(ds) + " and indices " + shape_str(indices.shape()));
    Tensor& dx = ctx.output(0, dy.dtype(), ds);
    if (dx.numel() == 0) return;
    dispatch_index(indices.dtype(), node, [&](auto itag) {
      using I = decltype(itag);
      l.check<I>(node, indices);
      const I* idx = indices.data<I>();
      // Keys: the destination slices of all batches.
      const int64_t n_keys = dx.numel() / l.slice, n_items = l.batches * l.tuples;
      const Buckets b = bucket_by_key(n_items, n_keys, [&](int64_t t) { return l.offset(idx, t) / l.slice; });
      dispatch_float(dy.dtype(), node, [&](auto tag) {
        using T = decltype(tag);
        scatter_add_rows<T>(dx.data<T>(), dy.data<T>(), b, 1, n_keys, n_items, l.slice);
      });
    });
  });
}

// ------------------------------------------------------------ gradient rules

// Gather: dData = GatherGrad(dY, indices, Shape(data)).
void gather_gradient(GradientBuilder& b) {
  b.GI(0, b.train_op("GatherGrad", {b.GO(0), b.I(1), b.shape_of(b.I(0))}, {{"axis", b.node().attr_int("axis", 0)}}));
}

void gather_elements_gradient(GradientBuilder& b) {
  b.GI(0, b.train_op("GatherElementsGrad", {b.GO(0), b.I(1), b.shape_of(b.I(0))},
                     {{"axis", b.node().attr_int("axis", 0)}}));
}

void gather_nd_gradient(GradientBuilder& b) {
  const graph::Node& n = b.node();
  const int64_t batch_dims = n.opset >= 12 ? n.attr_int("batch_dims", 0) : 0;
  b.GI(0, b.train_op("GatherNDGrad", {b.GO(0), b.I(1), b.shape_of(b.I(0))}, {{"batch_dims", batch_dims}}));
}

}  // namespace indexing_impl

void register_gather_ops(Registry& r) {
  using namespace indexing_impl;
  r.add({"", "Gather", 1, INT_MAX, make_gather, "own", gather_gradient, {1}});
  r.add({"", "GatherElements", 11, INT_MAX, make_gather_elements, "own", gather_elements_gradient, {1}});
  r.add({"", "GatherND", 11, INT_MAX, make_gather_nd, "own", gather_nd_gradient, {1}});
  const char* t = graph::kTrainingDomain;
  r.add({t, "GatherGrad", 1, INT_MAX, make_gather_grad, "own"});
  r.add({t, "GatherElementsGrad", 1, INT_MAX, make_gather_elements_grad, "own"});
  r.add({t, "GatherNDGrad", 1, INT_MAX, make_gather_nd_grad, "own"});
}

}  // namespace onnxtrain::ops
