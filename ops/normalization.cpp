// Normalization family: BatchNormalization, InstanceNormalization, LayerNormalization, LRN,
// MeanVarianceNormalization. float32 runs on oneDNN's batch/layer normalization and LRN
// primitives where their semantics match ONNX exactly; double and the remaining cases use
// the grouped-moments loops below (statistics always accumulated in double).
#include <algorithm>
#include <cmath>
#include <variant>

#include "graph/passes/inference_mode.h"
#include "ops/dnnl_utils.h"
#include "ops/gradient.h"
#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

namespace {

using dnnl::normalization_flags;
using dnnl::prop_kind;

// The index space of a tensor split into groups (the kept dims, row-major order) that each
// reduce over the other dims. A group is a set of contiguous runs of `inner` elements, so
// the common "reduce the trailing dims" case is one run per group.
struct GroupLayout {
  int64_t groups = 0;
  int64_t inner = 1;
  std::vector<int64_t> group_offset;
  std::vector<int64_t> run_offset;
  int64_t group_size() const { return inner * static_cast<int64_t>(run_offset.size()); }
};

// Offsets of every index of a (size, stride) box, row-major.
std::vector<int64_t> box_offsets(const std::vector<std::pair<int64_t, int64_t>>& dims) {
  std::vector<int64_t> out{0};
  for (auto [size, stride] : dims) {
    std::vector<int64_t> next;
    next.reserve(out.size() * static_cast<size_t>(size));
    for (int64_t base : out)
      for (int64_t i = 0; i < size; ++i) next.push_back(base + i * stride);
    out = std::move(next);
  }
  return out;
}

GroupLayout make_layout(const Shape& shape, const std::vector<bool>& reduced) {
  Shape strides = strides_of(shape);
  // Merge neighbouring dims of the same kind that are contiguous with each other.
  struct D {
    int64_t size, stride;
    bool reduced;
  };
  std::vector<D> dims;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1) continue;
    if (!dims.empty() && dims.back().reduced == reduced[i] && dims.back().stride == shape[i] * strides[i]) {
      dims.back().size *= shape[i];
      dims.back().stride = strides[i];
    } else {
      dims.push_back({shape[i], strides[i], reduced[i]});
    }
  }
  GroupLayout g;
  if (!dims.empty() && dims.back().reduced && dims.back().stride == 1) {
    g.inner = dims.back().size;
    dims.pop_back();
  }
  std::vector<std::pair<int64_t, int64_t>> kept, red;
  for (const D& d : dims) (d.reduced ? red : kept).push_back({d.size, d.stride});
  g.group_offset = box_offsets(kept);
  g.run_offset = box_offsets(red);
  g.groups = static_cast<int64_t>(g.group_offset.size());
  return g;
}

int64_t group_grain(const GroupLayout& g) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, g.group_size())); }

// Mean and population variance of every group (two passes for accuracy).
template <typename T>
void group_moments(const T* x, const GroupLayout& g, double* mean, double* var) {
  const double n = static_cast<double>(g.group_size());
  parallel_for(
      g.groups,
      [&](int64_t k) {
        const T* base = x + g.group_offset[k];
        double s = 0;
        for (int64_t r : g.run_offset)
          for (int64_t i = 0; i < g.inner; ++i) s += base[r + i];
        const double m = n > 0 ? s / n : 0.0;
        double q = 0;
        for (int64_t r : g.run_offset)
          for (int64_t i = 0; i < g.inner; ++i) {
            const double d = base[r + i] - m;
            q += d * d;
          }
        mean[k] = m;
        var[k] = n > 0 ? q / n : 0.0;
      },
      group_grain(g));
}

// y = x * a[group] + b[group].
template <typename T>
void group_affine(const T* x, T* y, const GroupLayout& g, const double* a, const double* b) {
  parallel_for(
      g.groups,
      [&](int64_t k) {
        const int64_t base = g.group_offset[k];
        const T ak = static_cast<T>(a[k]), bk = static_cast<T>(b[k]);
        for (int64_t r : g.run_offset)
          for (int64_t i = 0; i < g.inner; ++i) y[base + r + i] = x[base + r + i] * ak + bk;
      },
      group_grain(g));
}

// A float view of a parameter tensor of any float type (oneDNN wants f32 parameters).
const float* float_params(const Tensor& t, std::vector<float>& scratch) {
  if (t.dtype() == DType::Float) return t.data<float>();
  std::vector<double> v = t.as_double();
  scratch.assign(v.begin(), v.end());
  return scratch.data();
}

template <typename T>
void store(Tensor& t, const std::vector<double>& values) {
  T* p = t.data<T>();
  for (size_t i = 0; i < values.size(); ++i) p[i] = static_cast<T>(values[i]);
}

void store_any(Tensor& t, const std::vector<double>& values, const Node& node) {
  dispatch_float(t.dtype(), node, [&](auto tag) { store<decltype(tag)>(t, values); });
}

dnnl::memory::desc f32_vector(int64_t n) { return plain_desc({n}, DType::Float); }

// oneDNN 2.6 has jit batch normalization for 4-D/5-D (ncsp) data only: a 3-D
// [N, C, S] view falls back to its reference kernel (~50x slower backward), so views get
// a trailing unit dimension.
dnnl::memory::desc ncsp_desc(int64_t n, int64_t c, int64_t spatial) {
  return plain_desc({n, c, spatial, 1}, DType::Float);
}
dnnl::memory bind_ptr(const dnnl::memory::desc& md, const void* p) {
  return dnnl::memory(md, cpu_engine(), const_cast<void*>(p));
}

// ---------------------------------------------------------------------------------------
// BatchNormalization. Opsets 1/6 choose training with is_test=0; opsets 7-13 train when the
// node asks for more than Y; 14+ have the training_mode attribute. Before opset 9, spatial=0
// normalises every (C, D1..Dn) activation separately, i.e. C*D1*..*Dn "channels".
// Training outputs: opset 14+ (Y, running_mean, running_var); before 14 (Y, running_mean,
// running_var, saved_mean, saved_var) with the saved values the batch mean and the batch
// (population) variance.
// Whether a BatchNormalization node computes batch statistics (shared with its gradient rule).
bool batchnorm_training(const Node& node) { return graph::batchnorm_trains(node); }

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
    training_ = batchnorm_training(node);
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

    if (dtype_ == DType::Float && shape_numel(xs) > 0) {
      md_ = plain_desc(work_shape_, DType::Float);
      auto flags = normalization_flags::use_scale | normalization_flags::use_shift;
      if (!training_) flags = flags | normalization_flags::use_global_stats;
      dnnl::batch_normalization_forward::desc d(training_ ? prop_kind::forward_training : prop_kind::forward_inference,
                                                md_, epsilon_, flags);
      pd_ = dnnl::batch_normalization_forward::primitive_desc(d, cpu_engine());
      primitive_ = dnnl::batch_normalization_forward(pd_);
      use_dnnl_ = true;
    }
  }

  void run(KernelContext& ctx) override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, x.dtype(), x.shape());
    const Node& node = ctx.node();
    const auto c = static_cast<size_t>(channels_);
    std::vector<double> batch_mean(c), batch_var(c);
    if (x.numel() == 0) {
      if (training_) fail_shape(node, "cannot compute batch statistics of an empty batch");
    } else if (use_dnnl_) {
      run_dnnl(ctx, y, batch_mean, batch_var);
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
    std::vector<double> mean = ctx.input(3).as_double(), var = ctx.input(4).as_double();
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
  void run_dnnl(KernelContext& ctx, Tensor& y, std::vector<double>& batch_mean, std::vector<double>& batch_var) {
    auto vec = f32_vector(channels_);
    const float* scale = float_params(ctx.input(1), scale_buf_);
    const float* shift = float_params(ctx.input(2), shift_buf_);
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, bind(md_, ctx.input(0))},
                                               {DNNL_ARG_DST, bind(md_, y)},
                                               {DNNL_ARG_SCALE, bind_ptr(vec, scale)},
                                               {DNNL_ARG_SHIFT, bind_ptr(vec, shift)}};
    if (training_) {  // oneDNN writes the batch statistics
      mean_buf_.resize(batch_mean.size());
      var_buf_.resize(batch_var.size());
      args[DNNL_ARG_MEAN] = bind_ptr(vec, mean_buf_.data());
      args[DNNL_ARG_VARIANCE] = bind_ptr(vec, var_buf_.data());
    } else {
      args[DNNL_ARG_MEAN] = bind_ptr(vec, float_params(ctx.input(3), mean_buf_));
      args[DNNL_ARG_VARIANCE] = bind_ptr(vec, float_params(ctx.input(4), var_buf_));
    }
    execute(primitive_, args);
    if (training_) {
      batch_mean.assign(mean_buf_.begin(), mean_buf_.end());
      batch_var.assign(var_buf_.begin(), var_buf_.end());
    }
  }

  template <typename T>
  void run_own(KernelContext& ctx, Tensor& y, std::vector<double>& batch_mean, std::vector<double>& batch_var) {
    const T* x = ctx.input(0).data<T>();
    if (training_) {
      group_moments(x, layout_, batch_mean.data(), batch_var.data());
    } else {
      batch_mean = ctx.input(3).as_double();
      batch_var = ctx.input(4).as_double();
    }
    std::vector<double> a = ctx.input(1).as_double(), b = ctx.input(2).as_double();
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
      pd_ = dnnl::batch_normalization_forward::primitive_desc(d, cpu_engine());
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
      pd_ = dnnl::layer_normalization_forward::primitive_desc(d, cpu_engine());
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
    std::unordered_map<int, dnnl::memory> args{
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
      pd_ = dnnl::lrn_forward::primitive_desc(d, cpu_engine());
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

// Backward of y = gamma_k * (x - mean_k) * inv_k + beta_k over the groups of `g`. With
// `training` the statistics are the group's own (batch) moments, so dx includes their
// derivatives: dx = gamma*inv * (dy - mean(dy) - xhat * mean(dy * xhat)); otherwise
// dx = gamma*inv*dy. Writes the per-group sums of dy (dbias) and dy*xhat (dscale).
template <typename T>
void group_norm_backward(const T* x, const T* dy, T* dx, const GroupLayout& g, const double* mean, const double* inv,
                         const double* gamma, bool training, double* sum_dy, double* sum_dy_xhat) {
  const double n = static_cast<double>(g.group_size());
  parallel_for(
      g.groups,
      [&](int64_t k) {
        const int64_t base = g.group_offset[k];
        const double m = mean[k], iv = inv[k];
        double s1 = 0, s2 = 0;
        for (int64_t r : g.run_offset)
          for (int64_t i = 0; i < g.inner; ++i) {
            const int64_t at = base + r + i;
            const double d = dy[at];
            s1 += d;
            s2 += d * (static_cast<double>(x[at]) - m);
          }
        s2 *= iv;
        sum_dy[k] = s1;
        sum_dy_xhat[k] = s2;
        const double a = gamma[k] * iv;
        if (training && n > 0) {
          const double c1 = s1 / n, c2 = s2 * iv / n;
          for (int64_t r : g.run_offset)
            for (int64_t i = 0; i < g.inner; ++i) {
              const int64_t at = base + r + i;
              dx[at] = static_cast<T>(a * (dy[at] - c1 - (static_cast<double>(x[at]) - m) * c2));
            }
        } else {
          for (int64_t r : g.run_offset)
            for (int64_t i = 0; i < g.inner; ++i) dx[base + r + i] = static_cast<T>(a * dy[base + r + i]);
        }
      },
      group_grain(g));
}

void check_same(const Node& node, const std::vector<InputInfo>& in, size_t a, size_t b, const char* what) {
  if (in[a].dtype != in[b].dtype || in[a].shape != in[b].shape)
    fail_shape(node, std::string(what) + ": input " + std::to_string(a) + " is " + dtype_name(in[a].dtype) +
                         shape_str(in[a].shape) + " but input " + std::to_string(b) + " is " +
                         dtype_name(in[b].dtype) + shape_str(in[b].shape));
}

void require_inputs(const Node& node, const std::vector<InputInfo>& in, size_t n, const char* names) {
  for (size_t i = 0; i < n; ++i)
    if (i >= in.size() || !in[i].present) fail(node, std::string("requires inputs ") + names);
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
    if (in[1].dtype == DType::Float) {
      md_ = ncsp_desc(work_[0], work_[1], work_[2]);
      auto flags = normalization_flags::use_scale | normalization_flags::use_shift;
      if (!training_) flags = flags | normalization_flags::use_global_stats;
      dnnl::batch_normalization_forward::desc fd(prop_kind::forward_training, md_, epsilon_, flags);
      dnnl::batch_normalization_forward::primitive_desc hint(fd, cpu_engine());
      dnnl::batch_normalization_backward::desc bd(prop_kind::backward, md_, md_, epsilon_, flags);
      pd_ = dnnl::batch_normalization_backward::primitive_desc(bd, cpu_engine(), hint);
      primitive_ = dnnl::batch_normalization_backward(pd_);
      zeros_.assign(static_cast<size_t>(channels_), 0.f);
      use_dnnl_ = true;
    }
  }

  void run(KernelContext& ctx) override {
    const Tensor& dy = ctx.input(0);
    const Tensor& x = ctx.input(1);
    const Tensor& scale = ctx.input(2);
    Tensor& dx = ctx.output(0, x.dtype(), x.shape());
    const auto c = static_cast<size_t>(channels_);
    std::vector<double> dscale(c, 0.0), dbias(c, 0.0);
    if (x.numel() > 0) {
      std::vector<double> mean(c), var(c);
      if (has_stats_) {
        mean = ctx.input(3).as_double();
        var = ctx.input(4).as_double();
      } else {
        dispatch_float(x.dtype(), ctx.node(),
                       [&](auto tag) { group_moments(x.data<decltype(tag)>(), layout_, mean.data(), var.data()); });
      }
      if (use_dnnl_) {
        auto vec = f32_vector(channels_);
        std::vector<float> m(mean.begin(), mean.end()), v(var.begin(), var.end()), ds(c), db(c);
        const float* gamma = float_params(scale, scale_buf_);
        execute(primitive_, {{DNNL_ARG_SRC, bind(md_, x)},
                             {DNNL_ARG_DIFF_DST, bind(md_, dy)},
                             {DNNL_ARG_MEAN, bind_ptr(vec, m.data())},
                             {DNNL_ARG_VARIANCE, bind_ptr(vec, v.data())},
                             {DNNL_ARG_SCALE, bind_ptr(vec, gamma)},
                             {DNNL_ARG_SHIFT, bind_ptr(vec, zeros_.data())},
                             {DNNL_ARG_DIFF_SRC, bind(md_, dx)},
                             {DNNL_ARG_DIFF_SCALE, bind_ptr(vec, ds.data())},
                             {DNNL_ARG_DIFF_SHIFT, bind_ptr(vec, db.data())}});
        dscale.assign(ds.begin(), ds.end());
        dbias.assign(db.begin(), db.end());
      } else {
        std::vector<double> gamma = scale.as_double(), inv(c);
        for (size_t i = 0; i < c; ++i) inv[i] = 1.0 / std::sqrt(var[i] + epsilon_);
        dispatch_float(x.dtype(), ctx.node(), [&](auto tag) {
          using T = decltype(tag);
          group_norm_backward<T>(x.data<T>(), dy.data<T>(), dx.data<T>(), layout_, mean.data(), inv.data(),
                                 gamma.data(), training_, dbias.data(), dscale.data());
        });
      }
    }
    store_any(ctx.output(1, scale.dtype(), scale.shape()), dscale, ctx.node());
    if (ctx.num_outputs() > 2) store_any(ctx.output(2, scale.dtype(), scale.shape()), dbias, ctx.node());
  }

 private:
  bool training_ = true, has_stats_ = false, use_dnnl_ = false;
  float epsilon_ = 1e-5f;
  int64_t channels_ = 0;
  std::vector<float> zeros_;  // oneDNN's backward wants a shift argument it does not read
  Shape work_;
  GroupLayout layout_;
  dnnl::memory::desc md_;
  dnnl::batch_normalization_backward::primitive_desc pd_;
  dnnl::batch_normalization_backward primitive_;
  std::vector<float> scale_buf_;
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
  const bool training = batchnorm_training(node);
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
      dnnl::batch_normalization_forward::primitive_desc hint(fd, cpu_engine());
      dnnl::batch_normalization_backward::desc bd(prop_kind::backward, md_, md_, epsilon_, flags);
      pd_ = dnnl::batch_normalization_backward::primitive_desc(bd, cpu_engine(), hint);
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
      dnnl::layer_normalization_forward::primitive_desc hint(fd, cpu_engine());
      dnnl::layer_normalization_backward::desc bd(prop_kind::backward, md_, md_, epsilon_, flags);
      pd_ = dnnl::layer_normalization_backward::primitive_desc(bd, cpu_engine(), hint);
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
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, bind(md_, ctx.input(1))},
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
      fwd_pd_ = dnnl::lrn_forward::primitive_desc(fd, cpu_engine());
      dnnl::lrn_backward::desc bd(dnnl::algorithm::lrn_across_channels, md_, md_, size_, alpha_, beta_, bias_);
      pd_ = dnnl::lrn_backward::primitive_desc(bd, cpu_engine(), fwd_pd_);
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
      std::unordered_map<int, dnnl::memory> args{
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

template <typename K>
KernelFactory factory() {
  return [](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    if (in.empty() || !in[0].present) fail(node, "requires input 0");
    return std::make_unique<K>(node, in);
  };
}

}  // namespace

void register_normalization_ops(Registry& r) {
  const char* t = graph::kTrainingDomain;
  r.add({"", "BatchNormalization", 1, INT_MAX, factory<BatchNormKernel>(), "oneDNN batch_normalization",
         batchnorm_gradient, {3, 4}});
  r.add({"", "InstanceNormalization", 1, INT_MAX, factory<InstanceNormKernel>(), "oneDNN batch_normalization",
         instancenorm_gradient});
  r.add({"", "LayerNormalization", 17, INT_MAX, factory<LayerNormKernel>(), "oneDNN layer_normalization",
         layernorm_gradient});
  r.add({"", "LRN", 1, INT_MAX, factory<LrnKernel>(), "oneDNN lrn", lrn_gradient});
  r.add({"", "MeanVarianceNormalization", 9, INT_MAX, make_mvn, "own", mvn_gradient});
  r.add({t, "BatchNormalizationGrad", 1, INT_MAX, factory<BatchNormGradKernel>(), "oneDNN batch_normalization"});
  r.add({t, "InstanceNormalizationGrad", 1, INT_MAX, factory<InstanceNormGradKernel>(), "oneDNN batch_normalization"});
  r.add({t, "LayerNormalizationGrad", 1, INT_MAX, factory<LayerNormGradKernel>(), "oneDNN layer_normalization"});
  r.add({t, "LRNGrad", 1, INT_MAX, factory<LrnGradKernel>(), "oneDNN lrn"});
  r.add({t, "MeanVarianceNormalizationGrad", 1, INT_MAX, make_mvn_grad, "own"});
}

}  // namespace onnxtrain::ops
