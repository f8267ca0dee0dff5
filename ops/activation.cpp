// Activations that map onto oneDNN's eltwise primitive (float32), with a scalar reference
// formula used for other float types (double) and by tests.
#include <cmath>
#include <functional>
#include <limits>

#include "ops/dnnl_utils.h"
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

// Runs one eltwise primitive, built for the input shape at plan time.
class DnnlEltwiseKernel final : public Kernel {
 public:
  DnnlEltwiseKernel(const Shape& shape, const EltwiseParams& p) : shape_(shape) {
    auto md = plain_desc(shape, DType::Float);
    dnnl::eltwise_forward::desc desc(dnnl::prop_kind::forward_inference, p.algorithm, md, p.alpha, p.beta);
    primitive_ = dnnl::eltwise_forward(dnnl::eltwise_forward::primitive_desc(desc, cpu_engine()));
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
  dnnl::eltwise_forward primitive_;
};

template <typename T>
void apply_reference(const Tensor& x, Tensor& y, ReferenceFn f, double alpha, double beta) {
  const T* in = x.data<T>();
  T* out = y.data<T>();
  parallel_for(x.numel(), [&](int64_t i) { out[i] = static_cast<T>(f(static_cast<double>(in[i]), alpha, beta)); });
}

KernelFactory eltwise_factory(ParamsFn params, ReferenceFn reference) {
  return [params, reference](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    EltwiseParams p = params(node, in);
    if (in[0].dtype == DType::Float && in[0].shape.size() <= 12 && shape_numel(in[0].shape) > 0)
      return std::make_unique<DnnlEltwiseKernel>(in[0].shape, p);
    return make_function_kernel([p, reference](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      Tensor& y = ctx.output(0, x.dtype(), x.shape());
      dispatch_types<float, double, int64_t, int32_t, int8_t>(x.dtype(), ctx.node(), [&](auto t) {
        apply_reference<decltype(t)>(x, y, reference, p.alpha, p.beta);
      });
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

void add_eltwise(Registry& r, const char* op, int since, ParamsFn params, ReferenceFn reference) {
  r.add({"", op, since, INT_MAX, eltwise_factory(std::move(params), reference), "oneDNN eltwise"});
}

}  // namespace

void register_activation_ops(Registry& r) {
  using A = dnnl::algorithm;
  add_eltwise(r, "Relu", 1, fixed(A::eltwise_relu), [](double x, double, double) { return x > 0 ? x : 0.0; });
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
  add_eltwise(r, "Log", 1, fixed(A::eltwise_log), [](double x, double, double) { return std::log(x); });
  add_eltwise(r, "Sqrt", 1, fixed(A::eltwise_sqrt), [](double x, double, double) { return std::sqrt(x); });
  add_eltwise(r, "Abs", 1, fixed(A::eltwise_abs), [](double x, double, double) { return std::abs(x); });
  add_eltwise(r, "Neg", 1, fixed(A::eltwise_linear, -1.f, 0.f), [](double x, double, double) { return -x; });
  r.add({"", "Clip", 1, INT_MAX, make_clip, "oneDNN eltwise"});
}

}  // namespace onnxtrain::ops
