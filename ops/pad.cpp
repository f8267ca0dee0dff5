// Pad, with the backward kernel and gradient rule. Shared helpers: shape_common.h.
#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <string>

#include "ops/shape_common.h"

namespace onnxtrain::ops {

namespace shape_impl {

// ---- pad ---------------------------------------------------------------------------------

enum class PadMode { Constant, Reflect, Edge, Wrap };

struct PadPlan {
  PadMode mode = PadMode::Constant;
  Shape out_shape;
  // Per axis, the source index of each output index (-1: padding value).
  std::vector<std::vector<int64_t>> source;
  // Output range of the innermost axis that copies the input row as is.
  int64_t copy_begin = 0, copy_end = 0;
};

int64_t pad_source(PadMode mode, int64_t j, int64_t n) {
  if (j >= 0 && j < n) return j;
  switch (mode) {
    case PadMode::Constant: return -1;
    case PadMode::Edge: return j < 0 ? 0 : n - 1;
    case PadMode::Wrap: return ((j % n) + n) % n;  // opset 19: the input repeats
    case PadMode::Reflect: {
      if (n == 1) return 0;
      const int64_t period = 2 * (n - 1);
      int64_t m = ((j % period) + period) % period;
      return m < n ? m : period - m;
    }
  }
  return -1;
}

// The fill value's bytes in the data's dtype.
std::vector<std::byte> pad_value(const Node& node, DType dtype, const Tensor* value_input) {
  std::vector<std::byte> bytes(dtype_size(dtype));
  if (value_input) {
    if (value_input->numel() == 0) return bytes;
    if (value_input->dtype() != dtype) fail(node, "constant_value must have the data's element type");
    std::memcpy(bytes.data(), value_input->raw(), bytes.size());
    return bytes;
  }
  const double v = node.attr_float("value", 0.f);
  if (v == 0) return bytes;
  if (dtype == DType::Float16 || dtype == DType::BFloat16)
    fail(node, "a non-zero 'value' attribute for " + dtype_name(dtype) + " data is not supported");
  dispatch_all(dtype, node, [&](auto t) {
    auto x = static_cast<decltype(t)>(v);
    std::memcpy(bytes.data(), &x, sizeof x);
  });
  return bytes;
}

template <typename E>
void run_pad(const PadPlan& p, const E* src, const Shape& in_shape, E* dst, E fill) {
  const size_t rank = p.out_shape.size();
  const int64_t n = p.out_shape[rank - 1], rows = shape_numel(p.out_shape) / std::max<int64_t>(n, 1);
  if (n == 0) return;
  const Shape in_strides = strides_of(in_shape);
  const std::vector<int64_t>& inner = p.source[rank - 1];
  const int64_t lo = p.copy_begin, hi = p.copy_end;
  parallel_ranges(rows, n * sizeof(E), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      E* out = dst + r * n;
      int64_t rest = r, offset = 0;
      bool pad_row = false;
      for (int d = static_cast<int>(rank) - 2; d >= 0; --d) {
        int64_t i = rest % p.out_shape[d];
        rest /= p.out_shape[d];
        int64_t si = p.source[d][i];
        if (si < 0) pad_row = true;
        offset += si * in_strides[d];
      }
      if (pad_row) {
        std::fill(out, out + n, fill);
        continue;
      }
      const E* in = src + offset;
      for (int64_t j = 0; j < lo; ++j) out[j] = inner[j] < 0 ? fill : in[inner[j]];
      if (hi > lo) std::memcpy(out + lo, in + inner[lo], (hi - lo) * sizeof(E));
      for (int64_t j = hi; j < n; ++j) out[j] = inner[j] < 0 ? fill : in[inner[j]];
    }
  });
}

// `wrap` exists since Pad-19 (PadGrad, made only for valid forwards, takes it always).
PadMode pad_mode(const Node& node, bool wrap_allowed) {
  const std::string name = node.attr_string("mode", "constant");
  if (name == "constant") return PadMode::Constant;
  if (name == "reflect") return PadMode::Reflect;
  if (name == "edge") return PadMode::Edge;
  if (name == "wrap" && wrap_allowed) return PadMode::Wrap;
  fail(node, "unknown mode '" + name + "' (expected constant, reflect, edge" + (wrap_allowed ? " or wrap)" : " or, since opset 19, wrap)"));
}

// Opset 18's `axes` input names the axes `pads` speaks of; the result pads every axis.
std::vector<int64_t> pads_for_all_axes(const Node& node, std::vector<int64_t> pads, const std::optional<std::vector<int64_t>>& axes,
                                       const Shape& s) {
  const size_t rank = s.size();
  if (!axes) {
    if (pads.size() != 2 * rank) fail_shape(node, "pads " + ints_str(pads) + " do not have 2 values per axis of " + shape_str(s));
    return pads;
  }
  if (pads.size() != 2 * axes->size())
    fail_shape(node, "pads " + ints_str(pads) + " do not have 2 values per axis of " + ints_str(*axes));
  const std::vector<int64_t> a = normalize_axes(*axes, static_cast<int64_t>(rank), node);
  std::vector<int64_t> full(2 * rank, 0);
  for (size_t i = 0; i < a.size(); ++i) {
    full[a[i]] = pads[i];
    full[a[i] + rank] = pads[i + a.size()];
  }
  return full;
}

std::unique_ptr<Kernel> make_pad(const Node& node, const std::vector<InputInfo>& in) {
  const Shape s = in[0].shape;
  const PadMode mode = pad_mode(node, node.opset >= 19);
  return planned(in, {1, 3}, [&node, s, mode](const IntArgs& args) {
    auto given = operand(node, args, 11, 1, node.opset == 1 ? "paddings" : "pads");
    if (!given) fail(node, "needs pads");
    const size_t rank = s.size();
    const auto axes = node.opset >= 18 && args.size() > 3 ? args[3] : std::nullopt;
    const std::vector<int64_t> all = pads_for_all_axes(node, *given, axes, s);
    const std::vector<int64_t>* pads = &all;
    PadPlan p;
    p.mode = mode;
    for (size_t d = 0; d < rank; ++d) {
      const int64_t b = (*pads)[d], e = (*pads)[d + rank];
      int64_t out = 0;
      if (b < -s[d] || e < -s[d] || __builtin_add_overflow(s[d], b, &out) || __builtin_add_overflow(out, e, &out) || out < 0)
        fail_shape(node, "pads " + ints_str(*pads) + " crop more than the input " + shape_str(s) + " has");
      if (mode != PadMode::Constant && s[d] == 0 && out > 0)
        fail_shape(node, "cannot " + node.attr_string("mode", "") + "-pad the empty axis " + std::to_string(d));
      p.out_shape.push_back(out);
    }
    checked_numel(p.out_shape, node);
    for (size_t d = 0; d < rank; ++d) {
      std::vector<int64_t> src(p.out_shape[d]);
      for (int64_t j = 0; j < p.out_shape[d]; ++j) src[j] = pad_source(mode, j - (*pads)[d], s[d]);
      p.source.push_back(std::move(src));
    }
    if (rank > 0) {
      const int64_t b = (*pads)[rank - 1], n = p.out_shape[rank - 1];
      p.copy_begin = std::clamp<int64_t>(b, 0, n);
      p.copy_end = std::clamp<int64_t>(b + s[rank - 1], p.copy_begin, n);
    }
    return p;
  }, [s](KernelContext& ctx, const PadPlan& p) {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, x.dtype(), p.out_shape);
    const Tensor* value = ctx.node().opset >= 11 && ctx.has_input(2) ? &ctx.input(2) : nullptr;
    const std::vector<std::byte> fill = pad_value(ctx.node(), x.dtype(), value);
    if (s.empty()) {  // Rank 0: nothing to pad.
      std::memcpy(y.raw(), x.raw(), x.nbytes());
      return;
    }
    by_element_size(fill.size(), [&](auto tag) {
      using E = decltype(tag);
      E f;
      std::memcpy(&f, fill.data(), sizeof f);
      run_pad<E>(p, static_cast<const E*>(x.raw()), s, static_cast<E*>(y.raw()), f);
    });
  });
}

// ---- backward kernels (ai.onnxtrain) -------------------------------------------------------

// PadGrad(dY, pads[, axes]) with attribute mode: the adjoint of Pad. Every element of dY came from
// one element of X (or from the fill value), so each element of dX sums its preimages:
// one in constant mode, the mirrored/replicated border elements in reflect and edge mode.
struct PadGradPlan {
  Shape x_shape, y_shape;
  // Outer axes (all but the last): per input index, the output indices reading it (CSR).
  std::vector<std::vector<int64_t>> pre_begin, pre;
  // Last axis: the source of each output index (-1: fill), and the output range that
  // copies the input row as is.
  std::vector<int64_t> inner_source;
  int64_t copy_begin = 0, copy_end = 0;
};

template <typename T>
void run_pad_grad(const PadGradPlan& p, const T* dy, T* dx) {
  const size_t rank = p.x_shape.size();
  const int64_t n = p.x_shape[rank - 1], total = shape_numel(p.x_shape);
  if (total == 0) return;
  const int64_t m = p.y_shape[rank - 1], rows = total / n;
  const Shape y_strides = strides_of(p.y_shape);
  const std::vector<int64_t>& src = p.inner_source;
  const int64_t lo = p.copy_begin, hi = p.copy_end, shift = hi > lo ? src[lo] - lo : 0;
  parallel_ranges(rows, (n + m) * int64_t(sizeof(T)), [&](int64_t b, int64_t e) {
    std::vector<int64_t> idx(rank), pos(rank), first(rank), last(rank);
    for (int64_t r = b; r < e; ++r) {
      T* out = dx + r * n;
      std::fill(out, out + n, T(0));
      // The preimage lists of this row's outer indices.
      int64_t rest = r, base = 0;
      bool empty = false;
      for (int d = static_cast<int>(rank) - 2; d >= 0; --d) {
        idx[d] = rest % p.x_shape[d];
        rest /= p.x_shape[d];
        first[d] = p.pre_begin[d][idx[d]];
        last[d] = p.pre_begin[d][idx[d] + 1];
        if (first[d] == last[d]) empty = true;
        pos[d] = first[d];
        base += p.pre[d][first[d]] * y_strides[d];
      }
      if (empty) continue;
      int64_t off = base;
      while (true) {
        const T* in = dy + off;
        for (int64_t j = 0; j < lo; ++j)
          if (src[j] >= 0) out[src[j]] += in[j];
        for (int64_t j = lo; j < hi; ++j) out[j + shift] += in[j];
        for (int64_t j = hi; j < m; ++j)
          if (src[j] >= 0) out[src[j]] += in[j];
        int d = static_cast<int>(rank) - 2;
        for (; d >= 0; --d) {
          off -= p.pre[d][pos[d]] * y_strides[d];
          if (++pos[d] < last[d]) {
            off += p.pre[d][pos[d]] * y_strides[d];
            break;
          }
          pos[d] = first[d];
          off += p.pre[d][pos[d]] * y_strides[d];
        }
        if (d < 0) break;
      }
    }
  });
}

std::unique_ptr<Kernel> make_pad_grad(const Node& node, const std::vector<InputInfo>& in) {
  const Shape ys = in[0].shape;
  dispatch_float(in[0].dtype, node, [](auto) {});
  const PadMode mode = pad_mode(node, true);
  return planned(in, {1, 2}, [&node, ys, mode](const IntArgs& args) {
    const size_t rank = ys.size();
    const std::vector<int64_t> pads =
        pads_for_all_axes(node, shape_operand(node, args[1], "pads"), args.size() > 2 ? args[2] : std::nullopt, ys);
    PadGradPlan p;
    p.y_shape = ys;
    for (size_t d = 0; d < rank; ++d) {
      const int64_t x = ys[d] - pads[d] - pads[d + rank];
      if (x < 0) fail_shape(node, "pads " + ints_str(pads) + " do not fit the gradient " + shape_str(ys));
      p.x_shape.push_back(x);
    }
    if (rank == 0) return p;
    auto sources = [&](size_t d) {
      std::vector<int64_t> s(ys[d]);
      for (int64_t j = 0; j < ys[d]; ++j) s[j] = p.x_shape[d] == 0 ? -1 : pad_source(mode, j - pads[d], p.x_shape[d]);
      return s;
    };
    for (size_t d = 0; d + 1 < rank; ++d) {
      const std::vector<int64_t> s = sources(d);
      std::vector<int64_t> begin(p.x_shape[d] + 1, 0), list;
      for (int64_t j : s)
        if (j >= 0) ++begin[j + 1];
      for (int64_t i = 0; i < p.x_shape[d]; ++i) begin[i + 1] += begin[i];
      list.resize(begin.back());
      std::vector<int64_t> fill(begin.begin(), begin.end() - 1);
      for (int64_t j = 0; j < ys[d]; ++j)
        if (s[j] >= 0) list[fill[s[j]]++] = j;
      p.pre_begin.push_back(std::move(begin));
      p.pre.push_back(std::move(list));
    }
    p.inner_source = sources(rank - 1);
    const int64_t b = pads[rank - 1], m = ys[rank - 1];
    p.copy_begin = std::clamp<int64_t>(b, 0, m);
    p.copy_end = std::clamp<int64_t>(b + p.x_shape[rank - 1], p.copy_begin, m);
    return p;
  }, [](KernelContext& ctx, const PadGradPlan& p) {
    const Tensor& dy = ctx.input(0);
    Tensor& dx = ctx.output(0, dy.dtype(), p.x_shape);
    dispatch_float(dy.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      if (p.x_shape.empty()) *dx.data<T>() = *dy.data<T>();
      else run_pad_grad<T>(p, dy.data<T>(), dx.data<T>());
    });
  });
}

// ---- gradient rules ------------------------------------------------------------------------

void pad_gradient(GradientBuilder& b) {
  const Node& n = b.node();
  const std::string mode = n.attr_string("mode", "constant");
  Value* pads = n.opset >= 11 ? b.I(1) : int_constant(b, n.attr_ints(n.opset == 1 ? "paddings" : "pads"));
  std::vector<Value*> inputs = {b.GO(0), pads};
  if (n.opset >= 18 && n.has_input(3)) inputs.push_back(b.I(3));  // the axes pads speaks of
  Value* dx = b.train_op("PadGrad", std::move(inputs), {{"mode", mode}});
  if (b.needs_grad(0)) b.GI(0, dx);
  if (b.needs_grad(2)) {
    // The fill value receives every element of dY that did not come from X.
    Value* v = b.I(2);
    if (mode == "constant") b.GI(2, b.sub(b.sum_to_shape_of(b.GO(0), v), b.sum_to_shape_of(dx, v)));
    else b.GI(2, b.zeros_like(v));
  }
}

}  // namespace shape_impl

void register_pad_ops(Registry& r) {
  using namespace shape_impl;
  r.add({"", "Pad", 1, INT_MAX, make_pad, "own", pad_gradient, {1, 3}});

  const char* t = graph::kTrainingDomain;
  r.add({t, "PadGrad", 1, INT_MAX, make_pad_grad, "own"});
}

}  // namespace onnxtrain::ops
