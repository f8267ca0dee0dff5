// LRN and MeanVarianceNormalization, forward and backward, and their gradient rules.
// Shared helpers: normalization_common.h.
#include <algorithm>
#include <cmath>
#include <variant>

#include "ops/gradient.h"
#include "ops/normalization_common.h"

namespace onnxtrain::ops {

namespace norm_impl {

// ---------------------------------------------------------------------------------------
// LRN: square_sum over channels [c - floor((size-1)/2), c + ceil((size-1)/2)],
// y = x / (bias + alpha / size * square_sum)^beta. oneDNN's across-channels window is
// symmetric (size-1)/2 on both sides, which equals ONNX's window only for odd sizes.
class LrnKernel final : public Kernel {
 public:
  LrnKernel(const Node& node, const std::vector<InputInfo>& in) {
    const Shape& xs = in.at(0).shape;
    dispatch_float(in[0].dtype, node, [](auto) {});
    if (xs.size() < 2) fail_shape(node, "input must have rank >= 2 (N x C x ...), got " + shape_str(xs));
    if (!node.has_attr("size")) fail(node, "requires the 'size' attribute");
    size_ = node.attr_int("size");
    if (size_ < 1) fail(node, "size must be >= 1, got " + std::to_string(size_));
    alpha_ = node.attr_float("alpha", 1e-4f);
    beta_ = node.attr_float("beta", 0.75f);
    bias_ = node.attr_float("bias", 1.0f);
    if (in[0].dtype == DType::Float && size_ % 2 == 1 && xs.size() >= 3 && xs.size() <= 5 && shape_numel(xs) > 0) {
      md_ = plain_desc(xs, DType::Float);
      // Inference propagation: training would also need a workspace (kept for the backward pass).
      dnnl::lrn_forward::desc d(prop_kind::forward_inference, dnnl::algorithm::lrn_across_channels, md_, size_, alpha_,
                                beta_, bias_);
      pd_ = dnnl::lrn_forward::primitive_desc(d, arena_scratchpad(), cpu_engine());
      primitive_ = dnnl::lrn_forward(pd_);
      use_dnnl_ = true;
    }
  }

  void run(KernelContext& ctx) override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, x.dtype(), x.shape());
    if (x.numel() == 0) return;
    if (use_dnnl_) return execute(primitive_, {{DNNL_ARG_SRC, bind(md_, x)}, {DNNL_ARG_DST, bind(md_, y)}});
    dispatch_float(x.dtype(), ctx.node(), [&](auto tag) { run_own<decltype(tag)>(x, y); });
  }

 private:
  template <typename T>
  void run_own(const Tensor& xt, Tensor& yt) const {
    const T* x = xt.data<T>();
    T* y = yt.data<T>();
    const int64_t n = xt.dim(0), c = xt.dim(1), s = xt.numel() / (n * c);
    const int64_t lo = (size_ - 1) / 2, hi = size_ - 1 - lo;
    const double coef = static_cast<double>(alpha_) / static_cast<double>(size_);
    parallel_for(
        n * c,
        [&](int64_t nc) {
          const int64_t ci = nc % c, plane = nc - ci;
          const int64_t first = std::max<int64_t>(0, ci - lo), last = std::min(c - 1, ci + hi);
          std::vector<double> acc(static_cast<size_t>(s), 0.0);
          for (int64_t k = first; k <= last; ++k) {
            const T* p = x + (plane + k) * s;
            for (int64_t i = 0; i < s; ++i) acc[i] += static_cast<double>(p[i]) * p[i];
          }
          const T* p = x + nc * s;
          T* q = y + nc * s;
          for (int64_t i = 0; i < s; ++i) q[i] = static_cast<T>(p[i] / std::pow(bias_ + coef * acc[i], beta_));
        },
        std::max<int64_t>(1, 4096 / std::max<int64_t>(1, s * size_)));
  }

  int64_t size_ = 1;
  float alpha_ = 1e-4f, beta_ = 0.75f, bias_ = 1.0f;
  bool use_dnnl_ = false;
  dnnl::memory::desc md_;
  dnnl::lrn_forward::primitive_desc pd_;
  dnnl::lrn_forward primitive_;
};

// ---------------------------------------------------------------------------------------
// MeanVarianceNormalization: (X - E[X]) / (sqrt(E[X^2] - E[X]^2) + 1e-9) over `axes`, as
// in its ONNX function body (the variance is computed in the centred form).
std::unique_ptr<Kernel> make_mvn(const Node& node, const std::vector<InputInfo>& in) {
  const Shape& xs = in.at(0).shape;
  dispatch_float(in[0].dtype, node, [](auto) {});
  const auto rank = static_cast<int64_t>(xs.size());
  std::vector<int64_t> axes = normalize_axes(node.attr_ints("axes", {0, 2, 3}), rank, node);
  std::vector<bool> reduced(xs.size(), false);
  for (int64_t a : axes) reduced[a] = true;
  GroupLayout layout = make_layout(xs, reduced);
  return make_function_kernel([layout](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, x.dtype(), x.shape());
    if (x.numel() == 0) return;
    dispatch_float(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      std::vector<double> a(layout.groups), b(layout.groups);
      group_moments(x.data<T>(), layout, a.data(), b.data());
      for (int64_t k = 0; k < layout.groups; ++k) {
        const double mean = a[k];
        a[k] = 1.0 / (std::sqrt(b[k]) + 1e-9);
        b[k] = -mean * a[k];
      }
      group_affine(x.data<T>(), y.data<T>(), layout, a.data(), b.data());
    });
  });
}

// =======================================================================================
// Backward kernels (ai.onnxtrain) and gradient rules.

// ai.onnxtrain.LRNGrad(dY, X) -> dX with LRN's attributes. With d_i = bias + alpha/size *
// sum_{k in W(i)} x_k^2 and y_i = x_i d_i^-beta:
// dx_j = dy_j d_j^-beta - 2 beta alpha/size x_j sum_{i: j in W(i)} dy_i x_i d_i^(-beta-1).
// float32 with odd sizes on oneDNN's lrn_backward, the rest on the own loop.
class LrnGradKernel final : public Kernel {
 public:
  LrnGradKernel(const Node& node, const std::vector<InputInfo>& in) {
    require_inputs(node, in, 2, "dY and X");
    check_same(node, in, 0, 1, "dY and X must match");
    const Shape& xs = in[1].shape;
    dispatch_float(in[1].dtype, node, [](auto) {});
    if (xs.size() < 2) fail_shape(node, "X must have rank >= 2, got " + shape_str(xs));
    size_ = node.attr_int("size");
    if (size_ < 1) fail(node, "size must be >= 1");
    alpha_ = node.attr_float("alpha", 1e-4f);
    beta_ = node.attr_float("beta", 0.75f);
    bias_ = node.attr_float("bias", 1.0f);
    if (in[1].dtype == DType::Float && size_ % 2 == 1 && xs.size() >= 3 && xs.size() <= 5 && shape_numel(xs) > 0) {
      md_ = plain_desc(xs, DType::Float);
      dnnl::lrn_forward::desc fd(prop_kind::forward_training, dnnl::algorithm::lrn_across_channels, md_, size_, alpha_,
                                 beta_, bias_);
      fwd_pd_ = dnnl::lrn_forward::primitive_desc(fd, arena_scratchpad(), cpu_engine());
      dnnl::lrn_backward::desc bd(dnnl::algorithm::lrn_across_channels, md_, md_, size_, alpha_, beta_, bias_);
      pd_ = dnnl::lrn_backward::primitive_desc(bd, arena_scratchpad(), cpu_engine(), fwd_pd_);
      primitive_ = dnnl::lrn_backward(pd_);
      ws_md_ = fwd_pd_.workspace_desc();
      if (ws_md_.get_size() > 0) forward_ = dnnl::lrn_forward(fwd_pd_);
      use_dnnl_ = true;
    }
  }

  void run(KernelContext& ctx) override {
    const Tensor& dy = ctx.input(0);
    const Tensor& x = ctx.input(1);
    Tensor& dx = ctx.output(0, x.dtype(), x.shape());
    if (x.numel() == 0) return;
    if (use_dnnl_) {
      ExecArgs args{
          {DNNL_ARG_SRC, bind(md_, x)}, {DNNL_ARG_DIFF_DST, bind(md_, dy)}, {DNNL_ARG_DIFF_SRC, bind(md_, dx)}};
      if (ws_md_.get_size() > 0) {
        // The workspace comes from a training-mode forward pass (the graph's forward runs
        // in inference propagation, which has none).
        dnnl::memory ws(ws_md_, cpu_engine());
        Tensor y(DType::Float, x.shape());
        execute(forward_, {{DNNL_ARG_SRC, bind(md_, x)}, {DNNL_ARG_DST, bind(md_, y)}, {DNNL_ARG_WORKSPACE, ws}});
        args[DNNL_ARG_WORKSPACE] = ws;
        execute(primitive_, args);
      } else {
        execute(primitive_, args);
      }
      return;
    }
    dispatch_float(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      run_own<T>(x.data<T>(), dy.data<T>(), dx.data<T>(), x.shape());
    });
  }

 private:
  template <typename T>
  void run_own(const T* x, const T* dy, T* dx, const Shape& shape) const {
    const int64_t n = shape[0], c = shape[1], s = shape_numel(shape) / std::max<int64_t>(1, n * c);
    const int64_t lo = (size_ - 1) / 2, hi = size_ - 1 - lo;
    const double coef = static_cast<double>(alpha_) / static_cast<double>(size_);
    const auto total = static_cast<size_t>(n * c * s);
    std::vector<double> scale(total), t(total);  // d^-beta and dy x d^(-beta-1)
    const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, s * size_));
    parallel_for(
        n * c,
        [&](int64_t nc) {
          const int64_t ci = nc % c, plane = nc - ci;
          const int64_t first = std::max<int64_t>(0, ci - lo), last = std::min(c - 1, ci + hi);
          double* sc = scale.data() + nc * s;
          double* tt = t.data() + nc * s;
          std::fill_n(sc, s, 0.0);
          for (int64_t k = first; k <= last; ++k) {
            const T* p = x + (plane + k) * s;
            for (int64_t i = 0; i < s; ++i) sc[i] += static_cast<double>(p[i]) * p[i];
          }
          for (int64_t i = 0; i < s; ++i) {
            const double d = bias_ + coef * sc[i];
            sc[i] = std::pow(d, -static_cast<double>(beta_));
            tt[i] = static_cast<double>(dy[nc * s + i]) * x[nc * s + i] * sc[i] / d;
          }
        },
        grain);
    parallel_for(
        n * c,
        [&](int64_t nc) {
          const int64_t cj = nc % c, plane = nc - cj;
          // Channels i whose window contains j: i - lo <= j <= i + hi.
          const int64_t first = std::max<int64_t>(0, cj - hi), last = std::min(c - 1, cj + lo);
          std::vector<double> acc(static_cast<size_t>(s), 0.0);
          for (int64_t k = first; k <= last; ++k) {
            const double* tt = t.data() + (plane + k) * s;
            for (int64_t i = 0; i < s; ++i) acc[i] += tt[i];
          }
          const double* sc = scale.data() + nc * s;
          for (int64_t i = 0; i < s; ++i) {
            const int64_t at = nc * s + i;
            dx[at] = static_cast<T>(dy[at] * sc[i] - 2.0 * beta_ * coef * x[at] * acc[i]);
          }
        },
        grain);
  }

  int64_t size_ = 1;
  float alpha_ = 1e-4f, beta_ = 0.75f, bias_ = 1.0f;
  bool use_dnnl_ = false;
  dnnl::memory::desc md_, ws_md_;
  dnnl::lrn_forward::primitive_desc fwd_pd_;
  dnnl::lrn_forward forward_;
  dnnl::lrn_backward::primitive_desc pd_;
  dnnl::lrn_backward primitive_;
};

void lrn_gradient(GradientBuilder& b) {
  const Node& node = b.node();
  Attributes attrs;
  for (const char* a : {"size", "alpha", "beta", "bias"})
    if (auto it = node.attributes.find(a); it != node.attributes.end()) attrs[a] = it->second;
  b.GI(0, b.train_op("LRNGrad", {b.GO(0), b.I(0)}, attrs));
}

// ai.onnxtrain.MeanVarianceNormalizationGrad(dY, X) -> dX, attribute axes. Per group, with
// xc = x - mean, s = sqrt(mean(xc^2)) and D = s + 1e-9 (y = xc / D):
// dx = (dy - mean(dy)) / D - xc * sum(dy * xc) / (n * D^2 * s).
std::unique_ptr<Kernel> make_mvn_grad(const Node& node, const std::vector<InputInfo>& in) {
  require_inputs(node, in, 2, "dY and X");
  check_same(node, in, 0, 1, "dY and X must match");
  const Shape& xs = in[1].shape;
  dispatch_float(in[1].dtype, node, [](auto) {});
  const auto rank = static_cast<int64_t>(xs.size());
  std::vector<int64_t> axes = normalize_axes(node.attr_ints("axes", {0, 2, 3}), rank, node);
  std::vector<bool> reduced(xs.size(), false);
  for (int64_t a : axes) reduced[a] = true;
  GroupLayout layout = make_layout(xs, reduced);
  return make_function_kernel([layout](KernelContext& ctx) {
    const Tensor& dy = ctx.input(0);
    const Tensor& x = ctx.input(1);
    Tensor& dx = ctx.output(0, x.dtype(), x.shape());
    if (x.numel() == 0) return;
    dispatch_float(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const T* xp = x.data<T>();
      const T* gp = dy.data<T>();
      T* out = dx.data<T>();
      const double n = static_cast<double>(layout.group_size());
      parallel_for(
          layout.groups,
          [&](int64_t k) {
            const int64_t base = layout.group_offset[k];
            double s = 0;
            for (int64_t r : layout.run_offset)
              for (int64_t i = 0; i < layout.inner; ++i) s += xp[base + r + i];
            const double m = s / n;
            double q = 0, sg = 0, sgx = 0;
            for (int64_t r : layout.run_offset)
              for (int64_t i = 0; i < layout.inner; ++i) {
                const double xc = xp[base + r + i] - m, g = gp[base + r + i];
                q += xc * xc;
                sg += g;
                sgx += g * xc;
              }
            const double sd = std::sqrt(q / n), d = sd + 1e-9;
            const double c1 = sg / n, c2 = sd > 0 ? sgx / (n * d * d * sd) : 0.0;
            for (int64_t r : layout.run_offset)
              for (int64_t i = 0; i < layout.inner; ++i) {
                const int64_t at = base + r + i;
                out[at] = static_cast<T>((gp[at] - c1) / d - (xp[at] - m) * c2);
              }
          },
          group_grain(layout));
    });
  });
}

void mvn_gradient(GradientBuilder& b) {
  Attributes attrs;
  if (auto it = b.node().attributes.find("axes"); it != b.node().attributes.end()) attrs["axes"] = it->second;
  b.GI(0, b.train_op("MeanVarianceNormalizationGrad", {b.GO(0), b.I(0)}, attrs));
}

}  // namespace norm_impl

void register_lrn_mvn_ops(Registry& r) {
  using namespace norm_impl;
  const char* t = graph::kTrainingDomain;
  r.add({"", "LRN", 1, INT_MAX, factory<LrnKernel>(), "oneDNN lrn", lrn_gradient});
  r.add({"", "MeanVarianceNormalization", 9, INT_MAX, make_mvn, "own", mvn_gradient});
  r.add({t, "LRNGrad", 1, INT_MAX, factory<LrnGradKernel>(), "oneDNN lrn"});
  r.add({t, "MeanVarianceNormalizationGrad", 1, INT_MAX, make_mvn_grad, "own"});
}

}  // namespace onnxtrain::ops
