// Activations that map onto oneDNN's eltwise primitive (float32), with a scalar reference
// formula used for the other float types (double, float16, bfloat16) and by tests. Abs, Neg
// and Relu also take integers, computed exactly (not through double).
//
// Gradients: Exp, Log and Neg emit standard ops. The others use one backward kernel class
// (EltwiseGradKernel) on oneDNN's eltwise_backward for float32, with an own loop for
// double/float16/bfloat16, registered in the ai.onnxtrain domain as ReluGrad,
// LeakyReluGrad, EluGrad, SigmoidGrad, TanhGrad, SoftplusGrad, HardSwishGrad, SqrtGrad,
// AbsGrad and ClipGrad: measured 1.8x to 11x faster than the equivalent standard-op
// chains, which also allocate temporaries (tools/bench/bench_grad_ops.cpp,
// docs/gradients.md). Each takes (dY, V) where V is the forward output Y when the attribute
// use_output=1 (oneDNN's *_use_dst_for_bwd algorithms: the forward input need not be kept)
// or the forward input X.
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <type_traits>

#include "ops/dnnl_utils.h"
#include "ops/gradient.h"
#include "ops/half.h"
#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

namespace {

struct EltwiseParams {
  dnnl::algorithm algorithm;
  float alpha = 0.f;
  float beta = 0.f;
};

using ParamsFn = std::function<EltwiseParams(const Node&, const std::vector<InputInfo>&)>;
using ReferenceFn = double (*)(double x, double alpha, double beta);

// Writes NaN into `to` wherever `from` holds NaN (float32, same size).
void copy_nan_span(const float* __restrict f, float* __restrict t, int64_t n) {
  for (int64_t i = 0; i < n; ++i) t[i] = f[i] != f[i] ? f[i] : t[i];  // a blend, so it vectorizes
}

void copy_nan(const Tensor& from, Tensor& to) {
  const float* f = from.data<float>();
  float* t = to.data<float>();
  parallel_chunks(from.numel(), [&](int64_t begin, int64_t end) { copy_nan_span(f + begin, t + begin, end - begin); });
}

// oneDNN 2.6 algorithms that turn a NaN input into a number (measured on its JIT and
// reference paths), which would hide a diverging model: exp gives +inf (relu gives 0 and
// clip a bound; those have own kernels). Their kernels write the NaN back.
bool forward_drops_nan(dnnl::algorithm a) { return a == dnnl::algorithm::eltwise_exp; }

// The same for backward: at a NaN input (or output) the derivative is undefined, so dX is
// NaN as the smooth activations' oneDNN backward gives it; these return dY, alpha * dY or 0.
bool backward_drops_nan(dnnl::algorithm a) {
  using A = dnnl::algorithm;
  for (A d : {A::eltwise_relu, A::eltwise_relu_use_dst_for_bwd, A::eltwise_elu, A::eltwise_elu_use_dst_for_bwd,
              A::eltwise_hardswish, A::eltwise_abs, A::eltwise_clip_v2, A::eltwise_clip_v2_use_dst_for_bwd})
    if (a == d) return true;
  return false;
}

// Runs one eltwise primitive, built for the input shape at plan time.
class DnnlEltwiseKernel final : public Kernel {
 public:
  DnnlEltwiseKernel(const Shape& shape, const EltwiseParams& p)
      : shape_(shape), restore_nan_(forward_drops_nan(p.algorithm)) {
    auto md = plain_desc(shape, DType::Float);
    dnnl::eltwise_forward::desc desc(dnnl::prop_kind::forward_inference, p.algorithm, md, p.alpha, p.beta);
    pd_ = dnnl::eltwise_forward::primitive_desc(desc, arena_scratchpad(), cpu_engine());
    primitive_ = dnnl::eltwise_forward(pd_);
    md_ = md;
  }
  void run(KernelContext& ctx) override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, DType::Float, x.shape());
    if (x.numel() == 0) return;
    execute(primitive_, {{DNNL_ARG_SRC, bind(md_, x)}, {DNNL_ARG_DST, bind(md_, y)}});
    if (restore_nan_) copy_nan(x, y);
  }

 private:
  Shape shape_;
  bool restore_nan_;
  dnnl::memory::desc md_;
  dnnl::eltwise_forward::primitive_desc pd_;  // kept as the hint for the backward primitive
  dnnl::eltwise_forward primitive_;
};

// Relu as PyTorch computes it, NaN passing through: oneDNN's eltwise_relu (and LeakyRelu
// with alpha 0) computes max(x, 0), which turns NaN into 0 and hides a diverging model.
// One pass like oneDNN's.
class ReluKernel final : public Kernel {
 public:
  void run(KernelContext& ctx) override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, DType::Float, x.shape());
    const float* in = x.data<float>();
    float* out = y.data<float>();
    parallel_for(x.numel(), [&](int64_t i) { out[i] = in[i] > 0.f || in[i] != in[i] ? in[i] : 0.f; });
  }
};

template <typename T>
void apply_reference(const Tensor& x, Tensor& y, ReferenceFn f, double alpha, double beta) {
  const T* in = x.data<T>();
  T* out = y.data<T>();
  parallel_for(x.numel(), [&](int64_t i) { out[i] = static_cast<T>(f(static_cast<double>(in[i]), alpha, beta)); });
}

// float16/bfloat16 bits through float.
template <float (*Load)(uint16_t), uint16_t (*Store)(float)>
void apply_reference_16(const Tensor& x, Tensor& y, ReferenceFn f, double alpha, double beta) {
  const auto* in = static_cast<const uint16_t*>(x.raw());
  auto* out = static_cast<uint16_t*>(y.raw());
  parallel_for(x.numel(), [&](int64_t i) { out[i] = Store(static_cast<float>(f(Load(in[i]), alpha, beta))); });
}

// The ops that are exact on integers; negation wraps (INT_MIN stays INT_MIN) instead of
// overflowing.
enum class IntegerOp { None, Abs, Neg, Relu };

template <typename T>
void apply_integer(const Tensor& x, Tensor& y, IntegerOp op) {
  const T* in = x.data<T>();
  T* out = y.data<T>();
  using U = std::make_unsigned_t<T>;
  auto neg = [](T v) { return static_cast<T>(U(0) - static_cast<U>(v)); };
  switch (op) {
    case IntegerOp::Abs: parallel_for(x.numel(), [&](int64_t i) { out[i] = in[i] < 0 ? neg(in[i]) : in[i]; }); break;
    case IntegerOp::Neg: parallel_for(x.numel(), [&](int64_t i) { out[i] = neg(in[i]); }); break;
    case IntegerOp::Relu: parallel_for(x.numel(), [&](int64_t i) { out[i] = in[i] > 0 ? in[i] : T(0); }); break;
    case IntegerOp::None: break;
  }
}

KernelFactory eltwise_factory(ParamsFn params, ReferenceFn reference, IntegerOp integer_op = IntegerOp::None) {
  return [params, reference, integer_op](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    EltwiseParams p = params(node, in);
    if (in[0].dtype == DType::Float && p.algorithm == dnnl::algorithm::eltwise_relu && p.alpha == 0.f)
      return std::make_unique<ReluKernel>();
    if (in[0].dtype == DType::Float && in[0].shape.size() <= 12 && shape_numel(in[0].shape) > 0)
      return std::make_unique<DnnlEltwiseKernel>(in[0].shape, p);
    if (!is_floating(in[0].dtype) && integer_op == IntegerOp::None)
      fail(node, "does not support element type " + dtype_name(in[0].dtype));
    return make_function_kernel([p, reference, integer_op](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      Tensor& y = ctx.output(0, x.dtype(), x.shape());
      if (x.dtype() == DType::Float16)
        apply_reference_16<half_to_float, float_to_half>(x, y, reference, p.alpha, p.beta);
      else if (x.dtype() == DType::BFloat16)
        apply_reference_16<bfloat16_to_float, float_to_bfloat16>(x, y, reference, p.alpha, p.beta);
      else if (is_floating(x.dtype()))
        dispatch_float(x.dtype(), ctx.node(), [&](auto t) { apply_reference<decltype(t)>(x, y, reference, p.alpha, p.beta); });
      else if (integer_op == IntegerOp::Abs && (x.dtype() == DType::UInt8 || x.dtype() == DType::UInt16 ||
                                                 x.dtype() == DType::UInt32 || x.dtype() == DType::UInt64))
        std::memcpy(y.raw(), x.raw(), x.nbytes());
      else
        dispatch_types<int64_t, int32_t, int16_t, int8_t>(x.dtype(), ctx.node(),
                                                          [&](auto t) { apply_integer<decltype(t)>(x, y, integer_op); });
    });
  };
}

ParamsFn fixed(dnnl::algorithm alg, float alpha = 0.f, float beta = 0.f) {
  return [=](const Node&, const std::vector<InputInfo>&) { return EltwiseParams{alg, alpha, beta}; };
}

ParamsFn with_alpha(dnnl::algorithm alg, float default_alpha) {
  return [=](const Node& n, const std::vector<InputInfo>&) {
    return EltwiseParams{alg, n.attr_float("alpha", default_alpha), 0.f};
  };
}

// Clip as np.clip (ONNX's reference) and PyTorch's clamp compute it: NaN passes and an absent
// bound clips nothing, so +-inf stay (ONNX's "lowest()/max()" defaults would turn inf into
// FLT_MAX). An own loop for every type: oneDNN 2.6's eltwise_clip_v2 maps NaN to the lower
// bound, or to -inf when the bounds are infinite. Bounds are attributes before opset 11 and
// optional scalar inputs since, read when the kernel runs (they may be graph inputs).
template <typename T>
void clip_loop(const Tensor& x, Tensor& y, std::optional<double> attr_lo, std::optional<double> attr_hi,
               const Tensor* lo_in, const Tensor* hi_in) {
  using C = compute_t<T>;
  auto bound = [](std::optional<double> attr, const Tensor* in, C none) {
    if (in && in->numel()) return load(cdata<T>(*in)[0]);
    return attr ? static_cast<C>(*attr) : none;
  };
  constexpr bool kFloat = std::is_floating_point_v<C>;
  const C lo = bound(attr_lo, lo_in, kFloat ? -std::numeric_limits<C>::infinity() : std::numeric_limits<C>::lowest());
  const C hi = bound(attr_hi, hi_in, kFloat ? std::numeric_limits<C>::infinity() : std::numeric_limits<C>::max());
  const T* src = cdata<T>(x);
  T* dst = mdata<T>(y);
  // Comparisons with NaN are false, so NaN falls through both selects; min > max gives max.
  parallel_for(x.numel(), [&](int64_t i) {
    C v = load(src[i]);
    v = v < lo ? lo : v;
    dst[i] = store<T>(v > hi ? hi : v);
  });
}

std::unique_ptr<Kernel> make_clip(const Node& node, const std::vector<InputInfo>& in) {
  std::optional<double> lo, hi;
  if (node.opset < 11) {
    if (node.has_attr("min")) lo = node.attr_float("min", 0.f);
    if (node.has_attr("max")) hi = node.attr_float("max", 0.f);
  }
  auto run = [lo, hi](const Node& n, const Tensor& x, Tensor& y, const Tensor* lo_in, const Tensor* hi_in) {
    if (x.dtype() == DType::Float16) return clip_loop<Half>(x, y, lo, hi, lo_in, hi_in);
    if (x.dtype() == DType::BFloat16) return clip_loop<BFloat16>(x, y, lo, hi, lo_in, hi_in);
    dispatch_numeric(x.dtype(), n, [&](auto tag) { clip_loop<decltype(tag)>(x, y, lo, hi, lo_in, hi_in); });
  };
  if (in[0].dtype != DType::Float16 && in[0].dtype != DType::BFloat16)
    dispatch_numeric(in[0].dtype, node, [](auto) {});  // an unsupported type fails at plan time
  return make_function_kernel([run](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, x.dtype(), x.shape());
    run(ctx.node(), x, y, ctx.has_input(1) ? &ctx.input(1) : nullptr, ctx.has_input(2) ? &ctx.input(2) : nullptr);
  });
}

// Log on its own loop: oneDNN 2.6's vectorised log is off by ~1e-6 absolute near 1
// (log(1) = -1.4e-6), which breaks log-likelihoods of well-fitted models.
std::unique_ptr<Kernel> make_log(const Node& node, const std::vector<InputInfo>& in) {
  if (in[0].dtype != DType::Float)
    return eltwise_factory(fixed(dnnl::algorithm::eltwise_log), [](double x, double, double) { return std::log(x); })(node, in);
  return make_function_kernel([](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, DType::Float, x.shape());
    const float* in = x.data<float>();
    float* out = y.data<float>();
    parallel_for(x.numel(), [&](int64_t i) { out[i] = std::log(in[i]); }, 4096);
  });
}


// ---- backward ----------------------------------------------------------------------------

// Derivatives per algorithm, from X (src) or from Y (dst), as templates so the own loop
// inlines them. dd is dY; a and b are the algorithm's alpha and beta.
struct ReluD {
  template <typename T> static T src(T dd, T x, T a, T) { return x > 0 ? dd : a * dd; }
  template <typename T> static T dst(T dd, T y, T a, T) { return y > 0 ? dd : a * dd; }  // needs a >= 0
};
struct EluD {
  template <typename T> static T src(T dd, T x, T a, T) { return x > 0 ? dd : dd * a * std::exp(x); }
  template <typename T> static T dst(T dd, T y, T a, T) { return y > 0 ? dd : dd * (y + a); }  // needs a >= 0
};
struct SigmoidD {
  template <typename T> static T src(T dd, T x, T, T) {
    T s = T(1) / (T(1) + std::exp(-x));
    return dd * s * (T(1) - s);
  }
  template <typename T> static T dst(T dd, T y, T, T) { return dd * y * (T(1) - y); }
};
struct TanhD {
  template <typename T> static T src(T dd, T x, T, T) {
    T t = std::tanh(x);
    return dd * (T(1) - t * t);
  }
  template <typename T> static T dst(T dd, T y, T, T) { return dd * (T(1) - y * y); }
};
struct SoftplusD {
  template <typename T> static T src(T dd, T x, T, T) { return dd / (T(1) + std::exp(-x)); }
  template <typename T> static T dst(T dd, T, T, T) { return dd; }  // unused (no use_dst form)
};
struct HardSwishD {
  template <typename T> static T src(T dd, T x, T, T) {
    return x <= T(-3) ? T(0) : x >= T(3) ? dd : dd * (T(2) * x + T(3)) / T(6);
  }
  template <typename T> static T dst(T dd, T, T, T) { return dd; }  // unused
};
// GELU (exact erf form and the tanh approximation) and Mish, as d/dx.
struct GeluErfD {
  template <typename T> static T src(T dd, T x, T, T) {
    const T cdf = T(0.5) * (T(1) + std::erf(x / std::sqrt(T(2))));
    return dd * (cdf + x * std::exp(T(-0.5) * x * x) / std::sqrt(T(2) * T(M_PI)));
  }
  template <typename T> static T dst(T dd, T, T, T) { return dd; }  // unused
};
struct GeluTanhD {
  template <typename T> static T src(T dd, T x, T, T) {
    const T k = std::sqrt(T(2) / T(M_PI));
    const T t = std::tanh(k * (x + T(0.044715) * x * x * x));
    return dd * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * k * (T(1) + T(3) * T(0.044715) * x * x));
  }
  template <typename T> static T dst(T dd, T, T, T) { return dd; }  // unused
};
struct MishD {
  template <typename T> static T src(T dd, T x, T, T) {
    const T sp = x > T(20) ? x : std::log1p(std::exp(x));
    const T t = std::tanh(sp);
    return dd * (t + x * (T(1) - t * t) / (T(1) + std::exp(-x)));
  }
  template <typename T> static T dst(T dd, T, T, T) { return dd; }  // unused
};
struct SqrtD {
  template <typename T> static T src(T dd, T x, T, T) { return dd / (T(2) * std::sqrt(x)); }
  template <typename T> static T dst(T dd, T y, T, T) { return dd / (T(2) * y); }
};
struct AbsD {
  template <typename T> static T src(T dd, T x, T, T) { return x > 0 ? dd : x < 0 ? -dd : T(0); }
  template <typename T> static T dst(T dd, T, T, T) { return dd; }  // unused
};
// Clip passes the gradient only strictly inside (lo, hi); from Y this is the same test,
// since a clipped value equals a bound.
struct ClipD {
  template <typename T> static T src(T dd, T x, T lo, T hi) { return lo < x && x < hi ? dd : T(0); }
  template <typename T> static T dst(T dd, T y, T lo, T hi) { return lo < y && y < hi ? dd : T(0); }
};

template <typename D, bool kUseDst, typename T, typename Load, typename Store>
void eltwise_grad_loop(int64_t n, const void* dy, const void* v, void* dx, double alpha, double beta, Load load,
                       Store store) {
  using S = std::conditional_t<std::is_same_v<T, double>, double, std::conditional_t<std::is_same_v<T, float>, float, uint16_t>>;
  using C = std::conditional_t<std::is_same_v<T, double>, double, float>;
  const S* g = static_cast<const S*>(dy);
  const S* x = static_cast<const S*>(v);
  S* out = static_cast<S*>(dx);
  const C a = static_cast<C>(alpha), b = static_cast<C>(beta);
  parallel_for(n, [&](int64_t i) {
    const C v = load(x[i]);
    C r = kUseDst ? D::template dst<C>(load(g[i]), v, a, b) : D::template src<C>(load(g[i]), v, a, b);
    out[i] = store(v != v ? v : r);  // NaN in, NaN out (see backward_drops_nan)
  }, 8192);
}

double scalar_value(const Tensor& t) {
  switch (t.dtype()) {
    case DType::Float: return t.data<float>()[0];
    case DType::Double: return t.data<double>()[0];
    case DType::Float16: return half_to_float(static_cast<const uint16_t*>(t.raw())[0]);
    case DType::BFloat16: return bfloat16_to_float(static_cast<const uint16_t*>(t.raw())[0]);
    default: throw ModelError("bound must be a float scalar, got " + dtype_name(t.dtype()));
  }
}

// ai.onnxtrain.<Op>Grad(dY, V[, min, max]) -> dX. Attributes: use_output (V is Y, else X),
// alpha, beta (ClipGrad: bounds when the min/max inputs are absent; min/max inputs may be
// runtime values, then the own loop reads them).
template <typename D>
class EltwiseGradKernel final : public Kernel {
 public:
  EltwiseGradKernel(const Node& node, const std::vector<InputInfo>& in, dnnl::algorithm src_alg,
                    std::optional<dnnl::algorithm> dst_alg, bool clip) {
    if (in.size() < 2 || !in[0].present || !in[1].present) fail(node, "expects inputs dY and X (or Y)");
    if (in[0].dtype != in[1].dtype || in[0].shape != in[1].shape)
      fail_shape(node, "dY and X/Y differ in type or shape");
    dtype_ = in[0].dtype;
    shape_ = in[0].shape;
    if (!is_floating(dtype_)) fail(node, "does not support element type " + dtype_name(dtype_));
    use_dst_ = node.attr_int("use_output", 0) != 0;
    if (use_dst_ && !dst_alg) fail(node, "has no form that uses the forward output (use_output=1)");
    alpha_ = node.attr_float("alpha", clip ? -std::numeric_limits<float>::infinity() : 0.f);
    beta_ = node.attr_float("beta", clip ? std::numeric_limits<float>::infinity() : 0.f);
    bool bounds_known = true;
    if (clip) {
      for (size_t i = 2; i < 4; ++i) {
        if (i >= in.size() || !in[i].present) continue;
        runtime_bound_[i - 2] = true;
        if (in[i].constant && in[i].constant->numel() == 1) {
          (i == 2 ? alpha_ : beta_) = scalar_value(*in[i].constant);
          runtime_bound_[i - 2] = false;
        }
        bounds_known = bounds_known && !runtime_bound_[i - 2];
      }
    }
    if (dtype_ == DType::Float && bounds_known && shape_.size() <= 12 && shape_numel(shape_) > 0) {
      float a = static_cast<float>(alpha_), b = static_cast<float>(beta_);
      if (clip) {  // oneDNN gets finite bounds; a clipped value then still equals the bound
        a = std::max(a, std::numeric_limits<float>::lowest());
        b = std::min(b, std::numeric_limits<float>::max());
      }
      const dnnl::algorithm alg = use_dst_ ? *dst_alg : src_alg;
      md_ = plain_desc(shape_, DType::Float);
      dnnl::eltwise_forward::primitive_desc hint(
          dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training, alg, md_, a, b), arena_scratchpad(), cpu_engine());
      pd_ = dnnl::eltwise_backward::primitive_desc(dnnl::eltwise_backward::desc(alg, md_, md_, a, b), arena_scratchpad(), cpu_engine(), hint);
      primitive_ = dnnl::eltwise_backward(pd_);
      dnnl_ = true;
      restore_nan_ = backward_drops_nan(alg);
    }
  }

  void run(KernelContext& ctx) override {
    const Tensor& dy = ctx.input(0);
    const Tensor& v = ctx.input(1);
    Tensor& dx = ctx.output(0, dtype_, dy.shape());
    if (dy.numel() == 0) return;
    if (dnnl_) {
      execute(primitive_, {{DNNL_ARG_DIFF_DST, bind(md_, dy)},
                           {use_dst_ ? DNNL_ARG_DST : DNNL_ARG_SRC, bind(md_, v)},
                           {DNNL_ARG_DIFF_SRC, bind(md_, dx)}});
      if (restore_nan_) copy_nan(v, dx);
      return;
    }
    double a = alpha_, b = beta_;
    if (runtime_bound_[0] && ctx.has_input(2) && ctx.input(2).numel()) a = scalar_value(ctx.input(2));
    if (runtime_bound_[1] && ctx.has_input(3) && ctx.input(3).numel()) b = scalar_value(ctx.input(3));
    const int64_t n = dy.numel();
    auto same = [](auto x) { return x; };
    if (use_dst_) dispatch<true>(n, dy, v, dx, a, b, same);
    else dispatch<false>(n, dy, v, dx, a, b, same);
  }

 private:
  template <bool kUseDst, typename Same>
  void dispatch(int64_t n, const Tensor& dy, const Tensor& v, Tensor& dx, double a, double b, Same same) {
    switch (dtype_) {
      case DType::Double: eltwise_grad_loop<D, kUseDst, double>(n, dy.raw(), v.raw(), dx.raw(), a, b, same, same); break;
      case DType::Float: eltwise_grad_loop<D, kUseDst, float>(n, dy.raw(), v.raw(), dx.raw(), a, b, same, same); break;
      case DType::Float16:
        eltwise_grad_loop<D, kUseDst, uint16_t>(n, dy.raw(), v.raw(), dx.raw(), a, b, half_to_float, float_to_half);
        break;
      case DType::BFloat16:
        eltwise_grad_loop<D, kUseDst, uint16_t>(n, dy.raw(), v.raw(), dx.raw(), a, b, bfloat16_to_float,
                                                float_to_bfloat16);
        break;
      default: break;
    }
  }

  DType dtype_;
  Shape shape_;
  bool use_dst_ = false;
  double alpha_ = 0, beta_ = 0;
  bool runtime_bound_[2] = {false, false};
  bool dnnl_ = false;
  bool restore_nan_ = false;
  dnnl::memory::desc md_;
  dnnl::eltwise_backward::primitive_desc pd_;
  dnnl::eltwise_backward primitive_;
};

// ReluGrad / LeakyReluGrad in float: dY where the forward value (X or Y, same sign for
// alpha >= 0) is positive, alpha * dY elsewhere, NaN where it is NaN, in one pass. oneDNN's
// backward plus the pass restoring NaN (copy_nan) took 4x Relu's forward time (squeezenet1_1).
// Branch-free, so it vectorizes. kZero: exactly 0 where x <= 0, as PyTorch's
// threshold_backward, even for an inf or NaN dY (alpha * dY would give NaN there).
template <bool kZero>
void relu_grad_span(const float* __restrict d, const float* __restrict v, float* __restrict out, int64_t n, float a) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = v[i], g = d[i];
    const float r = x > 0.f ? g : (kZero ? 0.f : a * g);
    out[i] = x != x ? x : r;
  }
}

class ReluGradKernel final : public Kernel {
 public:
  explicit ReluGradKernel(float alpha) : alpha_(alpha) {}
  void run(KernelContext& ctx) override {
    const Tensor& dy = ctx.input(0);
    const Tensor& v = ctx.input(1);
    Tensor& dx = ctx.output(0, DType::Float, dy.shape());
    const float* d = dy.data<float>();
    const float* f = v.data<float>();
    float* out = dx.data<float>();
    const float a = alpha_;
    parallel_chunks(dy.numel(), [&](int64_t begin, int64_t end) {
      if (a == 0.f) relu_grad_span<true>(d + begin, f + begin, out + begin, end - begin, a);
      else relu_grad_span<false>(d + begin, f + begin, out + begin, end - begin, a);
    });
  }

 private:
  float alpha_;
};

bool own_relu_grad(const Node& node, const std::vector<InputInfo>& in) {
  const bool dst_form = node.attr_int("use_output", 0) != 0;
  return in.size() >= 2 && in[0].present && in[1].present && in[0].dtype == DType::Float &&
         in[1].dtype == DType::Float && in[0].shape == in[1].shape &&
         (!dst_form || node.attr_float("alpha", 0.f) >= 0.f);
}

template <typename D>
void add_eltwise_grad(Registry& r, const char* name, dnnl::algorithm src_alg, std::optional<dnnl::algorithm> dst_alg,
                      bool clip = false) {
  r.add({graph::kTrainingDomain, name, 1, INT_MAX,
         [=](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
           if constexpr (std::is_same_v<D, ReluD>)
             if (own_relu_grad(node, in)) return std::make_unique<ReluGradKernel>(node.attr_float("alpha", 0.f));
           return std::make_unique<EltwiseGradKernel<D>>(node, in, src_alg, dst_alg, clip);
         },
         "oneDNN eltwise_backward"});
}

// dX = <grad_op>(dY, Y or X). `use_output` picks Y (the forward input then need not be kept).
void emit_eltwise_grad(GradientBuilder& b, const char* grad_op, bool use_output, Attributes attrs = {}) {
  attrs["use_output"] = int64_t{use_output ? 1 : 0};
  b.GI(0, b.train_op(grad_op, {b.GO(0), use_output ? b.O(0) : b.I(0)}, std::move(attrs)));
}

template <const char* kGradOp, bool kUseOutput>
void simple_gradient(GradientBuilder& b) {
  emit_eltwise_grad(b, kGradOp, kUseOutput);
}

constexpr char kGeluGrad[] = "GeluGrad", kGeluTanhGrad[] = "GeluTanhGrad", kMishGrad[] = "MishGrad";

bool gelu_tanh(const Node& n) {
  const std::string a = n.attr_string("approximate", "none");
  if (a != "none" && a != "tanh") fail(n, "approximate must be 'none' or 'tanh', got '" + a + "'");
  return a == "tanh";
}

void gelu_gradient(GradientBuilder& b) {
  emit_eltwise_grad(b, gelu_tanh(b.node()) ? kGeluTanhGrad : kGeluGrad, false);
}

double gelu_reference(double x, double tanh_form, double) {
  if (tanh_form != 0) return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
  return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
}

constexpr char kReluGrad[] = "ReluGrad", kSigmoidGrad[] = "SigmoidGrad", kTanhGrad[] = "TanhGrad",
               kSoftplusGrad[] = "SoftplusGrad", kHardSwishGrad[] = "HardSwishGrad", kSqrtGrad[] = "SqrtGrad",
               kAbsGrad[] = "AbsGrad";

// LeakyRelu/Elu: the sign of Y tells the branch only for alpha >= 0 (oneDNN's use_dst forms
// require it too); a negative alpha reads X.
void leaky_relu_gradient(GradientBuilder& b) {
  float alpha = b.node().attr_float("alpha", 0.01f);
  emit_eltwise_grad(b, "LeakyReluGrad", alpha >= 0, {{"alpha", alpha}});
}

void elu_gradient(GradientBuilder& b) {
  float alpha = b.node().attr_float("alpha", 1.0f);
  emit_eltwise_grad(b, "EluGrad", alpha >= 0, {{"alpha", alpha}});
}

void neg_gradient(GradientBuilder& b) { b.GI(0, b.neg(b.GO(0))); }

// Exp and Log: one standard op is faster than oneDNN's fused backward
// (tools/bench/bench_grad_ops.cpp, docs/gradients.md).
void exp_gradient(GradientBuilder& b) { b.GI(0, b.mul(b.GO(0), b.O(0))); }
void log_gradient(GradientBuilder& b) { b.GI(0, b.div(b.GO(0), b.I(0))); }

// Clip: dX = dY strictly inside (min, max), read from Y; no gradient to min/max.
void clip_gradient(GradientBuilder& b) {
  const Node& n = b.node();
  Attributes attrs{{"use_output", int64_t{1}}};
  std::vector<Value*> inputs{b.GO(0), b.O(0)};
  if (n.opset < 11) {
    attrs["alpha"] = n.attr_float("min", std::numeric_limits<float>::lowest());
    attrs["beta"] = n.attr_float("max", std::numeric_limits<float>::max());
  } else {
    inputs.push_back(n.has_input(1) ? n.inputs[1] : nullptr);
    inputs.push_back(n.has_input(2) ? n.inputs[2] : nullptr);
    while (!inputs.back()) inputs.pop_back();
  }
  b.GI(0, b.train_op("ClipGrad", std::move(inputs), std::move(attrs)));
}

}  // namespace

void register_activation_ops(Registry& r) {
  using A = dnnl::algorithm;
  auto add = [&r](const char* op, int since, ParamsFn params, ReferenceFn reference, GradientRule gradient,
                  IntegerOp integer_op = IntegerOp::None) {
    r.add({"", op, since, INT_MAX, eltwise_factory(std::move(params), reference, integer_op), "oneDNN eltwise",
           std::move(gradient)});
  };
  add("Relu", 1, fixed(A::eltwise_relu), [](double x, double, double) { return x > 0 || std::isnan(x) ? x : 0.0; },
      simple_gradient<kReluGrad, true>, IntegerOp::Relu);
  add("LeakyRelu", 1, with_alpha(A::eltwise_relu, 0.01f),
      [](double x, double a, double) { return x > 0 || std::isnan(x) ? x : a * x; },
      leaky_relu_gradient);
  add("Elu", 1, with_alpha(A::eltwise_elu, 1.0f),
      [](double x, double a, double) { return x > 0 ? x : a * (std::exp(x) - 1); }, elu_gradient);
  add("Sigmoid", 1, fixed(A::eltwise_logistic), [](double x, double, double) { return 1 / (1 + std::exp(-x)); },
      simple_gradient<kSigmoidGrad, true>);
  add("Tanh", 1, fixed(A::eltwise_tanh), [](double x, double, double) { return std::tanh(x); },
      simple_gradient<kTanhGrad, true>);
  add("Softplus", 1, fixed(A::eltwise_soft_relu), [](double x, double, double) {
    return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
  }, simple_gradient<kSoftplusGrad, false>);
  add("HardSwish", 14, fixed(A::eltwise_hardswish),
      [](double x, double, double) { return x * std::min(std::max(x / 6 + 0.5, 0.0), 1.0); },
      simple_gradient<kHardSwishGrad, false>);
  add("Exp", 1, fixed(A::eltwise_exp), [](double x, double, double) { return std::exp(x); },
      exp_gradient);
  r.add({"", "Log", 1, INT_MAX, make_log, "own", log_gradient});
  add("Sqrt", 1, fixed(A::eltwise_sqrt), [](double x, double, double) { return std::sqrt(x); },
      simple_gradient<kSqrtGrad, true>);
  add("Abs", 1, fixed(A::eltwise_abs), [](double x, double, double) { return std::abs(x); },
      simple_gradient<kAbsGrad, false>, IntegerOp::Abs);
  add("Neg", 1, fixed(A::eltwise_linear, -1.f, 0.f), [](double x, double, double) { return -x; }, neg_gradient,
      IntegerOp::Neg);
  add("Mish", 18, fixed(A::eltwise_mish), [](double x, double, double) { return x * std::tanh(std::log1p(std::exp(x))); },
      simple_gradient<kMishGrad, false>);
  // The reference function reads the form from alpha (1: tanh); oneDNN from the algorithm.
  add("Gelu", 20, [](const Node& n, const std::vector<InputInfo>&) {
    return gelu_tanh(n) ? EltwiseParams{A::eltwise_gelu_tanh, 1.f, 0.f} : EltwiseParams{A::eltwise_gelu_erf, 0.f, 0.f};
  }, gelu_reference, gelu_gradient);
  // min/max get no gradient.
  r.add({"", "Clip", 1, INT_MAX, make_clip, "oneDNN eltwise", clip_gradient, {1, 2}});

  add_eltwise_grad<ReluD>(r, "ReluGrad", A::eltwise_relu, A::eltwise_relu_use_dst_for_bwd);
  add_eltwise_grad<ReluD>(r, "LeakyReluGrad", A::eltwise_relu, A::eltwise_relu_use_dst_for_bwd);
  add_eltwise_grad<EluD>(r, "EluGrad", A::eltwise_elu, A::eltwise_elu_use_dst_for_bwd);
  add_eltwise_grad<SigmoidD>(r, "SigmoidGrad", A::eltwise_logistic, A::eltwise_logistic_use_dst_for_bwd);
  add_eltwise_grad<TanhD>(r, "TanhGrad", A::eltwise_tanh, A::eltwise_tanh_use_dst_for_bwd);
  add_eltwise_grad<SoftplusD>(r, "SoftplusGrad", A::eltwise_soft_relu, std::nullopt);
  add_eltwise_grad<HardSwishD>(r, "HardSwishGrad", A::eltwise_hardswish, std::nullopt);
  add_eltwise_grad<GeluErfD>(r, kGeluGrad, A::eltwise_gelu_erf, std::nullopt);
  add_eltwise_grad<GeluTanhD>(r, kGeluTanhGrad, A::eltwise_gelu_tanh, std::nullopt);
  add_eltwise_grad<MishD>(r, kMishGrad, A::eltwise_mish, std::nullopt);
  add_eltwise_grad<SqrtD>(r, "SqrtGrad", A::eltwise_sqrt, A::eltwise_sqrt_use_dst_for_bwd);
  add_eltwise_grad<AbsD>(r, "AbsGrad", A::eltwise_abs, std::nullopt);
  add_eltwise_grad<ClipD>(r, "ClipGrad", A::eltwise_clip_v2, A::eltwise_clip_v2_use_dst_for_bwd, true);
}

}  // namespace onnxtrain::ops
