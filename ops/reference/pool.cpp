#include "ops/reference/pool.h"

#include <algorithm>
#include <functional>

namespace onnxtrain::reference {
namespace {

// Calls f(nc, y_offset, input points of the window, padded point count) for every window.
void for_each_window(const Dims& xs, const PoolParams& p,
                     const std::function<void(int64_t, const std::vector<int64_t>&, int64_t)>& f) {
  const Dims ys = pool_output_shape(xs, p);
  const size_t nsp = p.kernel.size();
  const Dims in(xs.begin() + 2, xs.end()), out(ys.begin() + 2, ys.end());
  const int64_t isz = numel_of(in), osz = numel_of(out), ksz = numel_of(p.kernel);
  std::vector<int64_t> points;
  for (int64_t nc = 0; nc < xs[0] * xs[1]; ++nc)
    for (int64_t o = 0; o < osz; ++o) {
      const Dims oi = unravel(o, out);
      points.clear();
      int64_t padded = 0;
      for (int64_t kf = 0; kf < ksz; ++kf) {
        const Dims ki = unravel(kf, p.kernel);
        bool inside = true, in_padded = true;
        int64_t at = 0;
        for (size_t i = 0; i < nsp; ++i) {
          const int64_t d = p.dilations.empty() ? 1 : p.dilations[i];
          const int64_t pos = oi[i] * p.strides[i] - p.pads[i] + ki[i] * d;
          inside = inside && pos >= 0 && pos < in[i];
          in_padded = in_padded && pos < in[i] + p.pads[i + nsp];
          at = at * in[i] + pos;
        }
        padded += in_padded;
        if (inside) points.push_back(nc * isz + at);
      }
      f(nc * osz + o, points, padded);
    }
}

}  // namespace

Dims pool_output_shape(const Dims& x, const PoolParams& p) {
  Dims r{x[0], x[1]};
  const size_t nsp = p.kernel.size();
  for (size_t i = 0; i < nsp; ++i) {
    const int64_t d = p.dilations.empty() ? 1 : p.dilations[i], s = p.strides[i];
    const int64_t span = x[2 + i] + p.pads[i] + p.pads[i + nsp] - ((p.kernel[i] - 1) * d + 1);
    int64_t out = (p.ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (p.ceil_mode && (out - 1) * s >= x[2 + i] + p.pads[i]) --out;
    r.push_back(out);
  }
  return r;
}

Array pool(const Array& x, const PoolParams& p) {
  Array y(pool_output_shape(x.shape, p));
  for_each_window(x.shape, p, [&](int64_t yo, const std::vector<int64_t>& pts, int64_t padded) {
    if (p.max) {
      double m = -1e300;
      for (int64_t at : pts) m = std::max(m, x[at]);
      y[yo] = m;
    } else {
      double s = 0;
      for (int64_t at : pts) s += x[at];
      y[yo] = s / static_cast<double>(p.count_include_pad ? padded : static_cast<int64_t>(pts.size()));
    }
  });
  return y;
}

Array pool_backward(const Array& dy, const Array& x, const PoolParams& p) {
  Array dx(x.shape);
  for_each_window(x.shape, p, [&](int64_t yo, const std::vector<int64_t>& pts, int64_t padded) {
    if (pts.empty()) return;
    if (p.max) {
      int64_t best = pts[0];
      for (int64_t at : pts)
        if (x[at] > x[best]) best = at;
      dx[best] += dy[yo];
    } else {
      const double share = dy[yo] / static_cast<double>(p.count_include_pad ? padded : static_cast<int64_t>(pts.size()));
      for (int64_t at : pts) dx[at] += share;
    }
  });
  return dx;
}

}  // namespace onnxtrain::reference
