// GridSample (opset 16), with PyTorch's grid_sample semantics (the reference of the ONNX op),
// its GridSampleGrad kernel and gradient rule. Registered from register_resize_ops; shared
// helpers: resize_common.h.
#include "ops/resize_common.h"

namespace onnxtrain::ops {

namespace {

using namespace resize_impl;

enum class Padding { Zeros, Border, Reflection };

double reflect(double x, double twice_low, double twice_high) {
  if (twice_low == twice_high) return 0;
  const double lo = twice_low / 2, span = (twice_high - twice_low) / 2;
  x = std::fabs(x - lo);
  const double extra = std::fmod(x, span);
  const auto flips = static_cast<int64_t>(std::floor(x / span));
  return flips % 2 == 0 ? extra + lo : span - extra + lo;
}

struct GridSampler {
  Mode mode;
  Padding padding;
  bool align_corners;

  double unnormalize(double c, int64_t size) const {
    return align_corners ? (c + 1) / 2 * static_cast<double>(size - 1) : ((c + 1) * static_cast<double>(size) - 1) / 2;
  }
  // Border and reflection padding move the coordinate into the image.
  double pad(double x, int64_t size) const {
    if (padding == Padding::Zeros) return x;
    if (padding == Padding::Reflection) {
      const auto s = static_cast<double>(size);
      x = align_corners ? reflect(x, 0, 2 * (s - 1)) : reflect(x, -1, 2 * s - 1);
    }
    return std::clamp(x, 0.0, static_cast<double>(size - 1));
  }
  // A finite, bounded integer index (out-of-range values only need to stay out of range).
  static int64_t to_index(double v, int64_t size) {
    return static_cast<int64_t>(std::clamp(v, -4.0, static_cast<double>(size) + 4.0));
  }

  template <typename T>
  T sample(const T* plane, int64_t h, int64_t w, double gx, double gy) const {
    auto at = [&](int64_t iy, int64_t ix) -> double {
      return iy >= 0 && iy < h && ix >= 0 && ix < w ? static_cast<double>(plane[iy * w + ix]) : 0.0;
    };
    if (!std::isfinite(gx) || !std::isfinite(gy)) return T(0);
    double x = unnormalize(gx, w), y = unnormalize(gy, h);
    if (mode == Mode::Cubic) {
      // Taps are padded one by one (padding the coordinate first would shift the stencil).
      auto tap = [&](double iy, double ix) { return at(to_index(pad(iy, h), h), to_index(pad(ix, w), w)); };
      const double fx = std::floor(x), fy = std::floor(y), tx = x - fx, ty = y - fy;
      auto coeffs = [](double t, double c[4]) {
        const double A = -0.75;
        auto near = [A](double d) { return ((A + 2) * d - (A + 3)) * d * d + 1; };
        auto far = [A](double d) { return ((A * d - 5 * A) * d + 8 * A) * d - 4 * A; };
        c[0] = far(t + 1), c[1] = near(t), c[2] = near(1 - t), c[3] = far(2 - t);
      };
      double cx[4], cy[4];
      coeffs(tx, cx);
      coeffs(ty, cy);
      double acc = 0;
      for (int i = 0; i < 4; ++i) {
        double row = 0;
        for (int k = 0; k < 4; ++k) row += cx[k] * tap(fy - 1 + i, fx - 1 + k);
        acc += cy[i] * row;
      }
      return static_cast<T>(acc);
    }
    x = pad(x, w), y = pad(y, h);
    if (mode == Mode::Nearest)
      return static_cast<T>(at(to_index(std::nearbyint(y), h), to_index(std::nearbyint(x), w)));
    const double fx = std::floor(x), fy = std::floor(y), tx = x - fx, ty = y - fy;
    const int64_t x0 = to_index(fx, w), y0 = to_index(fy, h);
    return static_cast<T>((1 - ty) * ((1 - tx) * at(y0, x0) + tx * at(y0, x0 + 1)) +
                          ty * ((1 - tx) * at(y0 + 1, x0) + tx * at(y0 + 1, x0 + 1)));
  }
};

// The taps one output point reads, with their weights and the weights' derivatives with
// respect to the grid coordinates (gx, gy): output = sum_k weight[k] * plane[index[k]]
// (index -1: outside the image, reads zero). Mirrors GridSampler::sample; the coordinate
// transforms (unnormalize, border clamp, reflection) are piecewise linear, so their
// derivatives are 0 or +-1 times the unnormalization factor.
struct GridTaps {
  int count = 0;
  int64_t index[16];
  double weight[16], dgx[16], dgy[16];
};

double reflect_grad(double x, double twice_low, double twice_high, double* grad) {
  if (twice_low == twice_high) {
    *grad = 0;
    return 0;
  }
  const double lo = twice_low / 2, span = (twice_high - twice_low) / 2;
  const double sign = x - lo < 0 ? -1.0 : 1.0;
  x = std::fabs(x - lo);
  const double extra = std::fmod(x, span);
  const auto flips = static_cast<int64_t>(std::floor(x / span));
  *grad = flips % 2 == 0 ? sign : -sign;
  return flips % 2 == 0 ? extra + lo : span - extra + lo;
}

GridTaps grid_taps(const GridSampler& s, int64_t h, int64_t w, double gx, double gy) {
  GridTaps t;
  if (!std::isfinite(gx) || !std::isfinite(gy)) return t;
  auto unnorm_scale = [&](int64_t size) {
    return s.align_corners ? static_cast<double>(size - 1) / 2 : static_cast<double>(size) / 2;
  };
  // pad() with its derivative.
  auto pad = [&](double x, int64_t size, double* grad) {
    *grad = 1;
    if (s.padding == Padding::Zeros) return x;
    if (s.padding == Padding::Reflection) {
      const auto sz = static_cast<double>(size);
      x = s.align_corners ? reflect_grad(x, 0, 2 * (sz - 1), grad) : reflect_grad(x, -1, 2 * sz - 1, grad);
    }
    if (x <= 0 || x >= static_cast<double>(size - 1)) *grad = 0;
    return std::clamp(x, 0.0, static_cast<double>(size - 1));
  };
  auto flat = [&](int64_t iy, int64_t ix) -> int64_t { return iy >= 0 && iy < h && ix >= 0 && ix < w ? iy * w + ix : -1; };
  auto add = [&](int64_t index, double weight, double dx, double dy) {
    t.index[t.count] = index, t.weight[t.count] = weight, t.dgx[t.count] = dx, t.dgy[t.count] = dy;
    ++t.count;
  };
  double x = s.unnormalize(gx, w), y = s.unnormalize(gy, h);
  const double sx = unnorm_scale(w), sy = unnorm_scale(h);
  if (s.mode == Mode::Cubic) {
    const double fx = std::floor(x), fy = std::floor(y), tx = x - fx, ty = y - fy;
    const double A = -0.75;
    auto near = [A](double d) { return ((A + 2) * d - (A + 3)) * d * d + 1; };
    auto far = [A](double d) { return ((A * d - 5 * A) * d + 8 * A) * d - 4 * A; };
    auto dnear = [A](double d) { return (3 * (A + 2) * d - 2 * (A + 3)) * d; };
    auto dfar = [A](double d) { return (3 * A * d - 10 * A) * d + 8 * A; };
    const double cx[4] = {far(tx + 1), near(tx), near(1 - tx), far(2 - tx)};
    const double cy[4] = {far(ty + 1), near(ty), near(1 - ty), far(2 - ty)};
    const double dcx[4] = {dfar(tx + 1), dnear(tx), -dnear(1 - tx), -dfar(2 - tx)};
    const double dcy[4] = {dfar(ty + 1), dnear(ty), -dnear(1 - ty), -dfar(2 - ty)};
    double unused;
    for (int i = 0; i < 4; ++i)
      for (int k = 0; k < 4; ++k) {
        const int64_t iy = GridSampler::to_index(pad(fy - 1 + i, h, &unused), h);
        const int64_t ix = GridSampler::to_index(pad(fx - 1 + k, w, &unused), w);
        add(flat(iy, ix), cy[i] * cx[k], cy[i] * dcx[k] * sx, dcy[i] * cx[k] * sy);
      }
    return t;
  }
  double px, py;
  x = pad(x, w, &px), y = pad(y, h, &py);
  if (s.mode == Mode::Nearest) {
    add(flat(GridSampler::to_index(std::nearbyint(y), h), GridSampler::to_index(std::nearbyint(x), w)), 1, 0, 0);
    return t;
  }
  const double fx = std::floor(x), fy = std::floor(y), tx = x - fx, ty = y - fy;
  const int64_t x0 = GridSampler::to_index(fx, w), y0 = GridSampler::to_index(fy, h);
  const double kx = px * sx, ky = py * sy;
  add(flat(y0, x0), (1 - tx) * (1 - ty), -(1 - ty) * kx, -(1 - tx) * ky);
  add(flat(y0, x0 + 1), tx * (1 - ty), (1 - ty) * kx, -tx * ky);
  add(flat(y0 + 1, x0), (1 - tx) * ty, -ty * kx, (1 - tx) * ky);
  add(flat(y0 + 1, x0 + 1), tx * ty, ty * kx, tx * ky);
  return t;
}

GridSampler parse_grid_sampler(const Node& node) {
  GridSampler s;
  s.mode = parse_enum<Mode>(node, "mode", "bilinear",
                            {{"bilinear", Mode::Linear}, {"nearest", Mode::Nearest}, {"bicubic", Mode::Cubic}});
  s.padding = parse_enum<Padding>(
      node, "padding_mode", "zeros",
      {{"zeros", Padding::Zeros}, {"border", Padding::Border}, {"reflection", Padding::Reflection}});
  s.align_corners = node.attr_int("align_corners", 0) != 0;
  return s;
}

// ai.onnxtrain.GridSampleGrad(dY, X, grid) -> (dX, dGrid) with GridSample's attributes.
// dX scatters dY through the tap weights (parallel over (n, c) planes, each owning its
// plane of dX); dGrid sums dY * d(output)/d(grid) over the channels (parallel over points).
// Nearest sampling is piecewise constant in the grid: dGrid is zero there.
std::unique_ptr<Kernel> make_grid_sample_grad(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() < 3 || !in[0].present || !in[1].present || !in[2].present)
    fail(node, "requires inputs dY, X and grid");
  const Shape &xs = in[1].shape, &gs = in[2].shape;
  if (xs.size() != 4 || gs.size() != 4 || gs[0] != xs[0] || gs[3] != 2)
    fail_shape(node, "expects X (N, C, H, W) and grid (N, H_out, W_out, 2), got " + shape_str(xs) + " and " +
                         shape_str(gs));
  if (in[0].shape != Shape{xs[0], xs[1], gs[1], gs[2]}) fail_shape(node, "dY has shape " + shape_str(in[0].shape));
  dispatch_float(in[1].dtype, node, [](auto) {});
  if (in[0].dtype != in[1].dtype || in[2].dtype != in[1].dtype) fail(node, "dY, X and grid must have one type");
  const GridSampler s = parse_grid_sampler(node);
  return make_function_kernel([s](KernelContext& ctx) {
    const Tensor& dy = ctx.input(0);
    const Tensor& x = ctx.input(1);
    const Tensor& grid = ctx.input(2);
    const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
    const int64_t points = grid.dim(1) * grid.dim(2);
    Tensor& dx = ctx.output(0, x.dtype(), x.shape());
    Tensor& dgrid = ctx.output(1, grid.dtype(), grid.shape());
    dispatch_float(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const T* xp = x.data<T>();
      const T* gp = grid.data<T>();
      const T* dyp = dy.data<T>();
      T* dxp = dx.data<T>();
      T* dgp = dgrid.data<T>();
      const int64_t plane = h * w;
      parallel_for(
          n * c,
          [&](int64_t bc) {
            const int64_t b = bc / c;
            std::vector<double> acc(static_cast<size_t>(plane), 0.0);
            const T* g = dyp + bc * points;
            for (int64_t p = 0; p < points; ++p) {
              const GridTaps t = grid_taps(s, h, w, gp[(b * points + p) * 2], gp[(b * points + p) * 2 + 1]);
              for (int k = 0; k < t.count; ++k)
                if (t.index[k] >= 0) acc[t.index[k]] += t.weight[k] * g[p];
            }
            for (int64_t i = 0; i < plane; ++i) dxp[bc * plane + i] = static_cast<T>(acc[i]);
          },
          std::max<int64_t>(1, 4096 / std::max<int64_t>(1, points)));
      parallel_for(
          n * points,
          [&](int64_t np) {
            const int64_t b = np / points, p = np % points;
            const GridTaps t = grid_taps(s, h, w, gp[np * 2], gp[np * 2 + 1]);
            double ax = 0, ay = 0;
            for (int64_t ch = 0; ch < c; ++ch) {
              const T* img = xp + (b * c + ch) * plane;
              double vx = 0, vy = 0;
              for (int k = 0; k < t.count; ++k)
                if (t.index[k] >= 0) {
                  vx += t.dgx[k] * img[t.index[k]];
                  vy += t.dgy[k] * img[t.index[k]];
                }
              const double g = dyp[(b * c + ch) * points + p];
              ax += g * vx, ay += g * vy;
            }
            dgp[np * 2] = static_cast<T>(ax);
            dgp[np * 2 + 1] = static_cast<T>(ay);
          },
          std::max<int64_t>(1, 4096 / std::max<int64_t>(1, c)));
    });
  });
}

void grid_sample_gradient(GradientBuilder& b) {
  auto outs = b.op_n("GridSampleGrad", {b.GO(0), b.I(0), b.I(1)}, 2, b.node().attributes, graph::kTrainingDomain);
  for (size_t i = 0; i < 2; ++i)
    if (b.needs_grad(i)) b.GI(i, outs[i]);
}

std::unique_ptr<Kernel> make_grid_sample(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() < 2 || !in[0].present || !in[1].present) fail(node, "requires inputs X and grid");
  const Shape &xs = in[0].shape, &gs = in[1].shape;
  if (xs.size() != 4) fail_shape(node, "X must be 4-D (N, C, H, W), got " + shape_str(xs));
  if (gs.size() != 4 || gs[0] != xs[0] || gs[3] != 2)
    fail_shape(node, "grid must be (N, H_out, W_out, 2) with N = " + std::to_string(xs[0]) + ", got " + shape_str(gs));
  dispatch_float(in[0].dtype, node, [](auto) {});
  if (in[1].dtype != in[0].dtype) fail(node, "grid must have X's element type");
  const GridSampler s = parse_grid_sampler(node);
  return make_function_kernel([s](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    const Tensor& grid = ctx.input(1);
    const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
    const int64_t ho = grid.dim(1), wo = grid.dim(2);
    Tensor& y = ctx.output(0, x.dtype(), {n, c, ho, wo});
    if (y.numel() == 0) return;
    dispatch_float(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const T* xp = x.data<T>();
      const T* gp = grid.data<T>();
      T* yp = y.data<T>();
      const int64_t points = ho * wo;
      parallel_for(
          n * points,
          [&](int64_t np) {
            const int64_t b = np / points, p = np % points;
            const double gx = gp[np * 2], gy = gp[np * 2 + 1];
            for (int64_t ch = 0; ch < c; ++ch)
              yp[(b * c + ch) * points + p] = s.sample(xp + (b * c + ch) * h * w, h, w, gx, gy);
          },
          std::max<int64_t>(1, 4096 / std::max<int64_t>(1, c)));
    });
  });
}

}  // namespace

void register_grid_sample_ops(Registry& r) {
  r.add({"", "GridSample", 16, INT_MAX, make_grid_sample, "own", grid_sample_gradient});
  r.add({graph::kTrainingDomain, "GridSampleGrad", 1, INT_MAX, make_grid_sample_grad, "own"});
}

}  // namespace onnxtrain::ops
