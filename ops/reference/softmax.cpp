#include "ops/reference/softmax.h"

#include <algorithm>
#include <cmath>
#include <functional>

namespace onnxtrain::reference {
namespace {

// Calls f(offset of the first element, stride along the axis, axis length) for every line
// along `axis`.
void for_each_line(const Dims& shape, int64_t axis, const std::function<void(int64_t, int64_t, int64_t)>& f) {
  if (axis < 0) axis += static_cast<int64_t>(shape.size());
  const int64_t len = shape[axis], stride = strides_of(shape)[axis];
  const int64_t outer = numel_of(shape) / (len * stride);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < stride; ++in) f(o * len * stride + in, stride, len);
}

}  // namespace

Array softmax(const Array& x, int64_t axis, bool log) {
  Array y(x.shape);
  for_each_line(x.shape, axis, [&](int64_t base, int64_t stride, int64_t len) {
    double m = -1e300, s = 0;
    for (int64_t i = 0; i < len; ++i) m = std::max(m, x[base + i * stride]);
    for (int64_t i = 0; i < len; ++i) s += std::exp(x[base + i * stride] - m);
    for (int64_t i = 0; i < len; ++i) {
      const double z = x[base + i * stride] - m;
      y[base + i * stride] = log ? z - std::log(s) : std::exp(z) / s;
    }
  });
  return y;
}

Array softmax_backward(const Array& dy, const Array& y, int64_t axis, bool log) {
  Array dx(y.shape);
  for_each_line(y.shape, axis, [&](int64_t base, int64_t stride, int64_t len) {
    double s = 0;
    for (int64_t i = 0; i < len; ++i) s += log ? dy[base + i * stride] : dy[base + i * stride] * y[base + i * stride];
    for (int64_t i = 0; i < len; ++i) {
      const int64_t at = base + i * stride;
      dx[at] = log ? dy[at] - std::exp(y[at]) * s : y[at] * (dy[at] - s);
    }
  });
  return dx;
}

}  // namespace onnxtrain::reference
