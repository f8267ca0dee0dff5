// Own direct (transposed) convolution loops, forward and backward: they serve double and the
// geometries oneDNN rejects. Kernels and gradient rules are in conv.cpp; shared: conv_common.h.
#include "ops/conv_common.h"

namespace onnxtrain::ops {

namespace conv_impl {

// Direct convolution, y[n, oc, o] = b[oc] + sum x[n, ic, o * s - pb + k * d] * w[oc, ic, k].
template <typename T>
void conv_loop(const Geometry& g, const T* x, const T* w, const T* b, T* y) {
  const int64_t cg = g.c / g.group, mg = g.m / g.group, isz = g.in_size(), osz = g.out_size(), ksz = g.k_size();
  parallel_for(g.n * g.m, [&](int64_t nm) {
    const int64_t nn = nm / g.m, oc = nm % g.m, grp = oc / mg;
    T* yo = y + nm * osz;
    for (int64_t o0 = 0; o0 < g.out[0]; ++o0)
      for (int64_t o1 = 0; o1 < g.out[1]; ++o1)
        for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
          T acc = b ? b[oc] : T(0);
          for (int64_t ic = 0; ic < cg; ++ic) {
            const T* xi = x + (nn * g.c + grp * cg + ic) * isz;
            const T* wi = w + (oc * cg + ic) * ksz;
            for (int64_t k0 = 0; k0 < g.k[0]; ++k0) {
              const int64_t i0 = o0 * g.s[0] - g.pb[0] + k0 * g.d[0];
              if (i0 < 0 || i0 >= g.in[0]) continue;
              for (int64_t k1 = 0; k1 < g.k[1]; ++k1) {
                const int64_t i1 = o1 * g.s[1] - g.pb[1] + k1 * g.d[1];
                if (i1 < 0 || i1 >= g.in[1]) continue;
                for (int64_t k2 = 0; k2 < g.k[2]; ++k2) {
                  const int64_t i2 = o2 * g.s[2] - g.pb[2] + k2 * g.d[2];
                  if (i2 < 0 || i2 >= g.in[2]) continue;
                  acc += xi[(i0 * g.in[1] + i1) * g.in[2] + i2] * wi[(k0 * g.k[1] + k1) * g.k[2] + k2];
                }
              }
            }
          }
          yo[(o0 * g.out[1] + o1) * g.out[2] + o2] = acc;
        }
  }, 1);
}

// Transposed convolution in gather form (so output elements are independent):
// y[n, oc, o] = b[oc] + sum over i * s = o + pb - k * d of x[n, ic, i] * w[ic, oc, k].
template <typename T>
void conv_transpose_loop(const Geometry& g, const T* x, const T* w, const T* b, T* y) {
  const int64_t cg = g.c / g.group, mg = g.m / g.group, isz = g.in_size(), osz = g.out_size(), ksz = g.k_size();
  auto source = [&](int dim, int64_t o, int64_t k, int64_t& i) {
    const int64_t t = o + g.pb[dim] - k * g.d[dim];
    if (t < 0 || t % g.s[dim] != 0) return false;
    i = t / g.s[dim];
    return i < g.in[dim];
  };
  parallel_for(g.n * g.m, [&](int64_t nm) {
    const int64_t nn = nm / g.m, oc = nm % g.m, grp = oc / mg, ocg = oc % mg;
    T* yo = y + nm * osz;
    for (int64_t o0 = 0; o0 < g.out[0]; ++o0)
      for (int64_t o1 = 0; o1 < g.out[1]; ++o1)
        for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
          T acc = b ? b[oc] : T(0);
          for (int64_t ic = 0; ic < cg; ++ic) {
            const int64_t cin = grp * cg + ic;
            const T* xi = x + (nn * g.c + cin) * isz;
            const T* wi = w + (cin * mg + ocg) * ksz;
            int64_t i0, i1, i2;
            for (int64_t k0 = 0; k0 < g.k[0]; ++k0) {
              if (!source(0, o0, k0, i0)) continue;
              for (int64_t k1 = 0; k1 < g.k[1]; ++k1) {
                if (!source(1, o1, k1, i1)) continue;
                for (int64_t k2 = 0; k2 < g.k[2]; ++k2) {
                  if (!source(2, o2, k2, i2)) continue;
                  acc += xi[(i0 * g.in[1] + i1) * g.in[2] + i2] * wi[(k0 * g.k[1] + k1) * g.k[2] + k2];
                }
              }
            }
          }
          yo[(o0 * g.out[1] + o1) * g.out[2] + o2] = acc;
        }
  }, 1);
}

template <bool Transposed>
std::unique_ptr<Kernel> own_kernel(const Geometry& g, bool has_bias) {
  return make_function_kernel([g, has_bias](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, x.dtype(), g.out_shape());
    dispatch_float(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const T* b = has_bias ? ctx.input(2).data<T>() : nullptr;
      if constexpr (Transposed)
        conv_transpose_loop<T>(g, x.data<T>(), ctx.input(1).data<T>(), b, y.data<T>());
      else
        conv_loop<T>(g, x.data<T>(), ctx.input(1).data<T>(), b, y.data<T>());
    });
  });
}

// The own loops reuse the forward loops: with the geometry's input and output swapped
// (swapped()), the data gradient of a convolution is a transposed convolution with the same
// weights and vice versa, and ConvTranspose's weight gradient is Conv's with X and dY swapped.

Geometry swapped(const Geometry& g) {
  Geometry r = g;
  std::swap(r.c, r.m);
  std::swap(r.in, r.out);
  return r;
}

// dW[oc, icg, k] = sum over n, o of dY[n, oc, o] * X[n, group(oc) * C/G + icg, o * s - pb + k * d].
template <typename T>
void conv_weights_grad_loop(const Geometry& g, const T* dy, const T* x, T* dw) {
  const int64_t cg = g.c / g.group, mg = g.m / g.group, isz = g.in_size(), osz = g.out_size();
  parallel_for(g.m * cg, [&](int64_t idx) {
    const int64_t oc = idx / cg, icg = idx % cg, grp = oc / mg;
    T* out = dw + idx * g.k_size();
    for (int64_t k0 = 0; k0 < g.k[0]; ++k0)
      for (int64_t k1 = 0; k1 < g.k[1]; ++k1)
        for (int64_t k2 = 0; k2 < g.k[2]; ++k2) {
          double acc = 0;
          for (int64_t nn = 0; nn < g.n; ++nn) {
            const T* dyo = dy + (nn * g.m + oc) * osz;
            const T* xi = x + (nn * g.c + grp * cg + icg) * isz;
            for (int64_t o0 = 0; o0 < g.out[0]; ++o0) {
              const int64_t i0 = o0 * g.s[0] - g.pb[0] + k0 * g.d[0];
              if (i0 < 0 || i0 >= g.in[0]) continue;
              for (int64_t o1 = 0; o1 < g.out[1]; ++o1) {
                const int64_t i1 = o1 * g.s[1] - g.pb[1] + k1 * g.d[1];
                if (i1 < 0 || i1 >= g.in[1]) continue;
                const T* drow = dyo + (o0 * g.out[1] + o1) * g.out[2];
                const T* xrow = xi + (i0 * g.in[1] + i1) * g.in[2];
                for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
                  const int64_t i2 = o2 * g.s[2] - g.pb[2] + k2 * g.d[2];
                  if (i2 < 0 || i2 >= g.in[2]) continue;
                  acc += static_cast<double>(drow[o2]) * static_cast<double>(xrow[i2]);
                }
              }
            }
          }
          out[(k0 * g.k[1] + k1) * g.k[2] + k2] = static_cast<T>(acc);
        }
  }, 1);
}

// dB[c] = sum of dY[n, c, ...] over the batch and the spatial dims.
template <typename T>
void bias_grad_loop(int64_t n, int64_t channels, int64_t spatial, const T* dy, T* db) {
  parallel_for(channels, [&](int64_t c) {
    double acc = 0;
    for (int64_t nn = 0; nn < n; ++nn) {
      const T* row = dy + (nn * channels + c) * spatial;
#pragma omp simd reduction(+ : acc)
      for (int64_t i = 0; i < spatial; ++i) acc += row[i];
    }
    db[c] = static_cast<T>(acc);
  }, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n * spatial)));
}


template <bool Transposed>
std::unique_ptr<Kernel> own_grad_kernel(const Geometry& g, const Shape& w_shape, GradOutputs want) {
  return make_function_kernel([g, w_shape, want](KernelContext& ctx) {
    const Tensor& dy = ctx.input(0);
    const Tensor& x = ctx.input(1);
    const Tensor& w = ctx.input(2);
    dispatch_float(dy.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      if (want.dx) {
        T* dx = ctx.output(0, dy.dtype(), x.shape()).template data<T>();
        if constexpr (Transposed)
          conv_loop<T>(swapped(g), dy.data<T>(), w.data<T>(), nullptr, dx);
        else
          conv_transpose_loop<T>(swapped(g), dy.data<T>(), w.data<T>(), nullptr, dx);
      }
      if (want.dw) {
        T* dw = ctx.output(1, dy.dtype(), w_shape).template data<T>();
        if constexpr (Transposed)
          conv_weights_grad_loop<T>(swapped(g), x.data<T>(), dy.data<T>(), dw);
        else
          conv_weights_grad_loop<T>(g, dy.data<T>(), x.data<T>(), dw);
      }
      if (want.db)
        bias_grad_loop<T>(g.n, g.m, g.out_size(), dy.data<T>(), ctx.output(2, dy.dtype(), {g.m}).template data<T>());
    });
  });
}

template std::unique_ptr<Kernel> own_kernel<false>(const Geometry& g, bool has_bias);
template std::unique_ptr<Kernel> own_kernel<true>(const Geometry& g, bool has_bias);
template std::unique_ptr<Kernel> own_grad_kernel<false>(const Geometry& g, const Shape& w_shape, GradOutputs want);
template std::unique_ptr<Kernel> own_grad_kernel<true>(const Geometry& g, const Shape& w_shape, GradOutputs want);
template void bias_grad_loop<float>(int64_t n, int64_t channels, int64_t spatial, const float* dy, float* db);

}  // namespace conv_impl

}  // namespace onnxtrain::ops
