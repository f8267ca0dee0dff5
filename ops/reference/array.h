#pragma once
// The data type of the reference kernels: a dense row-major array of doubles. The
// references are deliberately independent of the library (no onnxtrain::Tensor, no code
// shared with ops/*.cpp), so a bug in shared code cannot hide in both sides of a comparison.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace onnxtrain::reference {

using Dims = std::vector<int64_t>;

struct Array {
  Dims shape;
  std::vector<double> data;

  Array() = default;
  explicit Array(Dims s, double fill = 0.0);
  Array(Dims s, std::vector<double> values);
  int64_t numel() const { return static_cast<int64_t>(data.size()); }
  int64_t rank() const { return static_cast<int64_t>(shape.size()); }
  double& operator[](int64_t i) { return data[static_cast<size_t>(i)]; }
  double operator[](int64_t i) const { return data[static_cast<size_t>(i)]; }
};

int64_t numel_of(const Dims& shape);
// Row-major element strides of `shape`.
Dims strides_of(const Dims& shape);
// Flat index -> multi-index of `shape`.
Dims unravel(int64_t flat, const Dims& shape);

}  // namespace onnxtrain::reference
