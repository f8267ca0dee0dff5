// MaxUnpool and RoiAlign (own loops), with their MaxUnpoolGrad and RoiAlignGrad kernels and
// gradient rules. Registered from register_pool_ops; shared helpers: pool_common.h.
#include "ops/pool_common.h"

namespace onnxtrain::ops {

namespace {

using namespace pool_impl;

// MaxUnpool: zeros everywhere except at the recorded indices (flat over the whole output).
std::unique_ptr<Kernel> make_max_unpool(const Node& node, const std::vector<InputInfo>& in) {
  const Shape& x = in[0].shape;
  if (in[1].shape != x) fail_shape(node, "indices " + shape_str(in[1].shape) + " must have the shape of X " + shape_str(x));
  if (in[1].dtype != DType::Int64) fail(node, "indices must be int64");
  const PoolGeometry g = [&] {
    // The default output is the input of the MaxPool this inverts: in = (out-1)*s + k - pads.
    PoolGeometry pg = pool_geometry(node, x, false);
    for (int i = kMaxSpatial - pg.nsp; i < kMaxSpatial; ++i) {
      pg.out[i] = (pg.in[i] - 1) * pg.s[i] + pg.k[i] - pg.pb[i] - pg.pe[i];
      if (pg.out[i] < 0) fail_shape(node, "pads are larger than the unpooled output");
    }
    return pg;
  }();
  const bool has_shape = in.size() > 2 && in[2].present;
  return make_function_kernel([g, has_shape](KernelContext& ctx) {
    const Tensor& xt = ctx.input(0);
    Shape y_shape = g.out_shape();
    if (has_shape) {
      y_shape = int_values(ctx.input(2));
      if (y_shape.size() != xt.rank() || y_shape[0] != xt.dim(0) || y_shape[1] != xt.dim(1))
        fail_shape(ctx.node(), "output_shape " + shape_str(y_shape) + " does not fit input " + shape_str(xt.shape()));
      for (int64_t d : y_shape)
        if (d < 0) fail_shape(ctx.node(), "output_shape " + shape_str(y_shape) + " has a negative dim");
    }
    Tensor& y = ctx.output(0, xt.dtype(), y_shape);
    // Indices address the unpooled tensor of the default shape; a larger output_shape pads
    // that tensor with zeros at the end of each dim, so indices are re-based per coordinate.
    const Shape base = g.out_shape();
    const Shape base_strides = strides_of(base), y_strides = strides_of(y_shape);
    const int64_t base_total = shape_numel(base);
    const int64_t* idx = ctx.input(1).data<int64_t>();
    dispatch_float(xt.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const T* src = xt.data<T>();
      T* dst = y.data<T>();
      std::fill_n(dst, y.numel(), T(0));
      for (int64_t i = 0; i < xt.numel(); ++i) {
        int64_t rest = idx[i], at = 0;
        bool ok = rest >= 0 && rest < base_total;
        for (size_t d = 0; d < base.size() && ok; ++d) {
          const int64_t coord = rest / base_strides[d];
          rest %= base_strides[d];
          ok = coord < y_shape[d];
          at += coord * y_strides[d];
        }
        if (!ok)
          fail(ctx.node(), "index " + std::to_string(idx[i]) + " is out of range for unpooled shape " + shape_str(base) +
                               " / output " + shape_str(y_shape));
        dst[at] = src[i];
      }
    });
  });
}

// RoiAlign (bilinear sampling on a regular grid in each bin, as in Mask R-CNN / onnxruntime).
struct RoiAlignParams {
  bool max_mode = false, half_pixel = false;
  int64_t out_h = 1, out_w = 1, sampling = 0;
  double scale = 1.0;
};

// One sampling point: four bilinear corners (flat positions in the H x W plane) and weights.
struct RoiSample {
  int64_t pos[4];
  double weight[4];
};

// The sampling points of one ROI, bin by bin (per_bin each), and the avg divisor.
struct RoiSamples {
  std::vector<RoiSample> samples;
  int64_t per_bin = 0;
  double count = 1;
};

template <typename T>
RoiSamples roi_samples(const RoiAlignParams& p, const T* roi, int64_t h, int64_t w) {
  const double offset = p.half_pixel ? 0.5 : 0.0;
  const double x0 = roi[0] * p.scale - offset, y0 = roi[1] * p.scale - offset;
  double rw = roi[2] * p.scale - offset - x0, rh = roi[3] * p.scale - offset - y0;
  if (!p.half_pixel) {
    rw = std::max(rw, 1.0);
    rh = std::max(rh, 1.0);
  }
  const double bin_h = rh / static_cast<double>(p.out_h), bin_w = rw / static_cast<double>(p.out_w);
  const int64_t grid_h = p.sampling > 0 ? p.sampling : static_cast<int64_t>(std::ceil(rh / static_cast<double>(p.out_h)));
  const int64_t grid_w = p.sampling > 0 ? p.sampling : static_cast<int64_t>(std::ceil(rw / static_cast<double>(p.out_w)));
  RoiSamples out;
  out.count = static_cast<double>(std::max<int64_t>(grid_h * grid_w, 1));
  out.per_bin = std::max<int64_t>(grid_h * grid_w, 0);
  out.samples.reserve(static_cast<size_t>(out.per_bin * p.out_h * p.out_w));
  for (int64_t ph = 0; ph < p.out_h; ++ph)
    for (int64_t pw = 0; pw < p.out_w; ++pw)
      for (int64_t iy = 0; iy < grid_h; ++iy)
        for (int64_t ix = 0; ix < grid_w; ++ix) {
          double yy = y0 + ph * bin_h + (iy + 0.5) * bin_h / static_cast<double>(grid_h);
          double xx = x0 + pw * bin_w + (ix + 0.5) * bin_w / static_cast<double>(grid_w);
          RoiSample s{{0, 0, 0, 0}, {0, 0, 0, 0}};
          // Written so that NaN coordinates also take the empty sample.
          if (yy >= -1.0 && yy <= static_cast<double>(h) && xx >= -1.0 && xx <= static_cast<double>(w)) {
            yy = std::max(yy, 0.0);
            xx = std::max(xx, 0.0);
            int64_t yl = static_cast<int64_t>(yy), xl = static_cast<int64_t>(xx), yh, xh;
            if (yl >= h - 1) yh = yl = h - 1, yy = static_cast<double>(yl);
            else yh = yl + 1;
            if (xl >= w - 1) xh = xl = w - 1, xx = static_cast<double>(xl);
            else xh = xl + 1;
            const double ly = yy - yl, lx = xx - xl, hy = 1 - ly, hx = 1 - lx;
            s = {{yl * w + xl, yl * w + xh, yh * w + xl, yh * w + xh}, {hy * hx, hy * lx, ly * hx, ly * lx}};
          }
          out.samples.push_back(s);
        }
  return out;
}

template <typename T>
void roi_align(const RoiAlignParams& p, const Tensor& x, const T* rois, const int64_t* batch, int64_t num_rois, T* y,
               const Node& node) {
  const int64_t n = x.dim(0), channels = x.dim(1), h = x.dim(2), w = x.dim(3);
  const T* data = x.data<T>();
  for (int64_t r = 0; r < num_rois; ++r)
    if (batch[r] < 0 || batch[r] >= n)
      fail(node, "batch index " + std::to_string(batch[r]) + " is out of range for " + std::to_string(n) + " images");
  parallel_for(num_rois, [&](int64_t r) {
    const RoiSamples rs = roi_samples(p, rois + r * 4, h, w);
    const int64_t per_bin = rs.per_bin;
    for (int64_t c = 0; c < channels; ++c) {
      const T* plane = data + (batch[r] * channels + c) * h * w;
      T* out = y + (r * channels + c) * p.out_h * p.out_w;
      for (int64_t b = 0; b < p.out_h * p.out_w; ++b) {
        double acc = 0;
        for (int64_t i = 0; i < per_bin; ++i) {
          const RoiSample& s = rs.samples[static_cast<size_t>(b * per_bin + i)];
          if (p.max_mode) {
            // onnxruntime's (and the ONNX reference's) max mode: the largest weighted corner.
            double v = s.weight[0] * plane[s.pos[0]];
            for (int q = 1; q < 4; ++q) v = std::max(v, s.weight[q] * plane[s.pos[q]]);
            acc = i == 0 ? v : std::max(acc, v);
          } else {
            for (int q = 0; q < 4; ++q) acc += s.weight[q] * plane[s.pos[q]];
          }
        }
        out[b] = static_cast<T>(p.max_mode ? acc : acc / rs.count);
      }
    }
  }, 1);
}

RoiAlignParams roi_align_params(const Node& node) {
  RoiAlignParams p;
  const std::string mode = node.attr_string("mode", "avg");
  if (mode != "avg" && mode != "max") fail(node, "mode must be 'avg' or 'max', got '" + mode + "'");
  p.max_mode = mode == "max";
  const std::string ctm = node.attr_string("coordinate_transformation_mode", node.opset < 16 ? "output_half_pixel" : "half_pixel");
  if (ctm != "half_pixel" && ctm != "output_half_pixel") fail(node, "unknown coordinate_transformation_mode '" + ctm + "'");
  p.half_pixel = ctm == "half_pixel";
  p.out_h = node.attr_int("output_height", 1);
  p.out_w = node.attr_int("output_width", 1);
  p.sampling = node.attr_int("sampling_ratio", 0);
  p.scale = node.attr_float("spatial_scale", 1.f);
  if (p.out_h < 1 || p.out_w < 1 || p.sampling < 0) fail(node, "output sizes must be positive and sampling_ratio >= 0");
  return p;
}

std::unique_ptr<Kernel> make_roi_align(const Node& node, const std::vector<InputInfo>& in) {
  const Shape& x = in[0].shape;
  if (x.size() != 4) fail_shape(node, "X must be [N, C, H, W], got " + shape_str(x));
  if (in[1].shape.size() != 2 || in[1].shape[1] != 4) fail_shape(node, "rois must be [num_rois, 4], got " + shape_str(in[1].shape));
  if (in[2].shape != Shape{in[1].shape[0]})
    fail_shape(node, "batch_indices " + shape_str(in[2].shape) + " must be [num_rois]");
  if (in[1].dtype != in[0].dtype || in[2].dtype != DType::Int64) fail(node, "rois must have X's type, batch_indices int64");
  if (x[2] == 0 || x[3] == 0) fail_shape(node, "X has an empty spatial dimension");
  const RoiAlignParams p = roi_align_params(node);
  const Shape y{in[1].shape[0], x[1], p.out_h, p.out_w};
  return make_function_kernel([p, y](KernelContext& ctx) {
    const Tensor& xt = ctx.input(0);
    Tensor& out = ctx.output(0, xt.dtype(), y);
    dispatch_float(xt.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      roi_align<T>(p, xt, ctx.input(1).data<T>(), ctx.input(2).data<int64_t>(), y[0], out.data<T>(), ctx.node());
    });
  });
}

// MaxUnpoolGrad (dY, I) -> dX: dX[i] = dY at the position X[i] was written to, for the element
// that the forward's in-order scatter left there (later duplicates overwrite earlier ones).
std::unique_ptr<Kernel> make_max_unpool_grad(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() < 2 || in[1].dtype != DType::Int64) fail(node, "needs inputs dY and the int64 indices");
  PoolGeometry g = pool_geometry(node, in[1].shape, false);
  for (int i = kMaxSpatial - g.nsp; i < kMaxSpatial; ++i)
    g.out[i] = (g.in[i] - 1) * g.s[i] + g.k[i] - g.pb[i] - g.pe[i];
  const Shape x_shape = in[1].shape;
  return make_function_kernel([g, x_shape](KernelContext& ctx) {
    const Tensor& dy = ctx.input(0);
    const Shape& y_shape = dy.shape();
    const Shape base = g.out_shape();
    if (y_shape.size() != base.size()) fail_shape(ctx.node(), "dY " + shape_str(y_shape) + " has the wrong rank");
    const Shape base_strides = strides_of(base), y_strides = strides_of(y_shape);
    const int64_t base_total = shape_numel(base), total = shape_numel(x_shape);
    const int64_t* idx = ctx.input(1).data<int64_t>();
    Tensor& dx = ctx.output(0, dy.dtype(), x_shape);
    std::vector<bool> taken(static_cast<size_t>(dy.numel()), false);
    dispatch_float(dy.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const T* src = dy.data<T>();
      T* dst = dx.data<T>();
      for (int64_t i = total - 1; i >= 0; --i) {  // the last writer wins
        int64_t rest = idx[i], at = 0;
        bool ok = rest >= 0 && rest < base_total;
        for (size_t d = 0; d < base.size() && ok; ++d) {
          const int64_t coord = rest / base_strides[d];
          rest %= base_strides[d];
          ok = coord < y_shape[d];
          at += coord * y_strides[d];
        }
        if (!ok) fail(ctx.node(), "index " + std::to_string(idx[i]) + " is out of range");
        dst[i] = taken[static_cast<size_t>(at)] ? T(0) : src[at];
        taken[static_cast<size_t>(at)] = true;
      }
    });
  });
}

// RoiAlignGrad (dY, X, rois, batch_indices) -> dX: each bin's gradient flows back through
// the bilinear weights of its samples (avg: all of them / count; max: the selected corner).
// Parallel over channels, since ROIs may overlap.
template <typename T>
void roi_align_grad(const RoiAlignParams& p, const Shape& xs, const T* x, const T* rois, const int64_t* batch,
                    int64_t num_rois, const T* dy, T* dx, const Node& node) {
  const int64_t n = xs[0], channels = xs[1], h = xs[2], w = xs[3];
  for (int64_t r = 0; r < num_rois; ++r)
    if (batch[r] < 0 || batch[r] >= n)
      fail(node, "batch index " + std::to_string(batch[r]) + " is out of range for " + std::to_string(n) + " images");
  std::vector<RoiSamples> all(static_cast<size_t>(num_rois));
  parallel_for(num_rois, [&](int64_t r) { all[static_cast<size_t>(r)] = roi_samples(p, rois + r * 4, h, w); }, 1);
  std::fill_n(dx, shape_numel(xs), T(0));
  const int64_t bins = p.out_h * p.out_w;
  parallel_for(channels, [&](int64_t c) {
    for (int64_t r = 0; r < num_rois; ++r) {
      const RoiSamples& rs = all[static_cast<size_t>(r)];
      const int64_t plane_at = (batch[r] * channels + c) * h * w;
      const T* plane = x + plane_at;
      T* dplane = dx + plane_at;
      const T* g = dy + (r * channels + c) * bins;
      for (int64_t b = 0; b < bins; ++b) {
        const double gb = static_cast<double>(g[b]);
        if (p.max_mode) {
          int64_t best_i = 0, best_q = 0;
          double best = 0;
          for (int64_t i = 0; i < rs.per_bin; ++i) {
            const RoiSample& s = rs.samples[static_cast<size_t>(b * rs.per_bin + i)];
            for (int q = 0; q < 4; ++q) {
              const double v = s.weight[q] * plane[s.pos[q]];
              if ((i == 0 && q == 0) || v > best) best = v, best_i = i, best_q = q;
            }
          }
          if (rs.per_bin > 0) {
            const RoiSample& s = rs.samples[static_cast<size_t>(b * rs.per_bin + best_i)];
            dplane[s.pos[best_q]] += static_cast<T>(gb * s.weight[best_q]);
          }
        } else {
          const double scale = gb / rs.count;
          for (int64_t i = 0; i < rs.per_bin; ++i) {
            const RoiSample& s = rs.samples[static_cast<size_t>(b * rs.per_bin + i)];
            for (int q = 0; q < 4; ++q) dplane[s.pos[q]] += static_cast<T>(scale * s.weight[q]);
          }
        }
      }
    }
  }, 1);
}

std::unique_ptr<Kernel> make_roi_align_grad(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() < 4) fail(node, "needs inputs dY, X, rois and batch_indices");
  const RoiAlignParams p = roi_align_params(node);
  const Shape x = in[1].shape;
  return make_function_kernel([p, x](KernelContext& ctx) {
    const Tensor& dy = ctx.input(0);
    Tensor& dx = ctx.output(0, dy.dtype(), x);
    dispatch_float(dy.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      roi_align_grad<T>(p, x, ctx.input(1).data<T>(), ctx.input(2).data<T>(), ctx.input(3).data<int64_t>(),
                        ctx.input(2).dim(0), dy.data<T>(), dx.data<T>(), ctx.node());
    });
  });
}

void max_unpool_gradient(GradientBuilder& b) { pool_grad_rule(b, "MaxUnpoolGrad", {b.I(1)}); }
void roi_align_gradient(GradientBuilder& b) {
  // The default coordinate_transformation_mode depends on the forward's opset: spell it out.
  const RoiAlignParams p = roi_align_params(b.node());
  Attributes attrs = b.node().attributes;
  attrs["coordinate_transformation_mode"] = std::string(p.half_pixel ? "half_pixel" : "output_half_pixel");
  b.GI(0, b.train_op("RoiAlignGrad", {b.GO(0), b.I(0), b.I(1), b.I(2)}, attrs));
}

}  // namespace

void register_unpool_roi_align_ops(Registry& r) {
  const char* t = graph::kTrainingDomain;
  r.add({"", "MaxUnpool", 9, INT_MAX, make_max_unpool, "own", max_unpool_gradient, {1, 2}});
  r.add({"", "RoiAlign", 10, INT_MAX, make_roi_align, "own", roi_align_gradient, {1, 2}});
  r.add({t, "MaxUnpoolGrad", 1, INT_MAX, make_max_unpool_grad, "own"});
  r.add({t, "RoiAlignGrad", 1, INT_MAX, make_roi_align_grad, "own"});
}

}  // namespace onnxtrain::ops
