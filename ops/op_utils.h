#pragma once
// Helpers shared by the operator families: axes, broadcasting, strides, dtype dispatch.
#include <omp.h>

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

// Whether `work` elements are worth a parallel region: enough of them, and more than one
// thread to share them. (A region on one thread still costs libgomp a heap-allocated team
// each time, since it caches teams of two or more threads only: a training step at
// threads = 1 would allocate once per region.)
inline bool worth_parallel(int64_t work, int64_t grain = 16384) { return work >= grain && omp_get_max_threads() > 1; }

// A parallel loop over [0, n) that stays serial for small n (thread start-up dominates).
template <typename F>
void parallel_for(int64_t n, F&& f, int64_t grain = 16384) {
  if (!worth_parallel(n, grain)) {
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) f(i);
}

// The same over contiguous chunks: f(begin, end) on [0, n) in pieces of `chunk`, for loops
// that vectorize only as a plain function of pointers (a per-element lambda reloading its
// captures through references does not).
template <typename F>
void parallel_chunks(int64_t n, F&& f, int64_t chunk = 16384) {
  const int64_t chunks = (n + chunk - 1) / chunk;
  parallel_for(chunks, [&](int64_t c) { f(c * chunk, std::min(n, (c + 1) * chunk)); }, 2);
}

// The inverse of broadcasting: sums x (shape `xs`) into y (shape `padded`, same rank,
// each dim equal or 1), accumulating in double.
// Many outputs: each output element sums its own reduced block (parallel over outputs).
// Few outputs (bias-like gradients): threads take slices of x with private accumulators.
template <typename T>
void sum_to(const T* x, const Shape& xs, T* y, const Shape& padded) {
  const int64_t n = shape_numel(xs), m = shape_numel(padded);
  // The calling thread's scratch, so a training step's bias gradients allocate nothing here
  // (named through references: the loops below may run on other threads).
  thread_local std::vector<int64_t> scratch[5];
  std::vector<int64_t>& x_strides = scratch[0];
  std::vector<int64_t>& kept_dims = scratch[1];
  std::vector<int64_t>& kept_x_strides = scratch[2];
  std::vector<int64_t>& reduced_dims = scratch[3];
  std::vector<int64_t>& reduced_x_strides = scratch[4];
  x_strides.resize(xs.size());
  for (size_t d = xs.size(), stride = 1; d-- > 0;) {
    x_strides[d] = static_cast<int64_t>(stride);
    stride *= static_cast<size_t>(xs[d]);
  }
  kept_dims.clear();
  kept_x_strides.clear();
  reduced_dims.clear();
  reduced_x_strides.clear();
  for (size_t d = 0; d < xs.size(); ++d) {
    if (padded[d] == xs[d]) {
      kept_dims.push_back(xs[d]);
      kept_x_strides.push_back(x_strides[d]);
    } else {
      reduced_dims.push_back(xs[d]);
      reduced_x_strides.push_back(x_strides[d]);
    }
  }
  const int64_t per_output = m ? n / m : 0;
  auto offset_of = [](int64_t flat, const std::vector<int64_t>& dims, const std::vector<int64_t>& strides) {
    int64_t off = 0;
    for (int d = static_cast<int>(dims.size()) - 1; d >= 0; --d) {
      off += (flat % dims[d]) * strides[d];
      flat /= dims[d];
    }
    return off;
  };
  if (m >= 64 || per_output < 4096) {
    parallel_for(m, [&](int64_t o) {
      const int64_t base = offset_of(o, kept_dims, kept_x_strides);
      double acc = 0;
      for (int64_t r = 0; r < per_output; ++r) acc += x[base + offset_of(r, reduced_dims, reduced_x_strides)];
      y[o] = static_cast<T>(acc);
    }, std::max<int64_t>(1, 16384 / std::max<int64_t>(per_output, 1)));
    return;
  }
  // Few outputs, long reductions: split x into contiguous chunks per thread.
  std::vector<double> total(static_cast<size_t>(m), 0.0);
#pragma omp parallel
  {
    std::vector<double> local(static_cast<size_t>(m), 0.0);
    BroadcastIterator it(xs, {padded});
    bool started = false;
#pragma omp for schedule(static) nowait
    for (int64_t i = 0; i < n; ++i) {
      if (!started) {
        it.seek(i);
        started = true;
      }
      local[it.offset(0)] += x[i];
      it.next();
    }
#pragma omp critical
    for (int64_t o = 0; o < m; ++o) total[o] += local[o];
  }
  for (int64_t o = 0; o < m; ++o) y[o] = static_cast<T>(total[o]);
}

}  // namespace onnxtrain::ops
