// GroupNormalization (opsets 18 and 21), its backward kernel and gradient rule. X is
// [N, C, spatial...]; each of the num_groups groups of C / num_groups channels is
// normalized over its channels and spatial positions, then scaled and shifted: per group
// at opset 18 (scale, bias [G]), per channel at opset 21 (scale, bias [C]).
#include <cmath>
#include <vector>

#include "ops/gradient.h"
#include "ops/normalization_common.h"

namespace onnxtrain::ops {

namespace group_norm_impl {

struct Geometry {
  int64_t n = 0, c = 0, groups = 0, spatial = 1;
  double epsilon = 1e-5;
  bool per_channel = false;  // opset 21: scale/bias per channel
  int64_t channels_per_group() const { return c / groups; }
  int64_t group_size() const { return channels_per_group() * spatial; }
  // Scale/bias index of channel ch.
  int64_t param(int64_t ch) const { return per_channel ? ch : ch / channels_per_group(); }
};

Geometry geometry(const Node& node, const Shape& x, const Shape& scale, const Shape& bias) {
  if (x.size() < 2) fail_shape(node, "X must be [N, C, ...], got " + shape_str(x));
  Geometry g;
  g.n = x[0], g.c = x[1];
  for (size_t i = 2; i < x.size(); ++i) g.spatial *= x[i];
  g.groups = node.attr_int("num_groups", 0);
  g.epsilon = node.attr_float("epsilon", 1e-5f);
  g.per_channel = node.attr_int("per_channel", node.opset >= 21 ? 1 : 0) != 0;
  if (g.groups <= 0 || g.c % g.groups != 0)
    fail(node, "num_groups " + std::to_string(g.groups) + " does not divide the " + std::to_string(g.c) + " channels");
  const int64_t params = g.per_channel ? g.c : g.groups;
  for (const Shape* s : {&scale, &bias})
    if (s->size() != 1 || (*s)[0] != params)
      fail_shape(node, std::string("scale and bias must be [") + (g.per_channel ? "C" : "num_groups") + "] = [" +
                           std::to_string(params) + "], got " + shape_str(*s));
  return g;
}

// Mean and 1/sqrt(var + eps) of group (b, grp), accumulated in double.
template <typename T>
std::pair<double, double> group_stats(const T* x, const Geometry& g) {
  const int64_t m = g.group_size();
  double sum = 0;
  for (int64_t i = 0; i < m; ++i) sum += static_cast<double>(x[i]);
  const double mean = m ? sum / static_cast<double>(m) : 0;
  double sq = 0;
  for (int64_t i = 0; i < m; ++i) {
    const double d = static_cast<double>(x[i]) - mean;
    sq += d * d;
  }
  return {mean, 1.0 / std::sqrt((m ? sq / static_cast<double>(m) : 0) + g.epsilon)};
}

std::unique_ptr<Kernel> make_group_norm(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() < 3 || !in[0].present || !in[1].present || !in[2].present) fail(node, "requires X, scale and bias");
  dispatch_float(in[0].dtype, node, [](auto) {});
  const Geometry g = geometry(node, in[0].shape, in[1].shape, in[2].shape);
  return make_function_kernel([g](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, x.dtype(), x.shape());
    dispatch_float(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const T *xp = x.data<T>(), *scale = ctx.input(1).data<T>(), *bias = ctx.input(2).data<T>();
      T* yp = y.data<T>();
      parallel_for(g.n * g.groups, [&](int64_t ng) {
        const int64_t offset = ng * g.group_size(), first_channel = (ng % g.groups) * g.channels_per_group();
        const auto [mean, rstd] = group_stats(xp + offset, g);
        for (int64_t k = 0; k < g.channels_per_group(); ++k) {
          const int64_t p = g.param(first_channel + k);
          const double a = rstd * static_cast<double>(scale[p]), b = static_cast<double>(bias[p]) - mean * a;
          const T* xr = xp + offset + k * g.spatial;
          T* yr = yp + offset + k * g.spatial;
          for (int64_t s = 0; s < g.spatial; ++s) yr[s] = static_cast<T>(a * static_cast<double>(xr[s]) + b);
        }
      }, 1);
    });
  });
}

// GroupNormalizationGrad(dY, X, scale) -> dX, dscale, dbias; the statistics are recomputed
// from X (one pass over the group, cheaper than keeping them).
std::unique_ptr<Kernel> make_group_norm_grad(const Node& node, const std::vector<InputInfo>& in) {
  dispatch_float(in[1].dtype, node, [](auto) {});
  const Geometry g = geometry(node, in[1].shape, in[2].shape, in[2].shape);
  return make_function_kernel([g](KernelContext& ctx) {
    const Tensor& dy = ctx.input(0);
    const Tensor& x = ctx.input(1);
    const Tensor& scale = ctx.input(2);
    dispatch_float(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const T *dyp = dy.data<T>(), *xp = x.data<T>(), *sp = scale.data<T>();
      T* dxp = ctx.wants_output(0) ? ctx.output(0, x.dtype(), x.shape()).data<T>() : nullptr;
      const int64_t params = scale.numel();
      // Per (sample, group): the parameter gradients' partial sums, reduced over samples below.
      std::vector<double> dscale_part(static_cast<size_t>(g.n * params), 0.0), dbias_part(dscale_part.size(), 0.0);
      parallel_for(g.n * g.groups, [&](int64_t ng) {
        const int64_t b = ng / g.groups, offset = ng * g.group_size(), first_channel = (ng % g.groups) * g.channels_per_group();
        const auto [mean, rstd] = group_stats(xp + offset, g);
        double sum_dxhat = 0, sum_dxhat_xhat = 0;
        for (int64_t k = 0; k < g.channels_per_group(); ++k) {
          const int64_t p = g.param(first_channel + k);
          const double gamma = static_cast<double>(sp[p]);
          double ds = 0, db = 0;
          for (int64_t s = 0; s < g.spatial; ++s) {
            const int64_t i = offset + k * g.spatial + s;
            const double xhat = (static_cast<double>(xp[i]) - mean) * rstd, d = static_cast<double>(dyp[i]);
            ds += d * xhat;
            db += d;
            sum_dxhat += d * gamma;
            sum_dxhat_xhat += d * gamma * xhat;
          }
          dscale_part[b * params + p] += ds;
          dbias_part[b * params + p] += db;
        }
        if (!dxp) return;
        const double m = static_cast<double>(g.group_size());
        for (int64_t k = 0; k < g.channels_per_group(); ++k) {
          const double gamma = static_cast<double>(sp[g.param(first_channel + k)]);
          for (int64_t s = 0; s < g.spatial; ++s) {
            const int64_t i = offset + k * g.spatial + s;
            const double xhat = (static_cast<double>(xp[i]) - mean) * rstd;
            const double dxhat = static_cast<double>(dyp[i]) * gamma;
            dxp[i] = static_cast<T>(rstd * (dxhat - sum_dxhat / m - xhat * sum_dxhat_xhat / m));
          }
        }
      }, 1);
      for (size_t out = 1; out < 3; ++out) {
        if (!ctx.wants_output(out)) continue;
        const std::vector<double>& part = out == 1 ? dscale_part : dbias_part;
        T* o = ctx.output(out, x.dtype(), scale.shape()).data<T>();
        for (int64_t p = 0; p < params; ++p) {
          double total = 0;
          for (int64_t b = 0; b < g.n; ++b) total += part[b * params + p];
          o[p] = static_cast<T>(total);
        }
      }
    });
  });
}

void group_norm_gradient(GradientBuilder& b) {
  const Node& n = b.node();
  const Attributes attrs{{"num_groups", n.attr_int("num_groups", 0)},
                         {"epsilon", n.attr_float("epsilon", 1e-5f)},
                         {"per_channel", int64_t{n.opset >= 21 ? 1 : 0}}};
  const auto outs = b.op_masked("GroupNormalizationGrad", {b.GO(0), b.I(0), b.I(1)},
                                {b.needs_grad(0), b.needs_grad(1), b.needs_grad(2)}, attrs);
  for (size_t i = 0; i < 3; ++i)
    if (b.needs_grad(i)) b.GI(i, outs[i]);
}

}  // namespace group_norm_impl

void register_group_norm_ops(Registry& r) {
  using namespace group_norm_impl;
  r.add({"", "GroupNormalization", 18, INT_MAX, make_group_norm, "own", group_norm_gradient});
  r.add({graph::kTrainingDomain, "GroupNormalizationGrad", 1, INT_MAX, make_group_norm_grad, "own"});
}

}  // namespace onnxtrain::ops
