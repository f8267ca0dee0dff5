#include "ops/reference/conv.h"

#include <functional>

namespace onnxtrain::reference {
namespace {

// One convolution's index relation: conv input `in` [N, C, D...], conv output `out`
// [N, M, O...], weights [M, C/group, K...]. ConvTranspose is the same relation with its
// input and output playing the conv's output and input.
struct Geometry {
  int64_t n, c, m, group;
  Dims in, out, k;
  const ConvParams* p;
};

// Calls f(x_offset, w_offset, y_offset) for every (input point, weight, output point)
// triple that contributes a product x * w to y.
void for_each_tap(const Geometry& g, const std::function<void(int64_t, int64_t, int64_t)>& f) {
  const size_t nsp = g.k.size();
  const int64_t cg = g.c / g.group, mg = g.m / g.group;
  const int64_t isz = numel_of(g.in), osz = numel_of(g.out), ksz = numel_of(g.k);
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t oc = 0; oc < g.m; ++oc)
      for (int64_t o = 0; o < osz; ++o) {
        const Dims oi = unravel(o, g.out);
        for (int64_t ic = 0; ic < cg; ++ic)
          for (int64_t kf = 0; kf < ksz; ++kf) {
            const Dims ki = unravel(kf, g.k);
            int64_t at = 0;
            bool inside = true;
            for (size_t i = 0; i < nsp; ++i) {
              const int64_t pos = oi[i] * g.p->strides[i] - g.p->pads[i] + ki[i] * g.p->dilations[i];
              inside = inside && pos >= 0 && pos < g.in[i];
              at = at * g.in[i] + pos;
            }
            if (!inside) continue;
            const int64_t xoff = (n * g.c + (oc / mg) * cg + ic) * isz + at;
            f(xoff, (oc * cg + ic) * ksz + kf, (n * g.m + oc) * osz + o);
          }
      }
}

Dims spatial(const Dims& s) { return Dims(s.begin() + 2, s.end()); }

Geometry conv_geometry(const Dims& x, const Dims& w, const ConvParams& p) {
  Geometry g{x[0], x[1], w[0], p.group, spatial(x), {}, spatial(w), &p};
  const size_t nsp = g.k.size();
  for (size_t i = 0; i < nsp; ++i)
    g.out.push_back((g.in[i] + p.pads[i] + p.pads[i + nsp] - (g.k[i] - 1) * p.dilations[i] - 1) / p.strides[i] + 1);
  return g;
}

// ConvTranspose X [N, C, D...] is the conv output; its Y [N, M, O...] the conv input.
Geometry transpose_geometry(const Dims& x, const Dims& w, const ConvParams& p) {
  Geometry g{x[0], w[1] * p.group, x[1], p.group, {}, spatial(x), spatial(w), &p};
  const size_t nsp = g.k.size();
  for (size_t i = 0; i < nsp; ++i) {
    const int64_t op = p.output_padding.empty() ? 0 : p.output_padding[i];
    g.in.push_back(p.strides[i] * (g.out[i] - 1) + op + (g.k[i] - 1) * p.dilations[i] + 1 - p.pads[i] - p.pads[i + nsp]);
  }
  return g;
}

Dims with_nc(int64_t n, int64_t c, const Dims& sp) {
  Dims r{n, c};
  r.insert(r.end(), sp.begin(), sp.end());
  return r;
}

void add_bias(Array& y, const Array* b) {
  if (!b) return;
  const int64_t c = y.shape[1], sz = numel_of(spatial(y.shape));
  for (int64_t i = 0; i < y.numel(); ++i) y[i] += (*b)[(i / sz) % c];
}

Array bias_grad(const Array& dy) {
  const int64_t c = dy.shape[1], sz = numel_of(spatial(dy.shape));
  Array db({c});
  for (int64_t i = 0; i < dy.numel(); ++i) db[(i / sz) % c] += dy[i];
  return db;
}

// y = x (*) w + b; `transposed`: x is the conv relation's output side, y its input side.
Array forward(const Geometry& g, const Array& x, const Array& w, const Array* b, bool transposed) {
  Array y(transposed ? with_nc(g.n, g.c, g.in) : with_nc(g.n, g.m, g.out));
  for_each_tap(g, [&](int64_t in_off, int64_t wo, int64_t out_off) {
    y[transposed ? in_off : out_off] += x[transposed ? out_off : in_off] * w[wo];
  });
  add_bias(y, b);
  return y;
}

// dX, dW, dB of y = x (*) w; `transposed`: x is the conv relation's output side.
ConvGrads backward(const Geometry& g, const Array& dy, const Array& x, const Array& w, bool transposed) {
  ConvGrads r{Array(x.shape), Array(w.shape), bias_grad(dy)};
  for_each_tap(g, [&](int64_t in_off, int64_t wo, int64_t out_off) {
    const int64_t xo = transposed ? out_off : in_off, yo = transposed ? in_off : out_off;
    r.dx[xo] += dy[yo] * w[wo];
    r.dw[wo] += dy[yo] * x[xo];
  });
  return r;
}

}  // namespace

Array conv(const Array& x, const Array& w, const Array* b, const ConvParams& p) {
  return forward(conv_geometry(x.shape, w.shape, p), x, w, b, false);
}

ConvGrads conv_backward(const Array& dy, const Array& x, const Array& w, const ConvParams& p) {
  return backward(conv_geometry(x.shape, w.shape, p), dy, x, w, false);
}

Array conv_transpose(const Array& x, const Array& w, const Array* b, const ConvParams& p) {
  return forward(transpose_geometry(x.shape, w.shape, p), x, w, b, true);
}

ConvGrads conv_transpose_backward(const Array& dy, const Array& x, const Array& w, const ConvParams& p) {
  return backward(transpose_geometry(x.shape, w.shape, p), dy, x, w, true);
}

}  // namespace onnxtrain::reference
