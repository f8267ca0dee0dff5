// Shape manipulation: views (Reshape, Flatten, Squeeze, Unsqueeze, Identity), shape queries
// (Shape, Size) and data movement (Transpose, Concat, Split, Slice, Expand, Tile, Pad,
// DepthToSpace, SpaceToDepth).
//
// Data movement never looks at values, so every copying op is expressed as one strided
// N-d copy (`copy_nd`) on elements of 1/2/4/8 bytes: it serves every dtype with a single
// instantiation per element size. Integer operands that arrive as inputs (shapes, axes,
// pads, ...) are resolved at plan time when they are constants, otherwise on every run.
//
// One file per operator group, each with its kernels, backward kernels and gradient rules:
// reshape.cpp (views and shape queries), transpose.cpp (Transpose, DepthToSpace,
// SpaceToDepth), concat_split.cpp, slice_tile.cpp (Slice, Expand, Tile), pad.cpp. This file
// defines the copy and the operand helpers they share (shape_common.h) and registers the
// family.
#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <string>

#include "ops/shape_common.h"

namespace onnxtrain::ops {

namespace shape_impl {

// Contiguous rows longer than this are split between threads.
constexpr int64_t kChunkBytes = 1 << 18;
// Tile edge (elements) of the blocked transpose.
constexpr int64_t kTile = 32;

int64_t checked_numel(const Shape& shape, const Node& node) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) fail_shape(node, "negative dimension in output shape " + shape_str(shape));
    if (__builtin_mul_overflow(n, d, &n)) fail_shape(node, "output shape " + shape_str(shape) + " is too large");
  }
  return n;
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

const std::vector<int64_t>& shape_operand(const Node& node, const std::optional<std::vector<int64_t>>& v,
                                          const char* what) {
  if (!v) fail(node, std::string("needs the ") + what + " input");
  return *v;
}

Value* int_constant(GradientBuilder& b, const std::vector<int64_t>& v) {
  return b.constant(Tensor::from_vector<int64_t>({static_cast<int64_t>(v.size())}, v));
}

}  // namespace shape_impl

void register_shape_ops(Registry& r) {
  register_reshape_ops(r);
  register_transpose_ops(r);
  register_concat_split_ops(r);
  register_slice_tile_ops(r);
  register_pad_ops(r);
}

}  // namespace onnxtrain::ops
