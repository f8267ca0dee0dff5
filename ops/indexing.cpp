// Indexing: Gather, GatherElements, GatherND, ScatterElements (and the deprecated Scatter),
// ScatterND, OneHot, NonZero, Trilu. The rarer ops live in indexing_extra.cpp.
//
// Moving data does not depend on the element type, only on its size, so copies go through
// Bytes<S> (a fixed-size memcpy the compiler turns into one load/store) or a block memcpy.
// Index tensors are validated in a serial pass before any parallel loop: an exception must
// not escape an OpenMP region, and the error names the first offending index.
#include <cmath>
#include <cstring>
#include <string>

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

}  // namespace

void register_indexing_ops(Registry& r) {
  r.add({"", "Gather", 1, INT_MAX, make_gather, "own"});
  r.add({"", "GatherElements", 11, INT_MAX, make_gather_elements, "own"});
  r.add({"", "GatherND", 11, INT_MAX, make_gather_nd, "own"});
  r.add({"", "ScatterElements", 11, INT_MAX, make_scatter_elements, "own"});
  r.add({"", "Scatter", 9, 10, make_scatter_elements, "own"});
  r.add({"", "ScatterND", 11, INT_MAX, make_scatter_nd, "own"});
  r.add({"", "OneHot", 9, INT_MAX, make_one_hot, "own"});
  r.add({"", "NonZero", 9, INT_MAX, make_non_zero, "own"});
  r.add({"", "Trilu", 14, INT_MAX, make_trilu, "own"});
  register_indexing_extra_ops(r);
}

}  // namespace onnxtrain::ops
