// Indexing: Gather, GatherElements, GatherND, ScatterElements (and the deprecated Scatter),
// ScatterND, OneHot, NonZero, Trilu. The rarer ops live in indexing_extra.cpp.
//
// Moving data does not depend on the element type, only on its size, so copies go through
// Bytes<S> (a fixed-size memcpy the compiler turns into one load/store) or a block memcpy.
// Index tensors are validated in a serial pass before any parallel loop: an exception must
// not escape an OpenMP region, and the error names the first offending index.
//
// Gradient rules and their backward kernels (ai.onnxtrain GatherGrad, GatherElementsGrad,
// GatherNDGrad, ScatterElementsUpdatesGrad, ScatterNDUpdatesGrad) are at the end.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "onnxtrain/errors.h"
#include "ops/gradient.h"
#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

void register_indexing_extra_ops(Registry& r);

namespace {

template <size_t S>
struct Bytes {
  static constexpr size_t size = S;
};

template <typename F>
void dispatch_element_size(DType dtype, const Node& node, F&& f) {
  if (dtype == DType::String || dtype == DType::Undefined)
    fail(node, "does not support element type " + dtype_name(dtype));
  switch (dtype_size(dtype)) {
    case 1: f(Bytes<1>{}); break;
    case 2: f(Bytes<2>{}); break;
    case 4: f(Bytes<4>{}); break;
    case 8: f(Bytes<8>{}); break;
    default: fail(node, "does not support element type " + dtype_name(dtype));
  }
}

void require_index_type(const Node& node, const InputInfo& in, const char* name) {
  if (in.dtype != DType::Int32 && in.dtype != DType::Int64)
    fail(node, std::string("input '") + name + "' must be int32 or int64, got " + dtype_name(in.dtype));
}

template <typename F>
void dispatch_index(DType dtype, const Node& node, F&& f) {
  dispatch_types<int32_t, int64_t>(dtype, node, std::forward<F>(f));
}

// "[1,0,2]": the multi-index of a flat position, for error messages.
std::string position_str(const Shape& shape, int64_t flat) {
  Shape coord(shape.size(), 0);
  for (size_t d = shape.size(); d-- > 0;) {
    if (shape[d] == 0) break;
    coord[d] = flat % shape[d];
    flat /= shape[d];
  }
  return shape_str(coord);
}

[[noreturn]] void fail_index(const Node& node, const char* input, const Shape& input_shape, int64_t position,
                             int64_t value, const std::string& axis_desc, int64_t dim) {
  fail(node, std::string("index ") + std::to_string(value) + " in '" + input + "' at " +
                 position_str(input_shape, position) + " is out of range for " + axis_desc + " of size " +
                 std::to_string(dim) + " (valid: [" + std::to_string(-dim) + ", " + std::to_string(dim - 1) + "])");
}

// Fails on the first index outside [-dim, dim).
template <typename I>
void check_indices(const Node& node, const Tensor& indices, const char* input, int64_t axis, int64_t dim) {
  const I* idx = indices.data<I>();
  const int64_t n = indices.numel();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t v = idx[i];
    if (v < -dim || v >= dim) fail_index(node, input, indices.shape(), i, v, "axis " + std::to_string(axis), dim);
  }
}

inline int64_t wrap(int64_t v, int64_t dim) { return v < 0 ? v + dim : v; }

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

// ------------------------------------------------- GatherElements / ScatterElements

// The index tensor seen as rows of its last dimension; each row maps to a base offset in
// `data` (whose dims may be larger than the index dims off the axis).
struct ElementsLayout {
  Shape index_shape;
  Shape data_strides;
  int64_t axis = 0;
  int64_t axis_dim = 0;
  int64_t row_len = 0;
  int64_t rows = 0;
  int64_t col_stride = 0;  // data stride along the last dim, 0 when that dim is the axis

  int64_t row_base(int64_t row) const {
    int64_t base = 0;
    for (int64_t d = static_cast<int64_t>(index_shape.size()) - 2; d >= 0; --d) {
      const int64_t c = row % index_shape[d];
      row /= index_shape[d];
      if (d != axis) base += c * data_strides[d];
    }
    return base;
  }
  int64_t offset(int64_t base, int64_t col, int64_t index) const {
    return base + col * col_stride + wrap(index, axis_dim) * data_strides[axis];
  }
};

ElementsLayout elements_layout(const Node& node, const Shape& data, const Shape& indices) {
  if (data.empty()) fail_shape(node, "data must have rank >= 1");
  if (indices.size() != data.size())
    fail_shape(node, "indices " + shape_str(indices) + " must have the rank of data " + shape_str(data));
  ElementsLayout l;
  const int64_t rank = static_cast<int64_t>(data.size());
  l.axis = normalize_axis(node.attr_int("axis", 0), rank, node);
  for (int64_t d = 0; d < rank; ++d)
    if (d != l.axis && indices[d] > data[d])
      fail_shape(node, "indices " + shape_str(indices) + " exceed data " + shape_str(data) + " in dimension " +
                           std::to_string(d));
  l.index_shape = indices;
  l.data_strides = strides_of(data);
  l.axis_dim = data[l.axis];
  l.row_len = indices.back();
  l.rows = l.row_len ? shape_numel(indices) / l.row_len : 0;
  l.col_stride = l.axis == rank - 1 ? 0 : l.data_strides[rank - 1];
  return l;
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

enum class Reduction { None, Add, Mul, Max, Min };

// `reduction` arrived in opset 16 (none/add/mul); max/min in opset 18.
Reduction parse_reduction(const Node& node) {
  const std::string r = node.attr_string("reduction", "none");
  if (r == "none") return Reduction::None;
  if (node.opset >= 16 && r == "add") return Reduction::Add;
  if (node.opset >= 16 && r == "mul") return Reduction::Mul;
  if (node.opset >= 18 && r == "max") return Reduction::Max;
  if (node.opset >= 18 && r == "min") return Reduction::Min;
  fail(node, "reduction '" + r + "' is not supported at this opset");
}

template <typename T>
inline void reduce_into(T& dst, T src, Reduction r) {
  // Integers wrap around like ONNX Runtime's; unsigned arithmetic keeps that defined.
  using A = std::conditional_t<std::is_integral_v<T>, uint64_t, T>;
  switch (r) {
    case Reduction::None: dst = src; break;
    case Reduction::Add: dst = static_cast<T>(static_cast<A>(dst) + static_cast<A>(src)); break;
    case Reduction::Mul: dst = static_cast<T>(static_cast<A>(dst) * static_cast<A>(src)); break;
    case Reduction::Max: dst = std::max(dst, src); break;
    case Reduction::Min: dst = std::min(dst, src); break;
  }
}

// Calls f(T{}) for reductions (typed arithmetic) or f(Bytes<S>{}) for plain assignment.
template <typename F>
void dispatch_scatter(DType dtype, Reduction r, const Node& node, F&& f) {
  if (r == Reduction::None)
    dispatch_element_size(dtype, node, std::forward<F>(f));
  else
    dispatch_numeric(dtype, node, std::forward<F>(f));
}

template <typename T>
struct IsBytes : std::false_type {};
template <size_t S>
struct IsBytes<Bytes<S>> : std::true_type {};

// Writes update `u` (element index) onto output element `o`.
template <typename Tag>
inline void scatter_one(std::byte* out, const std::byte* upd, int64_t o, int64_t u, Reduction r) {
  if constexpr (IsBytes<Tag>::value) {
    std::memcpy(out + o * Tag::size, upd + u * Tag::size, Tag::size);
  } else {
    reduce_into(reinterpret_cast<Tag*>(out)[o], reinterpret_cast<const Tag*>(upd)[u], r);
  }
}

void copy_data(const Tensor& data, Tensor& out) {
  const size_t bytes = data.nbytes();
  if (bytes == 0) return;
  const auto* src = static_cast<const std::byte*>(data.raw());
  auto* dst = static_cast<std::byte*>(out.raw());
  constexpr int64_t kChunk = 1 << 20;
  const int64_t chunks = static_cast<int64_t>((bytes + kChunk - 1) / kChunk);
  parallel_for(
      chunks,
      [&](int64_t c) {
        const size_t begin = static_cast<size_t>(c) * kChunk;
        std::memcpy(dst + begin, src + begin, std::min<size_t>(kChunk, bytes - begin));
      },
      2);
}

std::unique_ptr<Kernel> make_scatter_elements(const Node& node, const std::vector<InputInfo>& in) {
  require_index_type(node, in[1], "indices");
  if (in[2].shape != in[1].shape)
    fail_shape(node, "updates " + shape_str(in[2].shape) + " must have the shape of indices " + shape_str(in[1].shape));
  if (in[2].dtype != in[0].dtype)
    fail(node, "updates (" + dtype_name(in[2].dtype) + ") must have the type of data (" + dtype_name(in[0].dtype) + ")");
  const ElementsLayout l = elements_layout(node, in[0].shape, in[1].shape);
  const Reduction reduction = node.op_type == "Scatter" ? Reduction::None : parse_reduction(node);
  return make_function_kernel([l, reduction](KernelContext& ctx) {
    const Tensor& data = ctx.input(0);
    const Tensor& indices = ctx.input(1);
    const Tensor& updates = ctx.input(2);
    Tensor& out = ctx.output(0, data.dtype(), data.shape());
    copy_data(data, out);
    if (indices.numel() == 0) return;
    const auto* upd = static_cast<const std::byte*>(updates.raw());
    auto* dst = static_cast<std::byte*>(out.raw());
    dispatch_index(indices.dtype(), ctx.node(), [&](auto itag) {
      using I = decltype(itag);
      check_indices<I>(ctx.node(), indices, "indices", l.axis, l.axis_dim);
      const I* idx = indices.data<I>();
      dispatch_scatter(data.dtype(), reduction, ctx.node(), [&](auto tag) {
        // Serial: duplicate indices make the order observable (last write wins / reductions).
        for (int64_t row = 0; row < l.rows; ++row) {
          const int64_t base = l.row_base(row);
          const I* ri = idx + row * l.row_len;
          for (int64_t j = 0; j < l.row_len; ++j)
            scatter_one<decltype(tag)>(dst, upd, l.offset(base, j, ri[j]), row * l.row_len + j, reduction);
        }
      });
    });
  });
}

// ------------------------------------------------------- GatherND / ScatterND

// Index tuples of length k address slices of data[b + k:] inside each of the `batches`
// leading blocks of data (batch_dims b; ScatterND has b = 0).
struct NdLayout {
  Shape data_shape;
  int64_t batch_dims = 0;
  int64_t batches = 1;
  int64_t tuples = 0;  // per batch
  int64_t k = 0;
  int64_t slice = 1;  // elements
  int64_t batch_stride = 0;
  Shape tuple_strides;  // data strides of dims b .. b+k-1

  template <typename I>
  void check(const Node& node, const Tensor& indices) const {
    const I* idx = indices.data<I>();
    const int64_t n = indices.numel();
    for (int64_t i = 0; i < n; ++i) {
      const int64_t d = batch_dims + i % k, dim = data_shape[d], v = idx[i];
      if (v < -dim || v >= dim) fail_index(node, "indices", indices.shape(), i, v, "data dimension " + std::to_string(d), dim);
    }
  }
  // Element offset in data of the slice addressed by tuple t (global over batches).
  template <typename I>
  int64_t offset(const I* idx, int64_t t) const {
    const I* tuple = idx + t * k;
    int64_t off = (t / tuples) * batch_stride;
    for (int64_t j = 0; j < k; ++j) off += wrap(tuple[j], data_shape[batch_dims + j]) * tuple_strides[j];
    return off;
  }
};

NdLayout nd_layout(const Node& node, const Shape& data, const Shape& indices, int64_t b) {
  const int64_t r = static_cast<int64_t>(data.size()), q = static_cast<int64_t>(indices.size());
  if (r < 1 || q < 1) fail_shape(node, "data and indices must have rank >= 1");
  if (b < 0 || b >= std::min(q, r)) fail(node, "batch_dims " + std::to_string(b) + " must be in [0, min(rank(data), rank(indices)))");
  NdLayout l;
  l.data_shape = data;
  l.batch_dims = b;
  l.k = indices.back();
  if (l.k < 1 || l.k > r - b)
    fail_shape(node, "the last dimension of indices " + shape_str(indices) + " must be in [1, " + std::to_string(r - b) +
                         "] for data " + shape_str(data));
  for (int64_t d = 0; d < b; ++d) {
    if (indices[d] != data[d])
      fail_shape(node, "batch dimension " + std::to_string(d) + " differs between data " + shape_str(data) +
                           " and indices " + shape_str(indices));
    l.batches *= data[d];
  }
  l.tuples = 1;
  for (int64_t d = b; d < q - 1; ++d) l.tuples *= indices[d];
  for (int64_t d = b + l.k; d < r; ++d) l.slice *= data[d];
  const Shape strides = strides_of(data);
  l.batch_stride = b > 0 ? strides[b - 1] : 0;
  l.tuple_strides.assign(strides.begin() + b, strides.begin() + b + l.k);
  return l;
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

std::unique_ptr<Kernel> make_scatter_nd(const Node& node, const std::vector<InputInfo>& in) {
  require_index_type(node, in[1], "indices");
  if (in[2].dtype != in[0].dtype)
    fail(node, "updates (" + dtype_name(in[2].dtype) + ") must have the type of data (" + dtype_name(in[0].dtype) + ")");
  const NdLayout l = nd_layout(node, in[0].shape, in[1].shape, 0);
  Shape expected(in[1].shape.begin(), in[1].shape.end() - 1);
  expected.insert(expected.end(), in[0].shape.begin() + l.k, in[0].shape.end());
  if (in[2].shape != expected)
    fail_shape(node, "updates " + shape_str(in[2].shape) + " must have shape " + shape_str(expected) + " for data " +
                         shape_str(in[0].shape) + " and indices " + shape_str(in[1].shape));
  const Reduction reduction = parse_reduction(node);
  return make_function_kernel([l, reduction](KernelContext& ctx) {
    const Tensor& data = ctx.input(0);
    const Tensor& indices = ctx.input(1);
    const Tensor& updates = ctx.input(2);
    Tensor& out = ctx.output(0, data.dtype(), data.shape());
    copy_data(data, out);
    if (updates.numel() == 0) return;
    const auto* upd = static_cast<const std::byte*>(updates.raw());
    auto* dst = static_cast<std::byte*>(out.raw());
    dispatch_index(indices.dtype(), ctx.node(), [&](auto itag) {
      using I = decltype(itag);
      l.check<I>(ctx.node(), indices);
      const I* idx = indices.data<I>();
      dispatch_scatter(data.dtype(), reduction, ctx.node(), [&](auto tag) {
        // Serial over tuples (duplicates are ordered), each slice is contiguous.
        for (int64_t t = 0; t < l.tuples; ++t) {
          const int64_t o = l.offset(idx, t), u = t * l.slice;
          for (int64_t e = 0; e < l.slice; ++e) scatter_one<decltype(tag)>(dst, upd, o + e, u + e, reduction);
        }
      });
    });
  });
}

// ------------------------------------------------------------------ OneHot

// A scalar numeric input converted to int64 with the C++ truncation of a cast, refusing
// values the cast cannot represent.
int64_t scalar_as_int64(const Tensor& t, const Node& node, const char* name) {
  if (t.numel() != 1) fail_shape(node, std::string("'") + name + "' must hold one value, got shape " + shape_str(t.shape()));
  int64_t result = 0;
  dispatch_numeric(t.dtype(), node, [&](auto tag) {
    using T = decltype(tag);
    const T v = t.data<T>()[0];
    if constexpr (std::is_floating_point_v<T>) {
      if (!(std::abs(v) < 9.2e18)) fail(node, std::string("'") + name + "' value " + std::to_string(v) + " is not a valid integer");
    } else if constexpr (std::is_same_v<T, uint64_t>) {
      if (v > static_cast<uint64_t>(INT64_MAX)) fail(node, std::string("'") + name + "' value is too large");
    }
    result = static_cast<int64_t>(v);
  });
  return result;
}

std::unique_ptr<Kernel> make_one_hot(const Node& node, const std::vector<InputInfo>& in) {
  const int64_t rank = static_cast<int64_t>(in[0].shape.size());
  int64_t axis = node.attr_int("axis", -1);
  if (axis < -rank - 1 || axis > rank)
    fail(node, "axis " + std::to_string(axis) + " is out of range [" + std::to_string(-rank - 1) + ", " + std::to_string(rank) + "]");
  if (axis < 0) axis += rank + 1;
  if (shape_numel(in[2].shape) != 2) fail_shape(node, "values must hold [off_value, on_value], got shape " + shape_str(in[2].shape));
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= in[0].shape[d];
  const int64_t inner = outer ? shape_numel(in[0].shape) / outer : 0;
  // Negative indices count from the back since opset 11; before, they select nothing.
  const bool negative_indices = node.opset >= 11;
  return make_function_kernel([axis, outer, inner, negative_indices](KernelContext& ctx) {
    const Node& node = ctx.node();
    const Tensor& indices = ctx.input(0);
    const Tensor& values = ctx.input(2);
    const int64_t depth = scalar_as_int64(ctx.input(1), node, "depth");
    if (depth < 0) fail(node, "depth must be >= 0, got " + std::to_string(depth));
    Shape out_shape = indices.shape();
    out_shape.insert(out_shape.begin() + axis, depth);
    Tensor& out = ctx.output(0, values.dtype(), out_shape);
    if (out.numel() == 0) return;
    const double lowest = negative_indices ? static_cast<double>(-depth) : 0.0;
    const auto* vals = static_cast<const std::byte*>(values.raw());
    auto* dst = static_cast<std::byte*>(out.raw());
    dispatch_element_size(values.dtype(), node, [&](auto size_tag) {
      constexpr size_t S = decltype(size_tag)::size;
      dispatch_numeric(indices.dtype(), node, [&](auto itag) {
        using I = decltype(itag);
        const I* idx = indices.data<I>();
        // out[o, d, i] = values[idx[o, i] == d]; indices outside [lowest, depth) match nothing.
        parallel_for(outer * depth, [&](int64_t od) {
          const int64_t o = od / depth, d = od % depth;
          const I* row = idx + o * inner;
          std::byte* orow = dst + od * inner * S;
          for (int64_t i = 0; i < inner; ++i) {
            const double v = static_cast<double>(row[i]);
            // Truncation toward zero, as the cast to int64 the spec prescribes.
            const bool hit = v > lowest - 1 && v < static_cast<double>(depth) &&
                             wrap(static_cast<int64_t>(v), depth) == d;
            std::memcpy(orow + i * S, vals + (hit ? S : 0), S);
          }
        }, std::max<int64_t>(1, 16384 / std::max<int64_t>(inner, 1)));
      });
    });
  });
}

// ----------------------------------------------------------------- NonZero

std::unique_ptr<Kernel> make_non_zero(const Node&, const std::vector<InputInfo>&) {
  return make_function_kernel([](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    // A scalar behaves as a one-element vector (numpy's atleast_1d(x).nonzero()).
    const Shape shape = x.rank() == 0 ? Shape{1} : x.shape();
    const int64_t rank = static_cast<int64_t>(shape.size()), n = x.numel();
    dispatch_all(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const T* v = x.data<T>();
      int64_t count = 0;
      for (int64_t i = 0; i < n; ++i) count += v[i] != T(0);
      Tensor& out = ctx.output(0, DType::Int64, {rank, count});
      int64_t* o = out.data<int64_t>();
      Shape coord(rank, 0);
      int64_t k = 0;
      for (int64_t i = 0; i < n; ++i) {
        if (v[i] != T(0)) {
          for (int64_t d = 0; d < rank; ++d) o[d * count + k] = coord[d];
          ++k;
        }
        for (int64_t d = rank - 1; d >= 0 && ++coord[d] == shape[d]; --d) coord[d] = 0;
      }
    });
  });
}

// ------------------------------------------------------------------- Trilu

std::unique_ptr<Kernel> make_trilu(const Node& node, const std::vector<InputInfo>& in) {
  const Shape& s = in[0].shape;
  if (s.size() < 2) fail_shape(node, "input must have rank >= 2, got " + shape_str(s));
  const int64_t rows = s[s.size() - 2], cols = s.back();
  const int64_t matrices = rows > 0 && cols > 0 ? shape_numel(s) / (rows * cols) : 0;
  const bool upper = node.attr_int("upper", 1) != 0;
  return make_function_kernel([=](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    int64_t k = 0;
    if (ctx.has_input(1)) {
      const Tensor& kt = ctx.input(1);
      if (kt.dtype() != DType::Int64 || kt.numel() != 1) fail(ctx.node(), "k must be an int64 scalar");
      k = kt.data<int64_t>()[0];
    }
    // Beyond +-(rows + cols) every k means the same; clamping keeps j - i - k from overflowing.
    k = std::clamp<int64_t>(k, -(rows + cols), rows + cols);
    Tensor& y = ctx.output(0, x.dtype(), x.shape());
    if (y.numel() == 0) return;
    const size_t esize = dtype_size(x.dtype());
    const auto* src = static_cast<const std::byte*>(x.raw());
    auto* dst = static_cast<std::byte*>(y.raw());
    // Row i keeps columns [lo, hi): upper keeps j >= i + k, lower keeps j <= i + k.
    parallel_for(
        matrices * rows,
        [&](int64_t r) {
          const int64_t i = r % rows;
          const int64_t lo = upper ? std::clamp<int64_t>(i + k, 0, cols) : 0;
          const int64_t hi = upper ? cols : std::clamp<int64_t>(i + k + 1, 0, cols);
          const size_t row = static_cast<size_t>(r * cols) * esize;
          std::byte* o = dst + row;
          // Zero bytes are zero in every numeric type (float +0.0 included).
          std::memset(o, 0, static_cast<size_t>(lo) * esize);
          if (hi > lo) std::memcpy(o + lo * esize, src + row + lo * esize, static_cast<size_t>(hi - lo) * esize);
          std::memset(o + std::max(hi, lo) * esize, 0, static_cast<size_t>(cols - std::max(hi, lo)) * esize);
        },
        std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)));
  });
}


// =============================================================== Gradients
//
// Gather-like ops scatter their output gradient back; scatter-like ops split theirs between
// data (the positions nobody overwrote) and updates (gathered). Index inputs get no
// gradient. The backward kernels below are ai.onnxtrain ops with own loops (oneDNN has no
// gather/scatter primitives).

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

void require_float_grad(const Node& node, const InputInfo& in) {
  if (in.dtype != DType::Float && in.dtype != DType::Double)
    fail(node, "the gradient must be float32 or float64, got " + dtype_name(in.dtype));
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

// Reductions whose updates gradient the *UpdatesGrad ops compute.
Reduction updates_grad_reduction(const Node& node) {
  const std::string r = node.attr_string("reduction", "none");
  if (r == "none") return Reduction::None;
  if (r == "mul") return Reduction::Mul;
  fail(node, "reduction '" + r + "' is not supported (none or mul)");
}

// ai.onnxtrain.ScatterElementsUpdatesGrad(dY, indices[, data, updates]) <axis, reduction>:
// the gradient of ScatterElements' updates (shaped like indices).
//   none: dY at the update's position when it is the last write there (the forward kernel
//         applies updates in order, so earlier duplicates are overwritten), else 0.
//   mul:  dY * data * (product of the other updates at the same position), with prefix and
//         suffix products (no division, exact with zeros).
std::unique_ptr<Kernel> make_scatter_elements_updates_grad(const Node& node, const std::vector<InputInfo>& in) {
  require_float_grad(node, in[0]);
  require_index_type(node, in[1], "indices");
  const Reduction red = updates_grad_reduction(node);
  const ElementsLayout l = elements_layout(node, in[0].shape, in[1].shape);
  if (red == Reduction::Mul) {
    if (in.size() < 4 || !in[2].present || !in[3].present) fail(node, "reduction 'mul' needs the data and updates inputs");
    if (in[2].shape != in[0].shape || in[3].shape != in[1].shape || in[2].dtype != in[0].dtype || in[3].dtype != in[0].dtype)
      fail_shape(node, "data and updates must match the gradient and the indices");
  }
  return make_function_kernel([l, red](KernelContext& ctx) {
    const Node& node = ctx.node();
    const Tensor& dy = ctx.input(0);
    const Tensor& indices = ctx.input(1);
    Tensor& gu = ctx.output(0, dy.dtype(), indices.shape());
    if (gu.numel() == 0) return;
    dispatch_index(indices.dtype(), node, [&](auto itag) {
      using I = decltype(itag);
      check_indices<I>(node, indices, "indices", l.axis, l.axis_dim);
      const I* idx = indices.data<I>();
      // Visits (update position, data offset) in the forward kernel's order, or reversed.
      auto visit = [&](bool reverse, auto&& f) {
        for (int64_t r = 0; r < l.rows; ++r) {
          const int64_t row = reverse ? l.rows - 1 - r : r;
          const int64_t base = l.row_base(row);
          const I* ri = idx + row * l.row_len;
          for (int64_t c = 0; c < l.row_len; ++c) {
            const int64_t j = reverse ? l.row_len - 1 - c : c;
            f(row * l.row_len + j, l.offset(base, j, ri[j]));
          }
        }
      };
      dispatch_float(dy.dtype(), node, [&](auto tag) {
        using T = decltype(tag);
        T* g = gu.data<T>();
        const T* d = dy.data<T>();
        if (red == Reduction::None) {
          std::vector<uint8_t> written(static_cast<size_t>(dy.numel()), 0);
          visit(true, [&](int64_t p, int64_t o) {
            g[p] = written[o] ? T(0) : d[o];
            written[o] = 1;
          });
        } else {
          const T* x = ctx.input(2).data<T>();
          const T* u = ctx.input(3).data<T>();
          std::vector<T> run(static_cast<size_t>(dy.numel()), T(1));
          visit(false, [&](int64_t p, int64_t o) {
            g[p] = run[o];
            run[o] *= u[p];
          });
          std::fill(run.begin(), run.end(), T(1));
          visit(true, [&](int64_t p, int64_t o) {
            g[p] *= run[o] * d[o] * x[o];
            run[o] *= u[p];
          });
        }
      });
    });
  });
}

// ai.onnxtrain.ScatterNDUpdatesGrad(dY, indices[, data, updates]) <reduction>: as above for
// ScatterND, slice by slice.
std::unique_ptr<Kernel> make_scatter_nd_updates_grad(const Node& node, const std::vector<InputInfo>& in) {
  require_float_grad(node, in[0]);
  require_index_type(node, in[1], "indices");
  const Reduction red = updates_grad_reduction(node);
  const NdLayout l = nd_layout(node, in[0].shape, in[1].shape, 0);
  Shape u_shape(in[1].shape.begin(), in[1].shape.end() - 1);
  u_shape.insert(u_shape.end(), in[0].shape.begin() + l.k, in[0].shape.end());
  if (red == Reduction::Mul) {
    if (in.size() < 4 || !in[2].present || !in[3].present) fail(node, "reduction 'mul' needs the data and updates inputs");
    if (in[2].shape != in[0].shape || in[3].shape != u_shape || in[2].dtype != in[0].dtype || in[3].dtype != in[0].dtype)
      fail_shape(node, "data and updates must match the gradient and the indices");
  }
  return make_function_kernel([l, red, u_shape](KernelContext& ctx) {
    const Node& node = ctx.node();
    const Tensor& dy = ctx.input(0);
    const Tensor& indices = ctx.input(1);
    Tensor& gu = ctx.output(0, dy.dtype(), u_shape);
    if (gu.numel() == 0) return;
    dispatch_index(indices.dtype(), node, [&](auto itag) {
      using I = decltype(itag);
      l.check<I>(node, indices);
      const I* idx = indices.data<I>();
      dispatch_float(dy.dtype(), node, [&](auto tag) {
        using T = decltype(tag);
        T* g = gu.data<T>();
        const T* d = dy.data<T>();
        const int64_t S = l.slice;
        if (red == Reduction::None) {
          std::vector<uint8_t> written(static_cast<size_t>(dy.numel() / S), 0);
          for (int64_t t = l.tuples - 1; t >= 0; --t) {
            const int64_t o = l.offset(idx, t);
            if (written[o / S]) std::fill_n(g + t * S, S, T(0));
            else std::copy_n(d + o, S, g + t * S);
            written[o / S] = 1;
          }
        } else {
          const T* x = ctx.input(2).data<T>();
          const T* u = ctx.input(3).data<T>();
          std::vector<T> run(static_cast<size_t>(dy.numel()), T(1));
          for (int64_t t = 0; t < l.tuples; ++t) {
            const int64_t o = l.offset(idx, t);
            for (int64_t e = 0; e < S; ++e) {
              g[t * S + e] = run[o + e];
              run[o + e] *= u[t * S + e];
            }
          }
          std::fill(run.begin(), run.end(), T(1));
          for (int64_t t = l.tuples - 1; t >= 0; --t) {
            const int64_t o = l.offset(idx, t);
            for (int64_t e = 0; e < S; ++e) {
              g[t * S + e] *= run[o + e] * d[o + e] * x[o + e];
              run[o + e] *= u[t * S + e];
            }
          }
        }
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

// ScatterElements / Scatter (nd = false) and ScatterND (nd = true), Y = scatter(data, idx, upd):
//   none: dData = scatter(dY, idx, 0) (overwritten positions get nothing),
//         dUpdates = dY at each update's position when it is the last write there;
//   add:  dData = dY, dUpdates = gather(dY, idx);
//   mul:  dData = dY * scatter(1, idx, upd, mul), dUpdates = *UpdatesGrad(mul).
void scatter_gradient(GradientBuilder& b, bool nd) {
  const graph::Node& n = b.node();
  const std::string reduction = n.op_type == "Scatter" ? "none" : n.attr_string("reduction", "none");
  Attributes axis;
  if (!nd) axis["axis"] = n.attr_int("axis", 0);
  auto with_reduction = [&](const std::string& r) {
    Attributes a = axis;
    a["reduction"] = r;
    return a;
  };
  Value* gy = b.GO(0);
  Value* idx = b.I(1);
  const std::string updates_grad = nd ? "ScatterNDUpdatesGrad" : "ScatterElementsUpdatesGrad";
  if (reduction == "none") {
    // The emitted scatter is the forward op itself (Scatter before opset 11, ScatterElements after).
    if (b.needs_grad(0)) b.GI(0, b.op(n.op_type, {gy, idx, b.zeros_like(b.I(2))}, axis));
    if (b.needs_grad(2)) b.GI(2, b.train_op(updates_grad, {gy, idx}, with_reduction("none")));
  } else if (reduction == "add") {
    if (b.needs_grad(0)) b.GI(0, gy);
    if (b.needs_grad(2)) b.GI(2, b.op(nd ? "GatherND" : "GatherElements", {gy, idx}, axis));
  } else if (reduction == "mul") {
    if (b.needs_grad(0)) {
      Value* product = b.op(n.op_type, {b.train_op("OnesLike", {b.I(0)}), idx, b.I(2)}, with_reduction("mul"));
      b.GI(0, b.mul(gy, product));
    }
    if (b.needs_grad(2)) b.GI(2, b.train_op(updates_grad, {gy, idx, b.I(0), b.I(2)}, with_reduction("mul")));
  } else {
    throw UnsupportedOp(n.describe() + ": no gradient for reduction '" + reduction +
                        "' (only none, add and mul are differentiated)");
  }
}

// Trilu is linear and masks by position: dX = Trilu(dY) with the same k and upper.
void trilu_gradient(GradientBuilder& b) {
  const graph::Node& n = b.node();
  std::vector<Value*> inputs{b.GO(0)};
  if (n.has_input(1)) inputs.push_back(b.I(1));
  b.GI(0, b.op("Trilu", inputs, {{"upper", n.attr_int("upper", 1)}}));
}

// OneHot: Y = off where no hit, on where hit. dOn = sum(dY * hot), dOff = sum(dY) - dOn,
// with hot = OneHot(indices, depth, [0, 1]) (the same kernel decides the hits).
void one_hot_gradient(GradientBuilder& b) {
  const graph::Node& n = b.node();
  Value* values = b.I(2);
  const Tensor zero_one = values->dtype == DType::Double ? Tensor::from_vector<double>({2}, {0.0, 1.0})
                                                         : Tensor::from_vector<float>({2}, {0.f, 1.f});
  Value* hot = b.op("OneHot", {b.I(0), b.I(1), b.constant(zero_one)}, {{"axis", n.attr_int("axis", -1)}});
  Value* gy = b.reshape(b.GO(0), {-1});
  Value* on = b.reduce_sum(b.mul(gy, b.reshape(hot, {-1})), {0}, true);
  Value* all = b.reduce_sum(gy, {0}, true);
  Value* both = b.op("Concat", {b.sub(all, on), on}, {{"axis", int64_t{0}}});
  b.GI(2, b.op("Reshape", {both, b.shape_of(values)}));
}

}  // namespace

void register_indexing_ops(Registry& r) {
  auto scatter_elements_gradient = [](GradientBuilder& b) { scatter_gradient(b, false); };
  auto scatter_nd_gradient = [](GradientBuilder& b) { scatter_gradient(b, true); };
  r.add({"", "Gather", 1, INT_MAX, make_gather, "own", gather_gradient, {1}});
  r.add({"", "GatherElements", 11, INT_MAX, make_gather_elements, "own", gather_elements_gradient, {1}});
  r.add({"", "GatherND", 11, INT_MAX, make_gather_nd, "own", gather_nd_gradient, {1}});
  r.add({"", "ScatterElements", 11, INT_MAX, make_scatter_elements, "own", scatter_elements_gradient, {1}});
  r.add({"", "Scatter", 9, 10, make_scatter_elements, "own", scatter_elements_gradient, {1}});
  r.add({"", "ScatterND", 11, INT_MAX, make_scatter_nd, "own", scatter_nd_gradient, {1}});
  r.add({"", "OneHot", 9, INT_MAX, make_one_hot, "own", one_hot_gradient, {0, 1}});
  r.add({"", "NonZero", 9, INT_MAX, make_non_zero, "own", {}, {}, /*not_differentiable*/ true});
  r.add({"", "Trilu", 14, INT_MAX, make_trilu, "own", trilu_gradient, {1}});
  const char* t = graph::kTrainingDomain;
  r.add({t, "GatherGrad", 1, INT_MAX, make_gather_grad, "own"});
  r.add({t, "GatherElementsGrad", 1, INT_MAX, make_gather_elements_grad, "own"});
  r.add({t, "GatherNDGrad", 1, INT_MAX, make_gather_nd_grad, "own"});
  r.add({t, "ScatterElementsUpdatesGrad", 1, INT_MAX, make_scatter_elements_updates_grad, "own"});
  r.add({t, "ScatterNDUpdatesGrad", 1, INT_MAX, make_scatter_nd_updates_grad, "own"});
  register_indexing_extra_ops(r);
}

}  // namespace onnxtrain::ops
