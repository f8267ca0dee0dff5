#include "ops/reference/array.h"

#include <stdexcept>
#include <utility>

namespace onnxtrain::reference {

int64_t numel_of(const Dims& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Array::Array(Dims s, double fill) : shape(std::move(s)), data(static_cast<size_t>(numel_of(shape)), fill) {}

Array::Array(Dims s, std::vector<double> values) : shape(std::move(s)), data(std::move(values)) {
  if (numel_of(shape) != numel()) throw std::invalid_argument("reference::Array: value count does not match the shape");
}

Dims strides_of(const Dims& shape) {
  Dims r(shape.size(), 1);
  for (int64_t i = static_cast<int64_t>(shape.size()) - 2; i >= 0; --i) r[i] = r[i + 1] * shape[i + 1];
  return r;
}

Dims unravel(int64_t flat, const Dims& shape) {
  Dims idx(shape.size());
  for (int64_t i = static_cast<int64_t>(shape.size()) - 1; i >= 0; --i) {
    idx[i] = shape[i] ? flat % shape[i] : 0;
    flat = shape[i] ? flat / shape[i] : 0;
  }
  return idx;
}

}  // namespace onnxtrain::reference
