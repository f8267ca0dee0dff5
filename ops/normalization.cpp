// Normalization family: BatchNormalization, InstanceNormalization, LayerNormalization, LRN,
// MeanVarianceNormalization. float32 runs on oneDNN's batch/layer normalization and LRN
// primitives where their semantics match ONNX exactly; double and the remaining cases use
// the grouped-moments loops below (statistics always accumulated in double).
#include <algorithm>
#include <cmath>
#include <variant>

#include "ops/dnnl_utils.h"
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
    if (node.opset < 7)
      training_ = node.attr_int("is_test", 0) == 0;
    else if (node.opset < 14)
      training_ = std::any_of(node.outputs.begin() + std::min<size_t>(1, node.outputs.size()), node.outputs.end(),
                              [](const auto* v) { return v != nullptr; });
    else
      training_ = node.attr_int("training_mode", 0) != 0;
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
      md_ = plain_desc({1, instances_, spatial}, DType::Float);
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

template <typename K>
KernelFactory factory() {
  return [](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    if (in.empty() || !in[0].present) fail(node, "requires input 0");
    return std::make_unique<K>(node, in);
  };
}

}  // namespace

void register_normalization_ops(Registry& r) {
  r.add({"", "BatchNormalization", 1, INT_MAX, factory<BatchNormKernel>(), "oneDNN batch_normalization"});
  r.add({"", "InstanceNormalization", 1, INT_MAX, factory<InstanceNormKernel>(), "oneDNN batch_normalization"});
  r.add({"", "LayerNormalization", 17, INT_MAX, factory<LayerNormKernel>(), "oneDNN layer_normalization"});
  r.add({"", "LRN", 1, INT_MAX, factory<LrnKernel>(), "oneDNN lrn"});
  r.add({"", "MeanVarianceNormalization", 9, INT_MAX, make_mvn, "own"});
}

}  // namespace onnxtrain::ops
