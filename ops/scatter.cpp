// ScatterElements (and the deprecated Scatter) and ScatterND, with their backward kernels
// (ai.onnxtrain ScatterElementsUpdatesGrad, ScatterNDUpdatesGrad) and gradient rules. Shared
// helpers: indexing_common.h.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ops/indexing_common.h"

namespace onnxtrain::ops {

namespace indexing_impl {

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

// =============================================================== Gradients

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

}  // namespace indexing_impl

void register_scatter_ops(Registry& r) {
  using namespace indexing_impl;
  auto scatter_elements_gradient = [](GradientBuilder& b) { scatter_gradient(b, false); };
  auto scatter_nd_gradient = [](GradientBuilder& b) { scatter_gradient(b, true); };
  r.add({"", "ScatterElements", 11, INT_MAX, make_scatter_elements, "own", scatter_elements_gradient, {1}});
  r.add({"", "Scatter", 9, 10, make_scatter_elements, "own", scatter_elements_gradient, {1}});
  r.add({"", "ScatterND", 11, INT_MAX, make_scatter_nd, "own", scatter_nd_gradient, {1}});
  const char* t = graph::kTrainingDomain;
  r.add({t, "ScatterElementsUpdatesGrad", 1, INT_MAX, make_scatter_elements_updates_grad, "own"});
  r.add({t, "ScatterNDUpdatesGrad", 1, INT_MAX, make_scatter_nd_updates_grad, "own"});
}

}  // namespace onnxtrain::ops
