// LayerNormalization, forward and backward, and its gradient rule. Shared helpers:
// normalization_common.h.
#include <algorithm>
#include <cmath>
#include <variant>

#include "ops/gradient.h"
#include "ops/normalization_common.h"

namespace onnxtrain::ops {

namespace norm_impl {

// ---------------------------------------------------------------------------------------
// LayerNormalization (opset 17): X viewed as [outer, inner] with inner = prod(X[axis:]).
// Scale and B broadcast to X[axis:]; they are expanded to `inner` values when smaller.
// Mean/InvStdDev have X's shape with the normalised dims set to 1, in the stash type.
class LayerNormKernel final : public Kernel {
 public:
  LayerNormKernel(const Node& node, const std::vector<InputInfo>& in) {
    if (in.size() < 2 || !in[0].present || !in[1].present) fail(node, "requires inputs X and Scale");
    const Shape& xs = in[0].shape;
    dispatch_float(in[0].dtype, node, [](auto) {});
    const auto rank = static_cast<int64_t>(xs.size());
    if (rank == 0) fail_shape(node, "input X must have rank >= 1");
    const int64_t axis = normalize_axis(node.attr_int("axis", -1), rank, node);
    epsilon_ = node.attr_float("epsilon", 1e-5f);
    const int64_t stash = node.attr_int("stash_type", 1);
    if (stash != static_cast<int64_t>(DType::Float) && stash != static_cast<int64_t>(DType::Double))
      fail(node, "stash_type " + std::to_string(stash) + " is not supported (float or double)");
    stash_ = static_cast<DType>(stash);
    norm_shape_ = Shape(xs.begin() + axis, xs.end());
    outer_ = shape_numel(Shape(xs.begin(), xs.begin() + axis));
    inner_ = shape_numel(norm_shape_);
    stat_shape_ = xs;
    for (int64_t i = axis; i < rank; ++i) stat_shape_[i] = 1;
    has_bias_ = in.size() > 2 && in[2].present;
    for (int i = 1; i < (has_bias_ ? 3 : 2); ++i) {
      if (in[i].dtype != in[0].dtype) fail(node, "Scale and B must have X's element type");
      Shape ps = in[i].shape;
      while (ps.size() > norm_shape_.size() && ps.front() == 1) ps.erase(ps.begin());
      bool ok = ps.size() <= norm_shape_.size();
      for (size_t d = 0; ok && d < ps.size(); ++d) {
        int64_t want = norm_shape_[norm_shape_.size() - ps.size() + d];
        ok = ps[d] == want || ps[d] == 1;
      }
      if (!ok)
        fail_shape(node, "input " + std::to_string(i) + " of shape " + shape_str(in[i].shape) +
                             " does not broadcast to the normalized shape " + shape_str(norm_shape_));
      param_shape_[i - 1] = ps;
      if (in[0].dtype == DType::Double) param_buf_[i - 1] = std::vector<double>();
    }
    if (in[0].dtype == DType::Float && stash_ == DType::Float && outer_ > 0 && inner_ > 0) {
      md_ = plain_desc({outer_, inner_}, DType::Float);
      auto flags = normalization_flags::use_scale;
      if (has_bias_) flags = flags | normalization_flags::use_shift;
      training_ = node.has_output(1) || node.has_output(2);
      dnnl::layer_normalization_forward::desc d(training_ ? prop_kind::forward_training : prop_kind::forward_inference,
                                                md_, epsilon_, flags);
      pd_ = dnnl::layer_normalization_forward::primitive_desc(d, arena_scratchpad(), cpu_engine());
      primitive_ = dnnl::layer_normalization_forward(pd_);
      use_dnnl_ = true;
    }
  }

  void run(KernelContext& ctx) override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, x.dtype(), x.shape());
    const bool want_mean = ctx.wants_output(1), want_inv = ctx.wants_output(2);
    Tensor* mean = want_mean ? &ctx.output(1, stash_, stat_shape_) : nullptr;
    Tensor* inv = want_inv ? &ctx.output(2, stash_, stat_shape_) : nullptr;
    if (x.numel() == 0) return;
    dispatch_float(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const T* scale = expanded<T>(ctx.input(1), 0);
      const T* bias = has_bias_ ? expanded<T>(ctx.input(2), 1) : nullptr;
      if constexpr (std::is_same_v<T, float>) {
        if (use_dnnl_) return run_dnnl(x, y, scale, bias, mean, inv);
      }
      dispatch_float(stash_, ctx.node(), [&](auto stag) {
        using U = decltype(stag);
        run_own<T, U>(x.data<T>(), y.data<T>(), scale, bias, mean ? mean->data<U>() : nullptr,
                      inv ? inv->data<U>() : nullptr);
      });
    });
  }

 private:
  // The parameter as `inner_` contiguous values (broadcast when it is smaller).
  template <typename T>
  const T* expanded(const Tensor& p, int which) {
    if (p.numel() == inner_) return p.data<T>();
    std::vector<T>& buf = std::get<std::vector<T>>(param_buf_[which]);
    buf.resize(static_cast<size_t>(inner_));
    T* out = buf.data();
    const T* src = p.data<T>();
    BroadcastIterator it(norm_shape_, {param_shape_[which]});
    for (int64_t i = 0; i < inner_; ++i, it.next()) out[i] = src[it.offset(0)];
    return out;
  }

  void run_dnnl(const Tensor& x, Tensor& y, const float* scale, const float* bias, Tensor* mean, Tensor* inv) {
    auto pvec = f32_vector(inner_), svec = f32_vector(outer_);
    mean_buf_.resize(static_cast<size_t>(outer_));
    var_buf_.resize(static_cast<size_t>(outer_));
    ExecArgs args{
        {DNNL_ARG_SRC, bind(md_, x)}, {DNNL_ARG_DST, bind(md_, y)}, {DNNL_ARG_SCALE, bind_ptr(pvec, scale)}};
    if (bias) args[DNNL_ARG_SHIFT] = bind_ptr(pvec, bias);
    if (training_) {
      args[DNNL_ARG_MEAN] = bind_ptr(svec, mean_buf_.data());
      args[DNNL_ARG_VARIANCE] = bind_ptr(svec, var_buf_.data());
    }
    execute(primitive_, args);
    for (int64_t i = 0; i < outer_; ++i) {
      if (mean) mean->data<float>()[i] = mean_buf_[i];
      if (inv) inv->data<float>()[i] = 1.0f / std::sqrt(var_buf_[i] + epsilon_);
    }
  }

  template <typename T, typename U>
  void run_own(const T* x, T* y, const T* scale, const T* bias, U* mean_out, U* inv_out) const {
    const int64_t inner = inner_;
    parallel_for(
        outer_,
        [&](int64_t o) {
          const T* row = x + o * inner;
          T* out = y + o * inner;
          double s = 0;
          for (int64_t i = 0; i < inner; ++i) s += row[i];
          const double m = s / static_cast<double>(inner);
          double q = 0;
          for (int64_t i = 0; i < inner; ++i) q += (row[i] - m) * (row[i] - m);
          const double inv = 1.0 / std::sqrt(q / static_cast<double>(inner) + epsilon_);
          for (int64_t i = 0; i < inner; ++i) {
            double v = (row[i] - m) * inv * scale[i];
            out[i] = static_cast<T>(bias ? v + bias[i] : v);
          }
          if (mean_out) mean_out[o] = static_cast<U>(m);
          if (inv_out) inv_out[o] = static_cast<U>(inv);
        },
        std::max<int64_t>(1, 16384 / std::max<int64_t>(1, inner)));
  }

  float epsilon_ = 1e-5f;
  DType stash_ = DType::Float;
  Shape norm_shape_, stat_shape_;
  int64_t outer_ = 0, inner_ = 0;
  bool has_bias_ = false, use_dnnl_ = false, training_ = false;
  dnnl::memory::desc md_;
  dnnl::layer_normalization_forward::primitive_desc pd_;
  dnnl::layer_normalization_forward primitive_;
  Shape param_shape_[2];
  std::variant<std::vector<float>, std::vector<double>> param_buf_[2];
  std::vector<float> mean_buf_, var_buf_;
};

// =======================================================================================
// Backward kernels (ai.onnxtrain) and gradient rules.

// ai.onnxtrain.LayerNormalizationGrad(dY, X, scale, Mean, InvStdDev, [B]) -> (dX, dScale,
// [dBias]), attributes axis and epsilon. Mean/InvStdDev are the forward's saved statistics
// (shape of X with the normalised dims 1, any float type). With g = dY * scale:
// dX = inv * (g - mean(g) - xhat * mean(g * xhat)), dScale = sum(dY * xhat), dBias = sum(dY)
// over the outer rows, then summed to the parameters' (broadcast) shapes. float32 with
// float statistics runs oneDNN's layer_normalization_backward.
class LayerNormGradKernel final : public Kernel {
 public:
  LayerNormGradKernel(const Node& node, const std::vector<InputInfo>& in) {
    require_inputs(node, in, 5, "dY, X, scale, Mean and InvStdDev");
    check_same(node, in, 0, 1, "dY and X must match");
    dispatch_float(in[1].dtype, node, [](auto) {});
    if (in[2].dtype != in[1].dtype) fail(node, "scale must have X's element type");
    stash_ = in[3].dtype;
    dispatch_float(stash_, node, [](auto) {});
    if (in[4].dtype != stash_) fail(node, "Mean and InvStdDev must have one element type");
    const Shape& xs = in[1].shape;
    const auto rank = static_cast<int64_t>(xs.size());
    if (rank == 0) fail_shape(node, "X must have rank >= 1");
    const int64_t axis = normalize_axis(node.attr_int("axis", -1), rank, node);
    epsilon_ = node.attr_float("epsilon", 1e-5f);
    norm_shape_ = Shape(xs.begin() + axis, xs.end());
    outer_ = shape_numel(Shape(xs.begin(), xs.begin() + axis));
    inner_ = shape_numel(norm_shape_);
    if (shape_numel(in[3].shape) != outer_ || shape_numel(in[4].shape) != outer_)
      fail_shape(node, "Mean/InvStdDev must have " + std::to_string(outer_) + " values");
    has_bias_ = in.size() > 5 && in[5].present;
    for (size_t i = 0; i < (has_bias_ ? 2u : 1u); ++i) {
      Shape ps = in[2 + 3 * i].shape;
      out_shape_[i] = ps;
      while (ps.size() > norm_shape_.size() && ps.front() == 1) ps.erase(ps.begin());
      if (ps.size() > norm_shape_.size()) fail_shape(node, "parameter shape " + shape_str(ps) + " is too large");
      param_shape_[i] = ps;
    }
    if (in[1].dtype == DType::Float && stash_ == DType::Float && outer_ > 0 && inner_ > 0) {
      md_ = plain_desc({outer_, inner_}, DType::Float);
      auto flags = normalization_flags::use_scale;
      if (has_bias_) flags = flags | normalization_flags::use_shift;
      dnnl::layer_normalization_forward::desc fd(prop_kind::forward_training, md_, epsilon_, flags);
      dnnl::layer_normalization_forward::primitive_desc hint(fd, arena_scratchpad(), cpu_engine());
      dnnl::layer_normalization_backward::desc bd(prop_kind::backward, md_, md_, epsilon_, flags);
      pd_ = dnnl::layer_normalization_backward::primitive_desc(bd, arena_scratchpad(), cpu_engine(), hint);
      primitive_ = dnnl::layer_normalization_backward(pd_);
      use_dnnl_ = true;
    }
  }

  void run(KernelContext& ctx) override {
    const Tensor& dy = ctx.input(0);
    const Tensor& x = ctx.input(1);
    Tensor& dx = ctx.output(0, x.dtype(), x.shape());
    std::vector<double> dscale(static_cast<size_t>(inner_), 0.0), dbias(static_cast<size_t>(inner_), 0.0);
    if (x.numel() > 0) {
      dispatch_float(x.dtype(), ctx.node(), [&](auto tag) {
        using T = decltype(tag);
        std::vector<T> scale_buf;
        const T* scale = expand<T>(ctx.input(2), scale_buf);
        if constexpr (std::is_same_v<T, float>) {
          if (use_dnnl_) return run_dnnl(ctx, dx, scale, dscale, dbias);
        }
        dispatch_float(stash_, ctx.node(), [&](auto stag) {
          using U = decltype(stag);
          run_own<T, U>(x.data<T>(), dy.data<T>(), dx.data<T>(), scale, ctx.input(3).data<U>(),
                        ctx.input(4).data<U>(), dscale, dbias);
        });
      });
    }
    write_param(ctx, 1, 0, dscale);
    if (ctx.num_outputs() > 2) write_param(ctx, 2, 1, dbias);
  }

 private:
  template <typename T>
  const T* expand(const Tensor& p, std::vector<T>& buf) const {
    if (p.numel() == inner_) return p.data<T>();
    buf.resize(static_cast<size_t>(inner_));
    const T* src = p.data<T>();
    BroadcastIterator it(norm_shape_, {param_shape_[0]});
    for (int64_t i = 0; i < inner_; ++i, it.next()) buf[i] = src[it.offset(0)];
    return buf.data();
  }

  // Sums the per-element parameter gradient to the parameter's (broadcast) shape.
  void write_param(KernelContext& ctx, size_t out, int which, const std::vector<double>& full) const {
    const Tensor& like = ctx.input(which == 0 ? 2 : 5);
    const int64_t n = shape_numel(out_shape_[which]);
    std::vector<double> values(static_cast<size_t>(n), 0.0);
    if (n == inner_) {
      values = full;
    } else {
      BroadcastIterator it(norm_shape_, {param_shape_[which]});
      for (int64_t i = 0; i < inner_; ++i, it.next()) values[it.offset(0)] += full[i];
    }
    store_any(ctx.output(out, like.dtype(), out_shape_[which]), values, ctx.node());
  }

  void run_dnnl(KernelContext& ctx, Tensor& dx, const float* scale, std::vector<double>& dscale,
                std::vector<double>& dbias) {
    auto pvec = f32_vector(inner_), svec = f32_vector(outer_);
    const float* mean = ctx.input(3).data<float>();
    const float* inv = ctx.input(4).data<float>();
    std::vector<float> var(static_cast<size_t>(outer_)), ds(static_cast<size_t>(inner_)),
        db(static_cast<size_t>(inner_)), zeros(static_cast<size_t>(inner_), 0.f);
    for (int64_t o = 0; o < outer_; ++o) {
      const double iv = inv[o];
      var[o] = static_cast<float>(1.0 / (iv * iv) - epsilon_);
    }
    ExecArgs args{{DNNL_ARG_SRC, bind(md_, ctx.input(1))},
                  {DNNL_ARG_DIFF_DST, bind(md_, ctx.input(0))},
                  {DNNL_ARG_MEAN, bind_ptr(svec, mean)},
                  {DNNL_ARG_VARIANCE, bind_ptr(svec, var.data())},
                  {DNNL_ARG_SCALE, bind_ptr(pvec, scale)},
                  {DNNL_ARG_SHIFT, bind_ptr(pvec, zeros.data())},  // not read
                  {DNNL_ARG_DIFF_SRC, bind(md_, dx)},
                  {DNNL_ARG_DIFF_SCALE, bind_ptr(pvec, ds.data())}};
    if (has_bias_) args[DNNL_ARG_DIFF_SHIFT] = bind_ptr(pvec, db.data());
    execute(primitive_, args);
    dscale.assign(ds.begin(), ds.end());
    if (has_bias_) dbias.assign(db.begin(), db.end());
  }

  template <typename T, typename U>
  void run_own(const T* x, const T* dy, T* dx, const T* scale, const U* mean, const U* inv_std,
               std::vector<double>& dscale, std::vector<double>& dbias) const {
    const int64_t inner = inner_, outer = outer_;
    // Rows go in at most 64 chunks, each with its own parameter-gradient accumulators.
    const int64_t rows = std::max<int64_t>((outer + 63) / 64, std::max<int64_t>(1, 16384 / inner));
    const int64_t chunks = (outer + rows - 1) / rows;
    std::vector<double> acc(static_cast<size_t>(chunks * inner * 2), 0.0);
    parallel_for(
        chunks,
        [&](int64_t ch) {
          double* ds = acc.data() + ch * inner * 2;
          double* db = ds + inner;
          for (int64_t o = ch * rows; o < std::min(outer, (ch + 1) * rows); ++o) {
            const T* xr = x + o * inner;
            const T* gr = dy + o * inner;
            T* out = dx + o * inner;
            const double m = mean[o], iv = inv_std[o];
            double sg = 0, sgx = 0;
            for (int64_t i = 0; i < inner; ++i) {
              const double xh = (xr[i] - m) * iv, d = gr[i];
              const double g = d * scale[i];
              sg += g;
              sgx += g * xh;
              ds[i] += d * xh;
              db[i] += d;
            }
            const double c1 = sg / static_cast<double>(inner), c2 = sgx / static_cast<double>(inner);
            for (int64_t i = 0; i < inner; ++i) {
              const double xh = (xr[i] - m) * iv;
              out[i] = static_cast<T>(iv * (static_cast<double>(gr[i]) * scale[i] - c1 - xh * c2));
            }
          }
        },
        1);
    for (int64_t ch = 0; ch < chunks; ++ch)
      for (int64_t i = 0; i < inner; ++i) {
        dscale[i] += acc[ch * inner * 2 + i];
        dbias[i] += acc[ch * inner * 2 + inner + i];
      }
  }

  float epsilon_ = 1e-5f;
  DType stash_ = DType::Float;
  Shape norm_shape_, param_shape_[2], out_shape_[2];
  int64_t outer_ = 0, inner_ = 0;
  bool has_bias_ = false, use_dnnl_ = false;
  dnnl::memory::desc md_;
  dnnl::layer_normalization_backward::primitive_desc pd_;
  dnnl::layer_normalization_backward primitive_;
};

// LayerNormalization: the forward saves Mean and InvStdDev (outputs 1, 2, created when the
// model omitted them); gradients reaching those outputs are not supported.
void layernorm_gradient(GradientBuilder& b) {
  const Node& node = b.node();
  for (size_t i = 1; i < 3; ++i)
    if (b.has_GO(i))
      throw UnsupportedOp(node.describe() + ": gradients through the Mean/InvStdDev outputs are not supported");
  const auto stash = static_cast<DType>(node.attr_int("stash_type", 1));
  std::vector<Value*> inputs{b.GO(0), b.I(0), b.I(1), b.saved_output(1, stash), b.saved_output(2, stash)};
  const bool has_bias = node.has_input(2);
  if (has_bias) inputs.push_back(b.I(2));
  Attributes attrs{{"axis", node.attr_int("axis", -1)}, {"epsilon", node.attr_float("epsilon", 1e-5f)}};
  auto outs = b.op_n("LayerNormalizationGrad", inputs, has_bias ? 3 : 2, attrs, graph::kTrainingDomain);
  for (size_t i = 0; i < outs.size(); ++i)
    if (b.needs_grad(i)) b.GI(i, outs[i]);
}

}  // namespace norm_impl

void register_layer_norm_ops(Registry& r) {
  using namespace norm_impl;
  const char* t = graph::kTrainingDomain;
  r.add({"", "LayerNormalization", 17, INT_MAX, factory<LayerNormKernel>(), "oneDNN layer_normalization",
         layernorm_gradient});
  r.add({t, "LayerNormalizationGrad", 1, INT_MAX, factory<LayerNormGradKernel>(), "oneDNN layer_normalization"});
}

}  // namespace onnxtrain::ops
