// Activations that map onto oneDNN's eltwise primitive (float32), with a scalar reference
// formula used for the other float types (double, float16, bfloat16) and by tests. Abs, Neg
// and Relu also take integers, computed exactly (not through double).
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <type_traits>

#include "ops/dnnl_utils.h"
#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

// Defined in ops/elementwise.cpp.
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
float bfloat16_to_float(uint16_t h);
uint16_t float_to_bfloat16(float f);

namespace {

struct EltwiseParams {
  dnnl::algorithm algorithm;
  float alpha = 0.f;
  float beta = 0.f;
};

using ParamsFn = std::function<EltwiseParams(const Node&, const std::vector<InputInfo>&)>;
using ReferenceFn = double (*)(double x, double alpha, double beta);

// Runs one eltwise primitive, built for the input shape at plan time.
class DnnlEltwiseKernel final : public Kernel {
 public:
  DnnlEltwiseKernel(const Shape& shape, const EltwiseParams& p) : shape_(shape) {
    auto md = plain_desc(shape, DType::Float);
    dnnl::eltwise_forward::desc desc(dnnl::prop_kind::forward_inference, p.algorithm, md, p.alpha, p.beta);
    pd_ = dnnl::eltwise_forward::primitive_desc(desc, cpu_engine());
    primitive_ = dnnl::eltwise_forward(pd_);
    md_ = md;
  }
  void run(KernelContext& ctx) override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, DType::Float, x.shape());
    if (x.numel() == 0) return;
    execute(primitive_, {{DNNL_ARG_SRC, bind(md_, x)}, {DNNL_ARG_DST, bind(md_, y)}});
  }

 private:
  Shape shape_;
  dnnl::memory::desc md_;
  dnnl::eltwise_forward::primitive_desc pd_;  // kept as the hint for the backward primitive
  dnnl::eltwise_forward primitive_;
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

// Clip: bounds are attributes before opset 11, optional inputs after; a runtime bound
// must be a constant for the oneDNN path, otherwise the kernel reads it when it runs.
std::unique_ptr<Kernel> make_clip(const Node& node, const std::vector<InputInfo>& in) {
  if (node.opset < 11) {
    float lo = node.attr_float("min", std::numeric_limits<float>::lowest());
    float hi = node.attr_float("max", std::numeric_limits<float>::max());
    return eltwise_factory(fixed(dnnl::algorithm::eltwise_clip_v2, lo, hi),
                           [](double x, double a, double b) { return std::min(std::max(x, a), b); })(node, in);
  }
  if (in[0].dtype == DType::Float) {
    auto bound = [&](size_t i, float fallback) -> std::optional<float> {
      if (i >= in.size() || !in[i].present) return fallback;
      if (in[i].constant && in[i].constant->dtype() == DType::Float && in[i].constant->numel() == 1)
        return in[i].constant->data<float>()[0];
      return std::nullopt;
    };
    auto lo = bound(1, std::numeric_limits<float>::lowest()), hi = bound(2, std::numeric_limits<float>::max());
    if (lo && hi)
      return eltwise_factory(fixed(dnnl::algorithm::eltwise_clip_v2, *lo, *hi),
                             [](double x, double a, double b) { return std::min(std::max(x, a), b); })(node, in);
  }
  return make_function_kernel([](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, x.dtype(), x.shape());
    dispatch_numeric(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      T lo = std::numeric_limits<T>::lowest(), hi = std::numeric_limits<T>::max();
      if (ctx.has_input(1) && ctx.input(1).numel()) lo = ctx.input(1).data<T>()[0];
      if (ctx.has_input(2) && ctx.input(2).numel()) hi = ctx.input(2).data<T>()[0];
      const T* src = x.data<T>();
      T* dst = y.data<T>();
      parallel_for(x.numel(), [&](int64_t i) { dst[i] = std::min(std::max(src[i], lo), hi); });
    });
  });
}

void add_eltwise(Registry& r, const char* op, int since, ParamsFn params, ReferenceFn reference,
                 IntegerOp integer_op = IntegerOp::None) {
  r.add({"", op, since, INT_MAX, eltwise_factory(std::move(params), reference, integer_op), "oneDNN eltwise"});
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

}  // namespace

void register_activation_ops(Registry& r) {
  using A = dnnl::algorithm;
  add_eltwise(r, "Relu", 1, fixed(A::eltwise_relu), [](double x, double, double) { return x > 0 ? x : 0.0; },
              IntegerOp::Relu);
  add_eltwise(r, "LeakyRelu", 1, with_alpha(A::eltwise_relu, 0.01f),
              [](double x, double a, double) { return x > 0 ? x : a * x; });
  add_eltwise(r, "Elu", 1, with_alpha(A::eltwise_elu, 1.0f),
              [](double x, double a, double) { return x > 0 ? x : a * (std::exp(x) - 1); });
  add_eltwise(r, "Sigmoid", 1, fixed(A::eltwise_logistic), [](double x, double, double) { return 1 / (1 + std::exp(-x)); });
  add_eltwise(r, "Tanh", 1, fixed(A::eltwise_tanh), [](double x, double, double) { return std::tanh(x); });
  add_eltwise(r, "Softplus", 1, fixed(A::eltwise_soft_relu), [](double x, double, double) {
    return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
  });
  add_eltwise(r, "HardSwish", 14, fixed(A::eltwise_hardswish),
              [](double x, double, double) { return x * std::min(std::max(x / 6 + 0.5, 0.0), 1.0); });
  add_eltwise(r, "Exp", 1, fixed(A::eltwise_exp), [](double x, double, double) { return std::exp(x); });
  r.add({"", "Log", 1, INT_MAX, make_log, "own"});
  add_eltwise(r, "Sqrt", 1, fixed(A::eltwise_sqrt), [](double x, double, double) { return std::sqrt(x); });
  add_eltwise(r, "Abs", 1, fixed(A::eltwise_abs), [](double x, double, double) { return std::abs(x); }, IntegerOp::Abs);
  add_eltwise(r, "Neg", 1, fixed(A::eltwise_linear, -1.f, 0.f), [](double x, double, double) { return -x; },
              IntegerOp::Neg);
  r.add({"", "Clip", 1, INT_MAX, make_clip, "oneDNN eltwise"});
}

}  // namespace onnxtrain::ops
