#pragma once
// Helpers shared by the operator families: axes, broadcasting, strides, dtype dispatch.
#include <cstdint>
#include <type_traits>
#include <vector>

#include "ops/kernel.h"

namespace onnxtrain::ops {

// Maps a possibly negative axis into [0, rank); fails naming the node when out of range.
int64_t normalize_axis(int64_t axis, int64_t rank, const Node& node);
std::vector<int64_t> normalize_axes(std::vector<int64_t> axes, int64_t rank, const Node& node);

// Row-major strides in elements.
Shape strides_of(const Shape& shape);

// Multidirectional (numpy) broadcasting of several shapes; fails naming the node.
Shape broadcast_shapes(const std::vector<Shape>& shapes, const Node& node);
// Strides of `in` as seen from an `out`-shaped index space (0 on broadcast dims).
Shape broadcast_strides(const Shape& in, const Shape& out);

// For a flat output index, the flat offset into each broadcast input. Iterating with
// `next()` is cheaper than recomputing the offsets from the index.
class BroadcastIterator {
 public:
  BroadcastIterator(const Shape& out_shape, const std::vector<Shape>& in_shapes);
  void seek(int64_t flat_index);
  void next();
  int64_t offset(size_t input) const { return offsets_[input]; }

 private:
  Shape shape_;
  std::vector<Shape> strides_;
  Shape index_;
  std::vector<int64_t> offsets_;
};

// The values of a (small, integer) input tensor, e.g. a shape or axes input.
std::vector<int64_t> int_values(const Tensor& t);

// Calls f(T{}) for the C++ type that holds `dtype`; fails for types not in the list.
template <typename... Ts, typename F>
void dispatch_types(DType dtype, const Node& node, F&& f) {
  bool done = false;
  ((!done && dtype == dtype_of<Ts>() ? (f(Ts{}), done = true) : false), ...);
  if (!done) fail(node, "does not support element type " + dtype_name(dtype));
}

// The usual numeric sets.
template <typename F>
void dispatch_float(DType dtype, const Node& node, F&& f) {
  dispatch_types<float, double>(dtype, node, std::forward<F>(f));
}
template <typename F>
void dispatch_numeric(DType dtype, const Node& node, F&& f) {
  dispatch_types<float, double, int64_t, int32_t, int16_t, int8_t, uint8_t, uint16_t, uint32_t, uint64_t>(
      dtype, node, std::forward<F>(f));
}
template <typename F>
void dispatch_all(DType dtype, const Node& node, F&& f) {
  dispatch_types<float, double, int64_t, int32_t, int16_t, int8_t, uint8_t, uint16_t, uint32_t, uint64_t, bool>(
      dtype, node, std::forward<F>(f));
}

// A parallel loop over [0, n) that stays serial for small n (thread start-up dominates).
template <typename F>
void parallel_for(int64_t n, F&& f, int64_t grain = 16384) {
  if (n < grain) {
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) f(i);
}

}  // namespace onnxtrain::ops
