// BatchNormalization and InstanceNormalization (a batch normalization of the 1 x (N*C) x S
// view), forward and backward, and their gradient rules. Shared helpers:
// normalization_common.h.
#include <algorithm>
#include <cmath>
#include <variant>

#include "ops/batch_norm.h"
#include "ops/gradient.h"
#include "ops/normalization_common.h"

namespace onnxtrain::ops {

bool batchnorm_trains(const Node& n) {
  if (n.opset < 7) return n.attr_int("is_test", 0) == 0;
  if (n.opset < 14)
    return std::any_of(n.outputs.begin() + std::min<size_t>(1, n.outputs.size()), n.outputs.end(),
                       [](const graph::Value* v) { return v != nullptr; });
  return n.attr_int("training_mode", 0) != 0;
}

namespace norm_impl {

// ---------------------------------------------------------------------------------------
// BatchNormalization. Opsets 1/6 choose training with is_test=0; opsets 7-13 train when the
// node asks for more than Y; 14+ have the training_mode attribute. Before opset 9, spatial=0
// normalises every (C, D1..Dn) activation separately, i.e. C*D1*..*Dn "channels".
// Training outputs: opset 14+ (Y, running_mean, running_var); before 14 (Y, running_mean,
// running_var, saved_mean, saved_var) with the saved values the batch mean and the batch
// (population) variance.

class BatchNormKernel final : public Kernel {
 public:
  BatchNormKernel(const Node& node, const std::vector<InputInfo>& in) {
    for (int i = 0; i < 5; ++i)
      if (i >= static_cast<int>(in.size()) || !in[i].present) fail(node, "requires 5 inputs (X, scale, B, mean, var)");
    const Shape& xs = in[0].shape;
    if (xs.size() < 2) fail_shape(node, "input X must have rank >= 2 (N x C x ...), got " + shape_str(xs));
    dtype_ = in[0].dtype;
    dispatch_float(dtype_, node, [](auto) {});
    epsilon_ = node.attr_float("epsilon", 1e-5f);
    momentum_ = node.attr_float("momentum", 0.9f);
    training_ = batchnorm_trains(node);
    full_outputs_ = node.opset < 14;
    bool spatial = node.opset >= 9 || node.attr_int("spatial", 1) != 0;

    const int64_t n = xs[0];
    channels_ = spatial ? xs[1] : shape_numel(Shape(xs.begin() + 1, xs.end()));
    if (spatial && xs.size() <= 5) {
      work_shape_ = xs;
    } else {
      // Collapse to N x C x S (oneDNN supports at most 5 dims; spatial=0 makes S = 1).
      int64_t rest = channels_ == 0 ? 0 : shape_numel(xs) / std::max<int64_t>(1, n * channels_);
      work_shape_ = {n, channels_, rest};
    }
    for (int i = 1; i < 5; ++i) {
      dispatch_float(in[i].dtype, node, [](auto) {});
      if (shape_numel(in[i].shape) != channels_)
        fail_shape(node, "input " + std::to_string(i) + " has shape " + shape_str(in[i].shape) + " but X has " +
                             std::to_string(channels_) + " channels");
    }
    std::vector<bool> reduced(work_shape_.size(), true);
    reduced[1] = false;
    layout_ = make_layout(work_shape_, reduced);

    // Training computes batch statistics with the own loops (group_moments: sums in double);
    // inference has no sums and runs oneDNN.
    if (dtype_ == DType::Float && shape_numel(xs) > 0 && !training_) {
      md_ = plain_desc(work_shape_, DType::Float);
      const auto flags = normalization_flags::use_scale | normalization_flags::use_shift | normalization_flags::use_global_stats;
      dnnl::batch_normalization_forward::desc d(prop_kind::forward_inference, md_, epsilon_, flags);
      pd_ = dnnl::batch_normalization_forward::primitive_desc(d, arena_scratchpad(), cpu_engine());
      primitive_ = dnnl::batch_normalization_forward(pd_);
      use_dnnl_ = true;
    }
  }

  void run(KernelContext& ctx) override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, x.dtype(), x.shape());
    const Node& node = ctx.node();
    const auto c = static_cast<size_t>(channels_);
    // Members, not locals: a steady-state step allocates nothing (their capacity stays).
    std::vector<double>& batch_mean = batch_mean_;
    std::vector<double>& batch_var = batch_var_;
    batch_mean.assign(c, 0.0);
    batch_var.assign(c, 0.0);
    if (x.numel() == 0) {
      if (training_) fail_shape(node, "cannot compute batch statistics of an empty batch");
    } else if (use_dnnl_) {
      run_dnnl(ctx, y);
    } else {
      dispatch_float(x.dtype(), node, [&](auto tag) { run_own<decltype(tag)>(ctx, y, batch_mean, batch_var); });
    }
    if (!training_) {
      // An inference-mode node of opset < 7 may still list the statistics outputs: they are
      // the unchanged running statistics.
      for (size_t i = 1; i < ctx.num_outputs() && i < 5; ++i)
        if (ctx.wants_output(i)) ctx.set_output(i, ctx.input(i % 2 == 1 ? 3 : 4));
      return;
    }
    // Running statistics: running * momentum + batch * (1 - momentum), in the input's type.
    std::vector<double>& mean = running_mean_;
    std::vector<double>& var = running_var_;
    ctx.input(3).as_double(mean);
    ctx.input(4).as_double(var);
    for (size_t i = 0; i < c; ++i) {
      mean[i] = mean[i] * momentum_ + batch_mean[i] * (1.0 - momentum_);
      var[i] = var[i] * momentum_ + batch_var[i] * (1.0 - momentum_);
    }
    const Shape& stat_shape = ctx.input(3).shape();
    const std::vector<double>* values[] = {&mean, &var, &batch_mean, &batch_var};
    const size_t outputs = full_outputs_ ? 5 : 3;
    for (size_t i = 1; i < outputs && i < ctx.num_outputs(); ++i) {
      DType dt = i < 3 ? ctx.input(i + 2).dtype() : x.dtype();
      store_any(ctx.output(i, dt, stat_shape), *values[i - 1], node);
    }
  }

  const dnnl::batch_normalization_forward::primitive_desc& primitive_desc() const { return pd_; }

 private:
  // Inference: the running statistics normalise.
  void run_dnnl(KernelContext& ctx, Tensor& y) {
    auto vec = f32_vector(channels_);
    execute(primitive_, {{DNNL_ARG_SRC, bind(md_, ctx.input(0))},
                         {DNNL_ARG_DST, bind(md_, y)},
                         {DNNL_ARG_SCALE, bind_ptr(vec, float_params(ctx.input(1), scale_buf_))},
                         {DNNL_ARG_SHIFT, bind_ptr(vec, float_params(ctx.input(2), shift_buf_))},
                         {DNNL_ARG_MEAN, bind_ptr(vec, float_params(ctx.input(3), mean_buf_))},
                         {DNNL_ARG_VARIANCE, bind_ptr(vec, float_params(ctx.input(4), var_buf_))}});
  }

  template <typename T>
  void run_own(KernelContext& ctx, Tensor& y, std::vector<double>& batch_mean, std::vector<double>& batch_var) {
    const T* x = ctx.input(0).data<T>();
    if (training_) {
      group_moments(x, layout_, batch_mean.data(), batch_var.data(), ctx.collective());
    } else {
      ctx.input(3).as_double(batch_mean);
      ctx.input(4).as_double(batch_var);
    }
    std::vector<double>& a = scale_;
    std::vector<double>& b = shift_;
    ctx.input(1).as_double(a);
    ctx.input(2).as_double(b);
    for (size_t i = 0; i < a.size(); ++i) {
      a[i] /= std::sqrt(batch_var[i] + epsilon_);
      b[i] -= batch_mean[i] * a[i];
    }
    group_affine(x, y.data<T>(), layout_, a.data(), b.data());
  }

  DType dtype_ = DType::Undefined;
  float epsilon_ = 1e-5f, momentum_ = 0.9f;
  bool training_ = false, full_outputs_ = false, use_dnnl_ = false;
  int64_t channels_ = 0;
  Shape work_shape_;
  GroupLayout layout_;
  dnnl::memory::desc md_;
  dnnl::batch_normalization_forward::primitive_desc pd_;
  dnnl::batch_normalization_forward primitive_;
  std::vector<float> scale_buf_, shift_buf_, mean_buf_, var_buf_;
  std::vector<double> batch_mean_, batch_var_, running_mean_, running_var_, scale_, shift_;
};

// ---------------------------------------------------------------------------------------
// InstanceNormalization: per (n, c) statistics. float32 runs oneDNN batch normalization on
// the 1 x (N*C) x S view with the per-channel scale and shift tiled N times.
class InstanceNormKernel final : public Kernel {
 public:
  InstanceNormKernel(const Node& node, const std::vector<InputInfo>& in) {
    if (in.size() < 3 || !in[0].present || !in[1].present || !in[2].present)
      fail(node, "requires 3 inputs (input, scale, B)");
    const Shape& xs = in[0].shape;
    if (xs.size() < 2) fail_shape(node, "input must have rank >= 2 (N x C x ...), got " + shape_str(xs));
    dispatch_float(in[0].dtype, node, [](auto) {});
    channels_ = xs[1];
    for (int i = 1; i < 3; ++i)
      if (shape_numel(in[i].shape) != channels_)
        fail_shape(node, "input " + std::to_string(i) + " has shape " + shape_str(in[i].shape) + " but the input has " +
                             std::to_string(channels_) + " channels");
    epsilon_ = node.attr_float("epsilon", 1e-5f);
    instances_ = xs[0] * channels_;
    const int64_t spatial = shape_numel(Shape(xs.begin() + 2, xs.end()));
    layout_ = make_layout({instances_, spatial}, {false, true});
    if (in[0].dtype == DType::Float && shape_numel(xs) > 0) {
      md_ = ncsp_desc(1, instances_, spatial);
      dnnl::batch_normalization_forward::desc d(prop_kind::forward_training, md_, epsilon_,
                                                normalization_flags::use_scale | normalization_flags::use_shift);
      pd_ = dnnl::batch_normalization_forward::primitive_desc(d, arena_scratchpad(), cpu_engine());
      primitive_ = dnnl::batch_normalization_forward(pd_);
      use_dnnl_ = true;
    }
  }

  void run(KernelContext& ctx) override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, x.dtype(), x.shape());
    if (x.numel() == 0) return;
    std::vector<double> scale = ctx.input(1).as_double(), bias = ctx.input(2).as_double();
    if (use_dnnl_) {
      const auto n = static_cast<size_t>(instances_);
      scale_buf_.resize(n), shift_buf_.resize(n), mean_buf_.resize(n), var_buf_.resize(n);
      for (size_t i = 0; i < n; ++i) {
        scale_buf_[i] = static_cast<float>(scale[i % channels_]);
        shift_buf_[i] = static_cast<float>(bias[i % channels_]);
      }
      auto vec = f32_vector(instances_);
      execute(primitive_, {{DNNL_ARG_SRC, bind(md_, x)},
                           {DNNL_ARG_DST, bind(md_, y)},
                           {DNNL_ARG_SCALE, bind_ptr(vec, scale_buf_.data())},
                           {DNNL_ARG_SHIFT, bind_ptr(vec, shift_buf_.data())},
                           {DNNL_ARG_MEAN, bind_ptr(vec, mean_buf_.data())},
                           {DNNL_ARG_VARIANCE, bind_ptr(vec, var_buf_.data())}});
      return;
    }
    dispatch_float(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      std::vector<double> a(instances_), b(instances_);
      group_moments(x.data<T>(), layout_, a.data(), b.data());  // a = mean, b = variance
      for (int64_t i = 0; i < instances_; ++i) {
        const double mean = a[i];
        a[i] = scale[i % channels_] / std::sqrt(b[i] + epsilon_);
        b[i] = bias[i % channels_] - mean * a[i];
      }
      group_affine(x.data<T>(), y.data<T>(), layout_, a.data(), b.data());
    });
  }

 private:
  float epsilon_ = 1e-5f;
  int64_t channels_ = 0, instances_ = 0;
  bool use_dnnl_ = false;
  GroupLayout layout_;
  dnnl::memory::desc md_;
  dnnl::batch_normalization_forward::primitive_desc pd_;
  dnnl::batch_normalization_forward primitive_;
  std::vector<float> scale_buf_, shift_buf_, mean_buf_, var_buf_;
};

// =======================================================================================
// Backward kernels (ai.onnxtrain) and gradient rules.

// Backward of y = gamma_k * (x - mean_k) * inv_k + beta_k over the groups of `g`. With
// `training` the statistics are the group's own (batch) moments, so dx includes their
// derivatives: dx = gamma*inv * (dy - mean(dy) - xhat * mean(dy * xhat)); otherwise
// dx = gamma*inv*dy. Writes the per-group sums of dy (dbias) and dy*xhat (dscale).
// With a collective (synchronized batch statistics, training) the means in dx are over
// every process's values; dscale and dbias stay this process's own, since the gradients of
// parameters are combined across processes afterwards like every other gradient.
template <typename T>
void group_norm_backward(const T* x, const T* dy, T* dx, const GroupLayout& g, const double* mean, const double* inv,
                         const double* gamma, bool training, double* sum_dy, double* sum_dy_xhat,
                         Collective* collective = nullptr) {
  auto sums = [&](int64_t k) {
    const int64_t base = g.group_offset[k];
    const double m = mean[k];
    double s1 = 0, s2 = 0;
    for (int64_t r : g.run_offset) {
#pragma omp simd reduction(+ : s1, s2)
      for (int64_t i = 0; i < g.inner; ++i) {
        const int64_t at = base + r + i;
        const double d = dy[at];
        s1 += d;
        s2 += d * (static_cast<double>(x[at]) - m);
      }
    }
    sum_dy[k] = s1;
    sum_dy_xhat[k] = s2 * inv[k];
  };
  // dx of group k given the means of dy and dy * xhat over the statistics' population.
  auto apply = [&](int64_t k, double mean_dy, double mean_dy_xhat) {
    const int64_t base = g.group_offset[k];
    const double m = mean[k], iv = inv[k], a = gamma[k] * iv;
    if (training) {
      const double c2 = mean_dy_xhat * iv;
      for (int64_t r : g.run_offset) {
#pragma omp simd
        for (int64_t i = 0; i < g.inner; ++i) {
          const int64_t at = base + r + i;
          dx[at] = static_cast<T>(a * (dy[at] - mean_dy - (static_cast<double>(x[at]) - m) * c2));
        }
      }
    } else {
      for (int64_t r : g.run_offset) {
#pragma omp simd
        for (int64_t i = 0; i < g.inner; ++i) dx[base + r + i] = static_cast<T>(a * dy[base + r + i]);
      }
    }
  };
  const double local = static_cast<double>(g.group_size());
  if (!collective || !training) {  // one pass per group while its values are in cache
    parallel_for(
        g.groups,
        [&](int64_t k) {
          sums(k);
          apply(k, local > 0 ? sum_dy[k] / local : 0.0, local > 0 ? sum_dy_xhat[k] / local : 0.0);
        },
        group_grain(g));
    return;
  }
  parallel_for(g.groups, sums, group_grain(g));
  const auto groups = static_cast<size_t>(g.groups);
  std::vector<double> all(2 * groups + 1);
  std::copy(sum_dy, sum_dy + groups, all.begin());
  std::copy(sum_dy_xhat, sum_dy_xhat + groups, all.begin() + groups);
  all.back() = local;
  collective->allreduce_sum(all.data(), static_cast<int64_t>(all.size()));
  const double n = all.back();
  parallel_for(
      g.groups, [&](int64_t k) { apply(k, n > 0 ? all[k] / n : 0.0, n > 0 ? all[groups + k] / n : 0.0); },
      group_grain(g));
}

// ai.onnxtrain.BatchNormalizationGrad(dY, X, scale, [mean, var]) -> (dX, dScale, dBias),
// attributes epsilon and training_mode. X is viewed as N x C x S with C = numel(scale)
// (this also covers spatial=0, where the "channels" are C*D1*..*Dn). training_mode=1: mean
// and var are the batch mean and population variance (recomputed from X when absent);
// training_mode=0: they are the running statistics, constants of the affine map.
// dScale and dBias have scale's shape and type.
class BatchNormGradKernel final : public Kernel {
 public:
  BatchNormGradKernel(const Node& node, const std::vector<InputInfo>& in) {
    require_inputs(node, in, 3, "dY, X and scale");
    check_same(node, in, 0, 1, "dY and X must match");
    dispatch_float(in[1].dtype, node, [](auto) {});
    dispatch_float(in[2].dtype, node, [](auto) {});
    training_ = node.attr_int("training_mode", 1) != 0;
    epsilon_ = node.attr_float("epsilon", 1e-5f);
    has_stats_ = in.size() > 4 && in[3].present && in[4].present;
    if (!training_ && !has_stats_) fail(node, "inference mode needs the running mean and variance");
    const Shape& xs = in[1].shape;
    if (xs.size() < 2) fail_shape(node, "X must have rank >= 2, got " + shape_str(xs));
    channels_ = shape_numel(in[2].shape);
    const int64_t n = xs[0], total = shape_numel(xs);
    if (channels_ <= 0 || (n > 0 && total % (n * channels_) != 0))
      fail_shape(node, "scale of shape " + shape_str(in[2].shape) + " does not match X " + shape_str(xs));
    const int64_t spatial = n > 0 ? total / (n * channels_) : 0;
    work_ = {n, channels_, spatial};
    if (has_stats_)
      for (int i = 3; i < 5; ++i)
        if (shape_numel(in[i].shape) != channels_)
          fail_shape(node, "statistics input " + std::to_string(i) + " has shape " + shape_str(in[i].shape));
    if (total == 0) return;
    layout_ = make_layout(work_, {true, false, true});
  }

  void run(KernelContext& ctx) override {
    const Tensor& dy = ctx.input(0);
    const Tensor& x = ctx.input(1);
    const Tensor& scale = ctx.input(2);
    Tensor& dx = ctx.output(0, x.dtype(), x.shape());
    const auto c = static_cast<size_t>(channels_);
    // Members, not locals: a steady-state step allocates nothing (their capacity stays).
    std::vector<double>& dscale = dscale_;
    std::vector<double>& dbias = dbias_;
    dscale.assign(c, 0.0);
    dbias.assign(c, 0.0);
    // Synchronized batch statistics: the sums span every process (the forward's did too).
    Collective* sync = training_ ? ctx.collective() : nullptr;
    if (x.numel() > 0) {
      std::vector<double>& mean = mean_;
      std::vector<double>& var = var_;
      mean.assign(c, 0.0);
      var.assign(c, 0.0);
      if (has_stats_) {
        ctx.input(3).as_double(mean);
        ctx.input(4).as_double(var);
      } else {
        dispatch_float(x.dtype(), ctx.node(),
                       [&](auto tag) { group_moments(x.data<decltype(tag)>(), layout_, mean.data(), var.data(), sync); });
      }
      {
        // Own loops for float32 too: sums in double (see group_moments).
        std::vector<double>& gamma = gamma_;
        std::vector<double>& inv = inv_;
        scale.as_double(gamma);
        inv.resize(c);
        for (size_t i = 0; i < c; ++i) inv[i] = 1.0 / std::sqrt(var[i] + epsilon_);
        dispatch_float(x.dtype(), ctx.node(), [&](auto tag) {
          using T = decltype(tag);
          group_norm_backward<T>(x.data<T>(), dy.data<T>(), dx.data<T>(), layout_, mean.data(), inv.data(),
                                 gamma.data(), training_, dbias.data(), dscale.data(), sync);
        });
      }
    }
    store_any(ctx.output(1, scale.dtype(), scale.shape()), dscale, ctx.node());
    if (ctx.num_outputs() > 2) store_any(ctx.output(2, scale.dtype(), scale.shape()), dbias, ctx.node());
  }

 private:
  bool training_ = true, has_stats_ = false;
  float epsilon_ = 1e-5f;
  int64_t channels_ = 0;
  Shape work_;
  std::vector<double> dscale_, dbias_, mean_, var_, gamma_, inv_;
  GroupLayout layout_;
};

// Reshapes `g` to the shape of `like` unless shape inference shows they already agree.
Value* shaped_like(GradientBuilder& b, Value* g, Value* like, Value* reference) {
  if (like->dims && reference->dims && *like->dims == *reference->dims) return g;
  return b.op("Reshape", {g, b.shape_of(like)});
}

// BatchNormalization: dX, dScale, dBias from BatchNormalizationGrad. Training mode uses the
// saved batch statistics where the opset has them (outputs 3 and 4 before opset 14) and
// recomputes them otherwise. The running mean/var inputs (3, 4) are not differentiable
// (non_differentiable_inputs), and the running/saved statistics outputs are buffers, not
// differentiable paths: gradients reaching them are ignored (stop-gradient).
void batchnorm_gradient(GradientBuilder& b) {
  const Node& node = b.node();
  const bool training = batchnorm_trains(node);
  Value* x = b.I(0);
  std::vector<Value*> inputs{b.GO(0), x, b.I(1)};
  if (training && node.opset < 14) {
    inputs.push_back(b.saved_output(3, x->dtype));
    inputs.push_back(b.saved_output(4, x->dtype));
  } else if (!training) {
    inputs.push_back(b.I(3));
    inputs.push_back(b.I(4));
  }
  Attributes attrs{{"epsilon", node.attr_float("epsilon", 1e-5f)},
                   {"training_mode", static_cast<int64_t>(training ? 1 : 0)}};
  auto outs = b.op_n("BatchNormalizationGrad", inputs, 3, attrs, graph::kTrainingDomain);
  if (b.needs_grad(0)) b.GI(0, outs[0]);
  if (b.needs_grad(1)) b.GI(1, outs[1]);
  if (b.needs_grad(2)) b.GI(2, shaped_like(b, outs[2], b.I(2), b.I(1)));
}

// ai.onnxtrain.InstanceNormalizationGrad(dY, X, scale) -> (dX, dScale, dBias), attribute
// epsilon. Statistics are recomputed per (n, c). float32 runs oneDNN's batch normalization
// backward on the 1 x (N*C) x S view (as the forward does), double the own loop.
class InstanceNormGradKernel final : public Kernel {
 public:
  InstanceNormGradKernel(const Node& node, const std::vector<InputInfo>& in) {
    require_inputs(node, in, 3, "dY, X and scale");
    check_same(node, in, 0, 1, "dY and X must match");
    dispatch_float(in[1].dtype, node, [](auto) {});
    dispatch_float(in[2].dtype, node, [](auto) {});
    const Shape& xs = in[1].shape;
    if (xs.size() < 2) fail_shape(node, "X must have rank >= 2, got " + shape_str(xs));
    channels_ = xs[1];
    if (shape_numel(in[2].shape) != channels_) fail_shape(node, "scale does not have X's channel count");
    epsilon_ = node.attr_float("epsilon", 1e-5f);
    instances_ = xs[0] * channels_;
    const int64_t spatial = shape_numel(Shape(xs.begin() + 2, xs.end()));
    if (shape_numel(xs) == 0) return;
    layout_ = make_layout({instances_, spatial}, {false, true});
    if (in[1].dtype == DType::Float) {
      md_ = ncsp_desc(1, instances_, spatial);
      auto flags = normalization_flags::use_scale | normalization_flags::use_shift;
      dnnl::batch_normalization_forward::desc fd(prop_kind::forward_training, md_, epsilon_, flags);
      dnnl::batch_normalization_forward::primitive_desc hint(fd, arena_scratchpad(), cpu_engine());
      dnnl::batch_normalization_backward::desc bd(prop_kind::backward, md_, md_, epsilon_, flags);
      pd_ = dnnl::batch_normalization_backward::primitive_desc(bd, arena_scratchpad(), cpu_engine(), hint);
      primitive_ = dnnl::batch_normalization_backward(pd_);
      use_dnnl_ = true;
    }
  }

  void run(KernelContext& ctx) override {
    const Tensor& dy = ctx.input(0);
    const Tensor& x = ctx.input(1);
    const Tensor& scale = ctx.input(2);
    Tensor& dx = ctx.output(0, x.dtype(), x.shape());
    const auto c = static_cast<size_t>(channels_), n = static_cast<size_t>(instances_);
    std::vector<double> dscale(c, 0.0), dbias(c, 0.0);
    if (x.numel() > 0) {
      std::vector<double> mean(n), var(n), ds(n), db(n), gamma(n);
      const std::vector<double> s = scale.as_double();
      for (size_t i = 0; i < n; ++i) gamma[i] = s[i % c];
      dispatch_float(x.dtype(), ctx.node(), [&](auto tag) {
        using T = decltype(tag);
        group_moments(x.data<T>(), layout_, mean.data(), var.data());
        if (use_dnnl_) return;
        std::vector<double> inv(n);
        for (size_t i = 0; i < n; ++i) inv[i] = 1.0 / std::sqrt(var[i] + epsilon_);
        group_norm_backward<T>(x.data<T>(), dy.data<T>(), dx.data<T>(), layout_, mean.data(), inv.data(), gamma.data(),
                               true, db.data(), ds.data());
      });
      if (use_dnnl_) {
        auto vec = f32_vector(instances_);
        // oneDNN's backward wants a shift argument it does not read.
        std::vector<float> m(mean.begin(), mean.end()), v(var.begin(), var.end()), g(gamma.begin(), gamma.end()),
            dsf(n), dbf(n), zeros(n, 0.f);
        execute(primitive_, {{DNNL_ARG_SRC, bind(md_, x)},
                             {DNNL_ARG_DIFF_DST, bind(md_, dy)},
                             {DNNL_ARG_MEAN, bind_ptr(vec, m.data())},
                             {DNNL_ARG_VARIANCE, bind_ptr(vec, v.data())},
                             {DNNL_ARG_SCALE, bind_ptr(vec, g.data())},
                             {DNNL_ARG_SHIFT, bind_ptr(vec, zeros.data())},
                             {DNNL_ARG_DIFF_SRC, bind(md_, dx)},
                             {DNNL_ARG_DIFF_SCALE, bind_ptr(vec, dsf.data())},
                             {DNNL_ARG_DIFF_SHIFT, bind_ptr(vec, dbf.data())}});
        ds.assign(dsf.begin(), dsf.end());
        db.assign(dbf.begin(), dbf.end());
      }
      for (size_t i = 0; i < n; ++i) dscale[i % c] += ds[i], dbias[i % c] += db[i];
    }
    store_any(ctx.output(1, scale.dtype(), scale.shape()), dscale, ctx.node());
    if (ctx.num_outputs() > 2) {
      const Tensor& bias = ctx.has_input(3) ? ctx.input(3) : scale;
      store_any(ctx.output(2, bias.dtype(), bias.shape()), dbias, ctx.node());
    }
  }

 private:
  float epsilon_ = 1e-5f;
  int64_t channels_ = 0, instances_ = 0;
  bool use_dnnl_ = false;
  GroupLayout layout_;
  dnnl::memory::desc md_;
  dnnl::batch_normalization_backward::primitive_desc pd_;
  dnnl::batch_normalization_backward primitive_;
};

void instancenorm_gradient(GradientBuilder& b) {
  // B is passed for its shape and type only.
  auto outs = b.op_n("InstanceNormalizationGrad", {b.GO(0), b.I(0), b.I(1), b.I(2)}, 3,
                     {{"epsilon", b.node().attr_float("epsilon", 1e-5f)}}, graph::kTrainingDomain);
  for (size_t i = 0; i < 3; ++i)
    if (b.needs_grad(i)) b.GI(i, outs[i]);
}

}  // namespace norm_impl

void register_batch_norm_ops(Registry& r) {
  using namespace norm_impl;
  const char* t = graph::kTrainingDomain;
  r.add({"", "BatchNormalization", 1, INT_MAX, factory<BatchNormKernel>(), "own (training: sums in double), oneDNN batch_normalization (inference)",
         batchnorm_gradient, {3, 4}});
  r.add({"", "InstanceNormalization", 1, INT_MAX, factory<InstanceNormKernel>(), "oneDNN batch_normalization",
         instancenorm_gradient});
  r.add({t, "BatchNormalizationGrad", 1, INT_MAX, factory<BatchNormGradKernel>(), "own (sums in double)"});
  r.add({t, "InstanceNormalizationGrad", 1, INT_MAX, factory<InstanceNormGradKernel>(), "oneDNN batch_normalization"});
}

}  // namespace onnxtrain::ops
