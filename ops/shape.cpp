// Shape manipulation: views (Reshape, Flatten, Squeeze, Unsqueeze, Identity), shape queries
// (Shape, Size) and data movement (Transpose, Concat, Split, Slice, Expand, Tile, Pad,
// DepthToSpace, SpaceToDepth).
//
// Data movement never looks at values, so every copying op is expressed as one strided
// N-d copy (`copy_nd`) on elements of 1/2/4/8 bytes: it serves every dtype with a single
// instantiation per element size. Integer operands that arrive as inputs (shapes, axes,
// pads, ...) are resolved at plan time when they are constants, otherwise on every run.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <string>

#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

namespace {

// Below this many bytes a copy stays on one thread.
constexpr int64_t kParallelBytes = 1 << 16;
// Contiguous rows longer than this are split between threads.
constexpr int64_t kChunkBytes = 1 << 18;
// Tile edge (elements) of the blocked transpose.
constexpr int64_t kTile = 32;

std::string ints_str(const std::vector<int64_t>& v) { return shape_str(v); }

int64_t checked_numel(const Shape& shape, const Node& node) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) fail_shape(node, "negative dimension in output shape " + shape_str(shape));
    if (__builtin_mul_overflow(n, d, &n)) fail_shape(node, "output shape " + shape_str(shape) + " is too large");
  }
  return n;
}

template <typename F>
void by_element_size(size_t size, F&& f) {
  switch (size) {
    case 1: return f(uint8_t{});
    case 2: return f(uint16_t{});
    case 4: return f(uint32_t{});
    case 8: return f(uint64_t{});
  }
  throw DataError("unsupported element size " + std::to_string(size));
}

// Splits [0, items) over the OpenMP threads when the work is worth it.
template <typename F>
void parallel_ranges(int64_t items, int64_t bytes_per_item, F&& f) {
  if (items <= 1 || items * bytes_per_item < kParallelBytes) {
    f(int64_t{0}, items);
    return;
  }
#pragma omp parallel
  {
    int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    int64_t begin = items * t / nt, end = items * (t + 1) / nt;
    if (begin < end) f(begin, end);
  }
}

// One axis of a strided copy: extent, destination and source stride in elements.
struct Axis {
  int64_t n, dst, src;
};

// Walks an index space row-major, tracking the destination and source offsets.
class Walker {
 public:
  explicit Walker(const std::vector<Axis>& axes) : axes_(axes), idx_(axes.size(), 0) {}
  void seek(int64_t flat) {
    dst = src = 0;
    for (int d = static_cast<int>(axes_.size()) - 1; d >= 0; --d) {
      idx_[d] = flat % axes_[d].n;
      flat /= axes_[d].n;
      dst += idx_[d] * axes_[d].dst;
      src += idx_[d] * axes_[d].src;
    }
  }
  void next() {
    for (int d = static_cast<int>(axes_.size()) - 1; d >= 0; --d) {
      const Axis& a = axes_[d];
      if (++idx_[d] < a.n) {
        dst += a.dst;
        src += a.src;
        return;
      }
      dst -= (a.n - 1) * a.dst;
      src -= (a.n - 1) * a.src;
      idx_[d] = 0;
    }
  }
  int64_t dst = 0, src = 0;

 private:
  const std::vector<Axis>& axes_;
  std::vector<int64_t> idx_;
};

int64_t count_of(const std::vector<Axis>& axes) {
  int64_t n = 1;
  for (const Axis& a : axes) n *= a.n;
  return n;
}

template <typename E>
void copy_nd_typed(std::vector<Axis> axes, E* dst, const E* src) {
  const Axis inner = axes.back();
  axes.pop_back();
  const int64_t rows = count_of(axes);
  const int64_t row_bytes = inner.n * static_cast<int64_t>(sizeof(E));

  if (inner.dst == 1 && inner.src == 1) {
    // Contiguous rows: memcpy, long rows cut into chunks so one huge row still spreads.
    const int64_t chunks = std::max<int64_t>(1, row_bytes / kChunkBytes);
    const int64_t chunk = (inner.n + chunks - 1) / chunks;
    parallel_ranges(rows * chunks, std::min(row_bytes, chunk * int64_t(sizeof(E))), [&](int64_t b, int64_t e) {
      Walker w(axes);
      w.seek(b / chunks);
      for (int64_t item = b; item < e; ++item) {
        int64_t c = item % chunks;
        if (item != b && c == 0) w.next();
        int64_t lo = c * chunk, hi = std::min(inner.n, lo + chunk);
        if (lo < hi) std::memcpy(dst + w.dst + lo, src + w.src + lo, (hi - lo) * sizeof(E));
      }
    });
    return;
  }

  // A transpose: the source's unit-stride axis is not innermost. Copy T x T tiles so both
  // sides stay in cache.
  int k = -1;
  for (int d = 0; d < static_cast<int>(axes.size()); ++d)
    if (axes[d].src == 1) k = d;
  if (inner.dst == 1 && inner.src != 0 && k >= 0 && inner.n >= 4) {
    const Axis row = axes[k];
    axes.erase(axes.begin() + k);
    const int64_t outer = count_of(axes), blocks = (row.n + kTile - 1) / kTile;
    parallel_ranges(outer * blocks, std::min(row.n, kTile) * row_bytes, [&](int64_t b, int64_t e) {
      Walker w(axes);
      for (int64_t item = b; item < e; ++item) {
        w.seek(item / blocks);
        int64_t i0 = item % blocks * kTile, i1 = std::min(row.n, i0 + kTile);
        E* d = dst + w.dst;
        const E* s = src + w.src;
        for (int64_t j0 = 0; j0 < inner.n; j0 += kTile) {
          int64_t j1 = std::min(inner.n, j0 + kTile);
          for (int64_t i = i0; i < i1; ++i)
            for (int64_t j = j0; j < j1; ++j) d[i * row.dst + j] = s[i + j * inner.src];
        }
      }
    });
    return;
  }

  // General gather (broadcast stride 0, slice steps, short transposed rows).
  parallel_ranges(rows, row_bytes, [&](int64_t b, int64_t e) {
    Walker w(axes);
    w.seek(b);
    for (int64_t r = b; r < e; ++r, w.next()) {
      E* d = dst + w.dst;
      const E* s = src + w.src;
      if (inner.src == 0) {
        const E v = *s;
        for (int64_t j = 0; j < inner.n; ++j) d[j * inner.dst] = v;
      } else {
        for (int64_t j = 0; j < inner.n; ++j) d[j * inner.dst] = s[j * inner.src];
      }
    }
  });
}

// dst[i * dst_strides] = src[i * src_strides] over `shape` (strides in elements, source
// strides may be negative or 0). The pointers address element 0 of the index space.
void copy_nd(size_t esize, const Shape& shape, void* dst, const Shape& dst_strides, const void* src,
             const Shape& src_strides) {
  std::vector<Axis> axes;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 0) return;
    if (shape[d] == 1) continue;
    // Fold an axis into its outer neighbour when both sides are contiguous across them.
    if (!axes.empty() && axes.back().dst == shape[d] * dst_strides[d] && axes.back().src == shape[d] * src_strides[d])
      axes.back() = {axes.back().n * shape[d], dst_strides[d], src_strides[d]};
    else
      axes.push_back({shape[d], dst_strides[d], src_strides[d]});
  }
  if (axes.empty()) axes.push_back({1, 1, 1});
  by_element_size(esize, [&](auto tag) {
    using E = decltype(tag);
    copy_nd_typed<E>(std::move(axes), static_cast<E*>(dst), static_cast<const E*>(src));
  });
}

// ---- integer operands ---------------------------------------------------------------

// Integer operands by input index; nullopt when the input is omitted.
using IntArgs = std::vector<std::optional<std::vector<int64_t>>>;

// Builds a kernel from make(args) -> plan and run(ctx, plan). The plan is computed once
// when every operand input in `operands` is constant (or absent), else on every run
// (a kernel serves one input signature, not one set of values).
template <typename Make, typename Run>
std::unique_ptr<Kernel> planned(const std::vector<InputInfo>& in, std::vector<size_t> operands, Make make, Run run) {
  bool fixed = true;
  size_t count = in.size();
  for (size_t i : operands) count = std::max(count, i + 1);
  IntArgs args(count);
  for (size_t i : operands) {
    if (i >= in.size() || !in[i].present) continue;
    if (!in[i].constant) fixed = false;
    else args[i] = in[i].constant->as_int64();
  }
  if (fixed) {
    return make_function_kernel([plan = make(args), run](KernelContext& ctx) { run(ctx, plan); });
  }
  return make_function_kernel([operands, count, make, run](KernelContext& ctx) {
    IntArgs args(count);
    for (size_t i : operands)
      if (ctx.has_input(i)) args[i] = ctx.input(i).as_int64();
    run(ctx, make(args));
  });
}

// The operand from input `index` for opsets >= `since`, else from attribute `attr`.
std::optional<std::vector<int64_t>> operand(const Node& node, const IntArgs& args, int since, size_t index,
                                            const char* attr) {
  if (node.opset >= since) return args[index];
  if (node.has_attr(attr)) return node.attr_ints(attr);
  return std::nullopt;
}

std::vector<int64_t> unique_axes(std::vector<int64_t> axes, int64_t rank, const Node& node) {
  axes = normalize_axes(std::move(axes), rank, node);
  std::vector<int64_t> sorted = axes;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
    fail(node, "axes " + ints_str(axes) + " repeat an axis");
  return axes;
}

// ---- views ----------------------------------------------------------------------------

// A view whose output shape depends only on the input shape and integer operands.
template <typename ShapeFn>
std::unique_ptr<Kernel> view_kernel(const std::vector<InputInfo>& in, std::vector<size_t> operands, ShapeFn shape_of) {
  return planned(in, std::move(operands), shape_of,
                 [](KernelContext& ctx, const Shape& shape) { ctx.set_output(0, ctx.input(0).reshaped(shape)); });
}

std::unique_ptr<Kernel> make_reshape(const Node& node, const std::vector<InputInfo>& in) {
  const Shape in_shape = in[0].shape;
  const bool allow_zero = node.opset >= 14 && node.attr_int("allowzero", 0) != 0;
  return view_kernel(in, {1}, [&node, in_shape, allow_zero](const IntArgs& args) {
    auto spec = operand(node, args, 5, 1, "shape");
    if (!spec) fail(node, "needs the target shape");
    Shape out = *spec;
    int infer = -1;
    int64_t known = 1;
    for (size_t i = 0; i < out.size(); ++i) {
      if (out[i] == -1) {
        if (infer >= 0) fail_shape(node, "shape " + ints_str(*spec) + " has more than one -1");
        infer = static_cast<int>(i);
        continue;
      }
      if (out[i] == 0 && !allow_zero) {
        if (i >= in_shape.size())
          fail_shape(node, "shape " + ints_str(*spec) + " copies dimension " + std::to_string(i) + " of input " +
                               shape_str(in_shape) + ", which has no such dimension");
        out[i] = in_shape[i];
      }
      if (out[i] < 0) fail_shape(node, "shape " + ints_str(*spec) + " has an invalid dimension");
      if (__builtin_mul_overflow(known, out[i], &known)) fail_shape(node, "shape " + ints_str(*spec) + " is too large");
    }
    const int64_t numel = shape_numel(in_shape);
    if (infer >= 0) {
      if (allow_zero && known == 0)
        fail_shape(node, "shape " + ints_str(*spec) + " has both 0 (allowzero) and -1");
      if (known == 0 || numel % known != 0)
        fail_shape(node, "cannot infer the -1 in shape " + ints_str(*spec) + " for input " + shape_str(in_shape));
      out[infer] = numel / known;
    } else if (known != numel) {
      fail_shape(node, "cannot reshape " + shape_str(in_shape) + " to " + shape_str(out));
    }
    return out;
  });
}

std::unique_ptr<Kernel> make_flatten(const Node& node, const std::vector<InputInfo>& in) {
  const Shape s = in[0].shape;
  const int64_t rank = s.size();
  int64_t axis = node.attr_int("axis", 1);
  if (axis < -rank || axis > rank)
    fail_shape(node, "axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  if (axis < 0) axis += rank;
  Shape out{shape_numel(Shape(s.begin(), s.begin() + axis)), shape_numel(Shape(s.begin() + axis, s.end()))};
  return view_kernel(in, {}, [out](const IntArgs&) { return out; });
}

std::unique_ptr<Kernel> make_squeeze(const Node& node, const std::vector<InputInfo>& in) {
  const Shape s = in[0].shape;
  return view_kernel(in, {1}, [&node, s](const IntArgs& args) {
    auto axes = operand(node, args, 13, 1, "axes");
    std::vector<bool> drop(s.size(), false);
    if (!axes) {
      for (size_t d = 0; d < s.size(); ++d) drop[d] = s[d] == 1;
    } else {
      for (int64_t a : unique_axes(*axes, s.size(), node)) {
        if (s[a] != 1)
          fail_shape(node, "cannot squeeze axis " + std::to_string(a) + " of shape " + shape_str(s) + ": it is not 1");
        drop[a] = true;
      }
    }
    Shape out;
    for (size_t d = 0; d < s.size(); ++d)
      if (!drop[d]) out.push_back(s[d]);
    return out;
  });
}

std::unique_ptr<Kernel> make_unsqueeze(const Node& node, const std::vector<InputInfo>& in) {
  const Shape s = in[0].shape;
  return view_kernel(in, {1}, [&node, s](const IntArgs& args) {
    auto axes = operand(node, args, 13, 1, "axes");
    if (!axes) fail(node, "needs axes");
    const int64_t rank = s.size() + axes->size();
    std::vector<bool> inserted(rank, false);
    for (int64_t a : unique_axes(*axes, rank, node)) inserted[a] = true;
    Shape out;
    size_t next = 0;
    for (int64_t d = 0; d < rank; ++d) out.push_back(inserted[d] ? 1 : s[next++]);
    return out;
  });
}

// ---- shape queries ------------------------------------------------------------------

std::unique_ptr<Kernel> make_shape(const Node& node, const std::vector<InputInfo>& in) {
  const int64_t rank = in[0].shape.size();
  auto clamp_axis = [rank](int64_t a) { return std::clamp(a < 0 ? a + rank : a, int64_t{0}, rank); };
  int64_t start = 0, end = rank;
  if (node.opset >= 15) {
    start = clamp_axis(node.attr_int("start", 0));
    if (node.has_attr("end")) end = clamp_axis(node.attr_int("end"));
  }
  const Shape dims(in[0].shape.begin() + start, in[0].shape.begin() + std::max(start, end));
  return make_function_kernel([dims](KernelContext& ctx) {
    Tensor& y = ctx.output(0, DType::Int64, {static_cast<int64_t>(dims.size())});
    std::copy(dims.begin(), dims.end(), y.data<int64_t>());
  });
}

std::unique_ptr<Kernel> make_size(const Node&, const std::vector<InputInfo>& in) {
  const int64_t n = shape_numel(in[0].shape);
  return make_function_kernel([n](KernelContext& ctx) { *ctx.output(0, DType::Int64, {}).data<int64_t>() = n; });
}

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

// ---- concat / split -------------------------------------------------------------------

std::unique_ptr<Kernel> make_concat(const Node& node, const std::vector<InputInfo>& in) {
  if (in.empty()) fail(node, "needs at least one input");
  if (node.opset >= 4 && !node.has_attr("axis")) fail(node, "needs the 'axis' attribute");
  const int64_t rank = in[0].shape.size();
  if (rank == 0) fail_shape(node, "cannot concatenate scalars");
  const int64_t axis = normalize_axis(node.attr_int("axis", 1), rank, node);
  Shape out = in[0].shape;
  out[axis] = 0;
  for (const InputInfo& x : in) {
    bool fits = x.present && static_cast<int64_t>(x.shape.size()) == rank && x.dtype == in[0].dtype;
    for (int64_t d = 0; fits && d < rank; ++d) fits = d == axis || x.shape[d] == out[d];
    if (!fits) fail_shape(node, "input " + shape_str(x.shape) + " does not fit " + shape_str(in[0].shape) + " on axis " + std::to_string(axis));
    out[axis] += x.shape[axis];
  }
  return make_function_kernel([axis, out](KernelContext& ctx) {
    Tensor& y = ctx.output(0, ctx.input(0).dtype(), out);
    const Shape dst_strides = strides_of(out);
    const size_t es = dtype_size(y.dtype());
    int64_t offset = 0;
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      const Tensor& x = ctx.input(i);
      copy_nd(es, x.shape(), static_cast<std::byte*>(y.raw()) + offset * dst_strides[axis] * es, dst_strides, x.raw(),
              strides_of(x.shape()));
      offset += x.dim(axis);
    }
  });
}

std::unique_ptr<Kernel> make_split(const Node& node, const std::vector<InputInfo>& in) {
  const Shape s = in[0].shape;
  const int64_t axis = normalize_axis(node.attr_int("axis", 0), s.size(), node);
  const int64_t parts = node.outputs.size();
  return planned(in, {1}, [&node, s, axis, parts](const IntArgs& args) {
    // Opset 1 took `split` from an attribute or a second input, 2-12 from the attribute.
    std::optional<std::vector<int64_t>> split;
    if (node.opset >= 13 || (node.opset == 1 && !node.has_attr("split"))) split = args[1];
    else if (node.has_attr("split")) split = node.attr_ints("split");
    if (!split) {
      if (parts == 0 || s[axis] % parts != 0)
        fail_shape(node, "cannot split axis " + std::to_string(axis) + " of " + shape_str(s) + " into " +
                             std::to_string(parts) + " equal parts");
      split = std::vector<int64_t>(parts, s[axis] / parts);
    }
    if (static_cast<int64_t>(split->size()) != parts)
      fail(node, "split " + ints_str(*split) + " does not have one length per output (" + std::to_string(parts) + ")");
    int64_t total = 0;
    for (int64_t v : *split) {
      if (v < 0 || __builtin_add_overflow(total, v, &total)) fail(node, "invalid split " + ints_str(*split));
    }
    if (total != s[axis])
      fail_shape(node, "split " + ints_str(*split) + " does not sum to dimension " + std::to_string(s[axis]) + " of " + shape_str(s));
    return *split;
  }, [axis](KernelContext& ctx, const std::vector<int64_t>& split) {
    const Tensor& x = ctx.input(0);
    const Shape src_strides = strides_of(x.shape());
    const size_t es = dtype_size(x.dtype());
    int64_t offset = 0;
    for (size_t i = 0; i < split.size(); ++i) {
      Shape shape = x.shape();
      shape[axis] = split[i];
      Tensor& y = ctx.output(i, x.dtype(), shape);
      copy_nd(es, shape, y.raw(), strides_of(shape),
              static_cast<const std::byte*>(x.raw()) + offset * src_strides[axis] * es, src_strides);
      offset += split[i];
    }
  });
}

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

// ---- pad ---------------------------------------------------------------------------------

enum class PadMode { Constant, Reflect, Edge };

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

std::unique_ptr<Kernel> make_pad(const Node& node, const std::vector<InputInfo>& in) {
  const Shape s = in[0].shape;
  const std::string mode_name = node.attr_string("mode", "constant");
  PadMode mode;
  if (mode_name == "constant") mode = PadMode::Constant;
  else if (mode_name == "reflect") mode = PadMode::Reflect;
  else if (mode_name == "edge") mode = PadMode::Edge;
  else fail(node, "unknown mode '" + mode_name + "' (expected constant, reflect or edge)");
  return planned(in, {1}, [&node, s, mode](const IntArgs& args) {
    auto pads = operand(node, args, 11, 1, node.opset == 1 ? "paddings" : "pads");
    if (!pads) fail(node, "needs pads");
    const size_t rank = s.size();
    if (pads->size() != 2 * rank) fail_shape(node, "pads " + ints_str(*pads) + " do not have 2 values per axis of " + shape_str(s));
    PadPlan p;
    p.mode = mode;
    for (size_t d = 0; d < rank; ++d) {
      const int64_t b = (*pads)[d], e = (*pads)[d + rank];
      int64_t out = 0;
      if (b < -s[d] || e < -s[d] || __builtin_add_overflow(s[d], b, &out) || __builtin_add_overflow(out, e, &out) || out < 0)
        fail_shape(node, "pads " + ints_str(*pads) + " crop more than the input " + shape_str(s) + " has");
      if (mode != PadMode::Constant && s[d] == 0 && out > 0)
        fail_shape(node, "cannot " + std::string(mode == PadMode::Edge ? "edge" : "reflect") + "-pad the empty axis " + std::to_string(d));
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

// Zeroes `bytes` bytes, spread over the threads when large.
void zero_fill(void* dst, int64_t bytes) {
  constexpr int64_t kBlock = 1 << 14;
  parallel_ranges((bytes + kBlock - 1) / kBlock, kBlock, [&](int64_t b, int64_t e) {
    const int64_t lo = b * kBlock, hi = std::min(bytes, e * kBlock);
    if (lo < hi) std::memset(static_cast<std::byte*>(dst) + lo, 0, hi - lo);
  });
}

// The integer operand `v` of a backward op; fails naming the node when it is missing.
const std::vector<int64_t>& shape_operand(const Node& node, const std::optional<std::vector<int64_t>>& v,
                                          const char* what) {
  if (!v) fail(node, std::string("needs the ") + what + " input");
  return *v;
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

// ConcatGrad(dY, shape(X0), shape(X1), ...) with attributes axis and outputs (the input
// indices whose gradients it produces, one output each): the slices of dY along axis.
std::unique_ptr<Kernel> make_concat_grad(const Node& node, const std::vector<InputInfo>& in) {
  const Shape s = in[0].shape;
  const int64_t axis = normalize_axis(node.attr_int("axis"), s.size(), node);
  const std::vector<int64_t> which = node.attr_ints("outputs");
  const int64_t parts = static_cast<int64_t>(in.size()) - 1;
  if (which.size() != node.outputs.size()) fail(node, "needs one entry of 'outputs' per output");
  for (int64_t i : which)
    if (i < 0 || i >= parts) fail(node, "output index " + std::to_string(i) + " is out of range");
  std::vector<size_t> operands;
  for (int64_t i = 1; i <= parts; ++i) operands.push_back(i);
  return planned(in, operands, [&node, s, axis, parts](const IntArgs& args) {
    std::vector<int64_t> offsets{0};  // parts + 1 offsets along the axis
    for (int64_t i = 1; i <= parts; ++i) {
      const auto& shape = shape_operand(node, args[i], "input shape");
      if (shape.size() != s.size())
        fail_shape(node, "input shape " + ints_str(shape) + " does not have the rank of the gradient " + shape_str(s));
      offsets.push_back(offsets.back() + shape[axis]);
    }
    if (offsets.back() != s[axis])
      fail_shape(node, "input sizes along axis " + std::to_string(axis) + " do not add up to the gradient " + shape_str(s));
    return offsets;
  }, [axis, which](KernelContext& ctx, const std::vector<int64_t>& offsets) {
    const Tensor& dy = ctx.input(0);
    const Shape src_strides = strides_of(dy.shape());
    const size_t es = dtype_size(dy.dtype());
    for (size_t k = 0; k < which.size(); ++k) {
      Shape shape = dy.shape();
      shape[axis] = offsets[which[k] + 1] - offsets[which[k]];
      Tensor& dx = ctx.output(k, dy.dtype(), shape);
      copy_nd(es, shape, dx.raw(), strides_of(shape),
              static_cast<const std::byte*>(dy.raw()) + offsets[which[k]] * src_strides[axis] * int64_t(es), src_strides);
    }
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

// PadGrad(dY, pads) with attribute mode: the adjoint of Pad. Every element of dY came from
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
  const std::string mode_name = node.attr_string("mode", "constant");
  PadMode mode;
  if (mode_name == "constant") mode = PadMode::Constant;
  else if (mode_name == "reflect") mode = PadMode::Reflect;
  else if (mode_name == "edge") mode = PadMode::Edge;
  else fail(node, "unknown mode '" + mode_name + "'");
  return planned(in, {1}, [&node, ys, mode](const IntArgs& args) {
    const auto& pads = shape_operand(node, args[1], "pads");
    const size_t rank = ys.size();
    if (pads.size() != 2 * rank) fail_shape(node, "pads " + ints_str(pads) + " do not have 2 values per axis of " + shape_str(ys));
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

Value* int_constant(GradientBuilder& b, const std::vector<int64_t>& v) {
  return b.constant(Tensor::from_vector<int64_t>({static_cast<int64_t>(v.size())}, v));
}

// dY viewed with X's shape (Reshape: a view, no copy). The shape is read at run time.
Value* reshape_like(GradientBuilder& b, Value* grad, Value* x) {
  const Node& n = b.node();
  if (n.opset >= 5) {
    Attributes attrs;
    // Shape(X) may hold 0 dims (empty tensors): they are sizes, not "copy this dim".
    if (n.opset >= 14) attrs["allowzero"] = int64_t{1};
    return b.op("Reshape", {grad, b.shape_of(x)}, attrs);
  }
  // Reshape-1 takes the shape as an attribute: only a statically known shape will do.
  std::vector<int64_t> shape;
  bool known = x->dims.has_value();
  if (known)
    for (const auto& d : *x->dims) {
      known = known && d.known() && d.value > 0;
      shape.push_back(d.value);
    }
  if (!known)
    throw UnsupportedOp(n.describe() + ": the gradient needs a Reshape to the input's shape, which opset " +
                        std::to_string(n.opset) + " can only express for a statically known, non-empty shape");
  return b.op("Reshape", {grad}, {{"shape", shape}});
}

void view_gradient(GradientBuilder& b) {
  if (b.needs_grad(0)) b.GI(0, reshape_like(b, b.GO(0), b.I(0)));
}

void identity_gradient(GradientBuilder& b) {
  if (b.needs_grad(0)) b.GI(0, b.GO(0));
}

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

void concat_gradient(GradientBuilder& b) {
  const Node& n = b.node();
  std::vector<int64_t> which;
  for (size_t i = 0; i < n.inputs.size(); ++i)
    if (b.needs_grad(i)) which.push_back(static_cast<int64_t>(i));
  if (which.empty()) return;
  // Every input's size along the axis places the slices, so all shapes are inputs.
  std::vector<Value*> inputs{b.GO(0)};
  for (size_t i = 0; i < n.inputs.size(); ++i) inputs.push_back(b.shape_of(b.I(i)));
  auto grads = b.op_n("ConcatGrad", inputs, which.size(), {{"axis", n.attr_int("axis", 1)}, {"outputs", which}},
                      graph::kTrainingDomain);
  for (size_t k = 0; k < which.size(); ++k) b.GI(which[k], grads[k]);
}

void split_gradient(GradientBuilder& b) {
  if (!b.needs_grad(0)) return;
  const Node& n = b.node();
  int64_t axis = n.attr_int("axis", 0);
  if (axis < 0 && n.opset < 11) axis += static_cast<int64_t>(b.rank(b.I(0)));  // Concat < 11: axis >= 0
  std::vector<Value*> grads;
  for (size_t i = 0; i < n.outputs.size(); ++i) grads.push_back(b.GO(i));
  b.GI(0, grads.size() == 1 ? grads[0] : b.op("Concat", grads, {{"axis", axis}}));
}

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

void pad_gradient(GradientBuilder& b) {
  const Node& n = b.node();
  if (n.opset >= 18 && n.inputs.size() > 3 && n.inputs[3])
    throw UnsupportedOp(n.describe() + ": no gradient for Pad with an 'axes' input");
  const std::string mode = n.attr_string("mode", "constant");
  Value* pads = n.opset >= 11 ? b.I(1) : int_constant(b, n.attr_ints(n.opset == 1 ? "paddings" : "pads"));
  Value* dx = b.train_op("PadGrad", {b.GO(0), pads}, {{"mode", mode}});
  if (b.needs_grad(0)) b.GI(0, dx);
  if (b.needs_grad(2)) {
    // The fill value receives every element of dY that did not come from X.
    Value* v = b.I(2);
    if (mode == "constant") b.GI(2, b.sub(b.sum_to_shape_of(b.GO(0), v), b.sum_to_shape_of(dx, v)));
    else b.GI(2, b.zeros_like(v));
  }
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

}  // namespace

void register_shape_ops(Registry& r) {
  auto view = [](const Node&, const std::vector<InputInfo>&) -> std::unique_ptr<Kernel> {
    return make_function_kernel([](KernelContext& ctx) { ctx.set_output(0, ctx.input(0)); });
  };
  r.add({"", "Identity", 1, INT_MAX, view, "own (view)", identity_gradient});
  r.add({"", "Reshape", 1, INT_MAX, make_reshape, "own (view)", view_gradient, {1}});
  r.add({"", "Flatten", 1, INT_MAX, make_flatten, "own (view)", view_gradient});
  r.add({"", "Squeeze", 1, INT_MAX, make_squeeze, "own (view)", view_gradient, {1}});
  r.add({"", "Unsqueeze", 1, INT_MAX, make_unsqueeze, "own (view)", view_gradient, {1}});
  r.add({"", "Shape", 1, INT_MAX, make_shape, "own", {}, {}, /*not_differentiable*/ true});
  r.add({"", "Size", 1, INT_MAX, make_size, "own", {}, {}, /*not_differentiable*/ true});
  r.add({"", "Transpose", 1, INT_MAX, make_transpose, "own", transpose_gradient});
  r.add({"", "DepthToSpace", 1, INT_MAX, make_depth_to_space, "own", depth_to_space_gradient});
  r.add({"", "SpaceToDepth", 1, INT_MAX, make_space_to_depth, "own", space_to_depth_gradient});
  r.add({"", "Concat", 1, INT_MAX, make_concat, "own", concat_gradient});
  r.add({"", "Split", 1, INT_MAX, make_split, "own", split_gradient, {1}});
  r.add({"", "Slice", 1, INT_MAX, make_slice, "own", slice_gradient, {1, 2, 3, 4}});
  r.add({"", "Expand", 8, INT_MAX, make_expand, "own", expand_gradient, {1}});
  r.add({"", "Tile", 1, INT_MAX, make_tile, "own", tile_gradient, {1, 2}});
  r.add({"", "Pad", 1, INT_MAX, make_pad, "own", pad_gradient, {1, 3}});

  const char* t = graph::kTrainingDomain;
  r.add({t, "SliceGrad", 1, INT_MAX, make_slice_grad, "own"});
  r.add({t, "ConcatGrad", 1, INT_MAX, make_concat_grad, "own"});
  r.add({t, "TileGrad", 1, INT_MAX, make_tile_grad, "own"});
  r.add({t, "PadGrad", 1, INT_MAX, make_pad_grad, "own"});
  r.add({t, "DepthToSpaceGrad", 1, INT_MAX, make_depth_to_space_grad, "own"});
}

}  // namespace onnxtrain::ops
