// Unary elementwise operators that oneDNN has no exact primitive for (own loops), the ones
// it has (Round for float32, on its eltwise primitive), and
// Cast/CastLike. float16/bfloat16 are computed in float32 and rounded back to nearest even.
//
// Gradients: rules of standard ONNX ops (Cos, Exp, Sqrt, Mul, Div, Where, ...) from X, or
// from Y where that determines the derivative. Cast/CastLike cast dY back; Floor, Ceil, Round
// and Sign have explicit zero gradients; IsNaN, IsInf and Not are not differentiable.
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "ops/dnnl_utils.h"
#include "ops/gradient.h"
#include "ops/half.h"
#include "ops/op_utils.h"
#include "ops/registry.h"
#include "ops/unary_gradient.h"

namespace onnxtrain::ops {

namespace {

// Rounds a double directly to a binary format with kExp exponent and kMan mantissa bits
// (to nearest even; direct, so double -> float16 never rounds twice).
template <int kExp, int kMan>
uint16_t double_to_small_float(double d) {
  constexpr int bias = (1 << (kExp - 1)) - 1;
  constexpr int emin = 1 - bias;
  constexpr uint32_t inf = ((1u << kExp) - 1) << kMan;
  const uint16_t sign = std::signbit(d) ? static_cast<uint16_t>(1u << (kExp + kMan)) : 0;
  if (std::isnan(d)) return sign | inf | (1u << (kMan - 1));
  double a = std::fabs(d);
  if (a == 0) return sign;
  if (std::isinf(a)) return sign | inf;
  int e;
  std::frexp(a, &e);
  --e;  // a in [2^e, 2^(e+1))
  if (e < emin)  // subnormal; a mantissa of 2^kMan carries into the smallest normal
    return sign | static_cast<uint16_t>(std::nearbyint(std::ldexp(a, kMan - emin)));
  if (e + bias >= static_cast<int>((1u << kExp) - 1)) return sign | inf;
  auto m = static_cast<uint32_t>(std::nearbyint(std::ldexp(a, kMan - e)));  // in [2^kMan, 2^(kMan+1)]
  uint32_t bits = (static_cast<uint32_t>(e + bias) << kMan) + (m - (1u << kMan));
  return sign | static_cast<uint16_t>(std::min(bits, inf));
}

template <typename... Ts, typename F>
void dispatch(DType dtype, const Node& node, F&& f) {
  bool done = false;
  ((!done && dtype == dtype_for<Ts>() ? (f(Ts{}), done = true) : false), ...);
  if (!done) fail(node, "does not support element type " + dtype_name(dtype));
}
#define ONNXTRAIN_FLOAT_TYPES float, double, Half, BFloat16
#define ONNXTRAIN_ALL_TYPES \
  float, double, Half, BFloat16, int64_t, int32_t, int16_t, int8_t, uint64_t, uint32_t, uint16_t, uint8_t, bool

// y[i] = f(x[i]) where f works on compute_t<In> and its result is stored as Out.
template <typename In, typename Out, typename F>
void map_elements(const Tensor& x, Tensor& y, F f) {
  const In* in = cdata<In>(x);
  Out* out = mdata<Out>(y);
  parallel_for(x.numel(), [&](int64_t i) {
    auto r = f(load(in[i]));
    if constexpr (is_half_v<Out>) out[i] = store<Out>(static_cast<float>(r));
    else out[i] = static_cast<Out>(r);
  });
}

// A same-type unary op over the given element types.
template <typename... Ts, typename MakeF>
KernelFactory unary(MakeF make_f) {
  return [make_f](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    dispatch<Ts...>(in.at(0).dtype, node, [](auto) {});
    auto f = make_f(node);
    return make_function_kernel([f](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      Tensor& y = ctx.output(0, x.dtype(), x.shape());
      dispatch<Ts...>(x.dtype(), ctx.node(), [&](auto tag) { map_elements<decltype(tag), decltype(tag)>(x, y, f); });
    });
  };
}

// A function that needs no attributes.
template <typename F>
auto plain(F f) {
  return [f](const Node&) { return f; };
}

// float32 on a oneDNN eltwise primitive; the own-loop factory covers the other types and
// empty or very high-rank tensors.
class DnnlEltwiseKernel final : public Kernel {
 public:
  DnnlEltwiseKernel(const Shape& shape, dnnl::algorithm algorithm) {
    md_ = plain_desc(shape, DType::Float);
    dnnl::eltwise_forward::desc desc(dnnl::prop_kind::forward_inference, algorithm, md_, 0.f, 0.f);
    pd_ = dnnl::eltwise_forward::primitive_desc(desc, arena_scratchpad(), cpu_engine());
    primitive_ = dnnl::eltwise_forward(pd_);
  }
  void run(KernelContext& ctx) override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, DType::Float, x.shape());
    execute(primitive_, {{DNNL_ARG_SRC, bind(md_, x)}, {DNNL_ARG_DST, bind(md_, y)}});
  }

 private:
  dnnl::memory::desc md_;
  dnnl::eltwise_forward::primitive_desc pd_;
  dnnl::eltwise_forward primitive_;
};

KernelFactory with_dnnl_float(dnnl::algorithm algorithm, KernelFactory fallback) {
  return [algorithm, fallback](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    if (in[0].dtype == DType::Float && in[0].shape.size() <= 12 && shape_numel(in[0].shape) > 0)
      return std::make_unique<DnnlEltwiseKernel>(in[0].shape, algorithm);
    return fallback(node, in);
  };
}

// ---- Cast -------------------------------------------------------------------------------

// Float to integer is undefined in C++ outside the target range: NaN becomes 0 and
// out-of-range values saturate (ONNX leaves both unspecified).
template <typename To, typename From>
To convert(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (is_half_v<From>) {
    return convert<To>(load(v));
  } else if constexpr (std::is_same_v<To, bool>) {
    return v != From(0);
  } else if constexpr (std::is_same_v<To, Half>) {
    if constexpr (std::is_same_v<From, float>) return Half{float_to_half(v)};
    else return Half{double_to_small_float<5, 10>(static_cast<double>(v))};
  } else if constexpr (std::is_same_v<To, BFloat16>) {
    if constexpr (std::is_same_v<From, float>) return BFloat16{float_to_bfloat16(v)};
    else return BFloat16{double_to_small_float<8, 7>(static_cast<double>(v))};
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
    double d = static_cast<double>(v);
    if (std::isnan(d)) return 0;
    if (d <= static_cast<double>(std::numeric_limits<To>::lowest())) return std::numeric_limits<To>::lowest();
    if (d >= static_cast<double>(std::numeric_limits<To>::max())) return std::numeric_limits<To>::max();
    return static_cast<To>(d);
  } else {
    return static_cast<To>(v);  // integer narrowing wraps (C++20), int -> float rounds
  }
}

DType parse_type_name(const Node& node, const std::string& name) {
  static const std::pair<const char*, DType> names[] = {
      {"FLOAT", DType::Float},   {"DOUBLE", DType::Double},     {"FLOAT16", DType::Float16},
      {"BFLOAT16", DType::BFloat16}, {"INT8", DType::Int8},     {"INT16", DType::Int16},
      {"INT32", DType::Int32},   {"INT64", DType::Int64},       {"UINT8", DType::UInt8},
      {"UINT16", DType::UInt16}, {"UINT32", DType::UInt32},     {"UINT64", DType::UInt64},
      {"BOOL", DType::Bool}};
  for (const auto& [n, t] : names)
    if (name == n) return t;
  fail(node, "unsupported target type '" + name + "'");
}

void cast_tensor(const Node& node, const Tensor& x, Tensor& y) {
  dispatch<ONNXTRAIN_ALL_TYPES>(x.dtype(), node, [&](auto from) {
    dispatch<ONNXTRAIN_ALL_TYPES>(y.dtype(), node, [&](auto to) {
      using From = decltype(from);
      using To = decltype(to);
      const From* in = cdata<From>(x);
      To* out = mdata<To>(y);
      parallel_for(x.numel(), [&](int64_t i) { out[i] = convert<To>(in[i]); });
    });
  });
}

std::unique_ptr<Kernel> make_cast(const Node& node, const std::vector<InputInfo>& in) {
  DType to = DType::Undefined;
  if (node.op_type == "CastLike") {
    to = in.at(1).dtype;
  } else {
    auto it = node.attributes.find("to");
    if (it == node.attributes.end()) fail(node, "required attribute 'to' is missing");
    if (const auto* s = std::get_if<std::string>(&it->second)) to = parse_type_name(node, *s);  // opset 1
    else to = static_cast<DType>(node.attr_int("to"));
  }
  if (to == DType::String || in[0].dtype == DType::String) fail(node, "string casts are not supported");
  // Validate both types now rather than on the first run.
  dispatch<ONNXTRAIN_ALL_TYPES>(to, node, [](auto) {});
  dispatch<ONNXTRAIN_ALL_TYPES>(in[0].dtype, node, [](auto) {});
  return make_function_kernel([to](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    if (x.dtype() == to) {
      ctx.set_output_view(0, x, x.shape());
      return;
    }
    cast_tensor(ctx.node(), x, ctx.output(0, to, x.shape()));
  });
}

// ---- attribute-driven ops ---------------------------------------------------------------

std::unique_ptr<Kernel> make_isinf(const Node& node, const std::vector<InputInfo>& in) {
  dispatch<ONNXTRAIN_FLOAT_TYPES>(in.at(0).dtype, node, [](auto) {});
  bool pos = node.attr_int("detect_positive", 1) != 0, neg = node.attr_int("detect_negative", 1) != 0;
  return make_function_kernel([pos, neg](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, DType::Bool, x.shape());
    dispatch<ONNXTRAIN_FLOAT_TYPES>(x.dtype(), ctx.node(), [&](auto tag) {
      map_elements<decltype(tag), bool>(x, y, [pos, neg](auto v) {
        return std::isinf(v) && (v > 0 ? pos : neg);
      });
    });
  });
}

std::unique_ptr<Kernel> make_isnan(const Node& node, const std::vector<InputInfo>& in) {
  dispatch<ONNXTRAIN_FLOAT_TYPES>(in.at(0).dtype, node, [](auto) {});
  return make_function_kernel([](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, DType::Bool, x.shape());
    dispatch<ONNXTRAIN_FLOAT_TYPES>(x.dtype(), ctx.node(),
                                    [&](auto tag) { map_elements<decltype(tag), bool>(x, y, [](auto v) { return std::isnan(v); }); });
  });
}

// Shrink accepts every numeric type; integers are computed in double and converted back
// with the saturating conversion above.
std::unique_ptr<Kernel> make_shrink(const Node& node, const std::vector<InputInfo>&) {
  double lambd = node.attr_float("lambd", 0.5f), bias = node.attr_float("bias", 0.f);
  return make_function_kernel([lambd, bias](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, x.dtype(), x.shape());
    dispatch<float, double, Half, BFloat16, int64_t, int32_t, int16_t, int8_t, uint64_t, uint32_t, uint16_t, uint8_t>(
        x.dtype(), ctx.node(), [&](auto tag) {
          using T = decltype(tag);
          using C = compute_t<T>;
          const T* in = cdata<T>(x);
          T* out = mdata<T>(y);
          parallel_for(x.numel(), [&](int64_t i) {
            C v = load(in[i]);
            if constexpr (std::is_floating_point_v<C>) {
              C l = static_cast<C>(lambd), b = static_cast<C>(bias);
              C r = v < -l ? v + b : v > l ? v - b : C(0);
              if constexpr (is_half_v<T>) out[i] = store<T>(r);
              else out[i] = r;
            } else {
              double d = static_cast<double>(v);
              out[i] = convert<T>(d < -lambd ? d + bias : d > lambd ? d - bias : 0.0);
            }
          });
        });
  });
}

template <typename T>
T sign_of(T v) {
  if constexpr (std::is_unsigned_v<T>) return v > 0 ? 1 : 0;
  else if constexpr (std::is_floating_point_v<T>) return std::isnan(v) ? v : T((v > 0) - (v < 0));
  else return static_cast<T>((v > 0) - (v < 0));
}

template <typename F>
void add_float_unary(Registry& r, const char* op, int since, F f, GradientRule gradient) {
  r.add({"", op, since, INT_MAX, unary<ONNXTRAIN_FLOAT_TYPES>(plain(f)), "own", std::move(gradient)});
}


// ---- gradient rules ---------------------------------------------------------------------

// dX = dY * f or dY / f.
void times(GradientBuilder& b, Value* f) { b.GI(0, b.mul(b.GO(0), f)); }
void divided_by(GradientBuilder& b, Value* f) { b.GI(0, b.div(b.GO(0), f)); }

// (1 - X)(1 + X): 1 - X^2 without cancellation near |X| = 1. Asin, Acos and Atanh are from
// opset 7 on, so the scalar may come first.
Value* one_minus_square(GradientBuilder& b) {
  return b.mul(b.sub(typed_scalar(b, 1), b.I(0)), with_scalar(b, "Add", b.I(0), 1));
}

void erf_gradient(GradientBuilder& b) {  // 2/sqrt(pi) * exp(-X^2)
  Value* x = b.I(0);
  times(b, with_scalar(b, "Mul", b.op("Exp", {b.neg(b.mul(x, x))}), 1.12837916709551257389615890312154517));
}
void reciprocal_gradient(GradientBuilder& b) { times(b, b.neg(b.mul(b.O(0), b.O(0)))); }  // -Y^2
void sin_gradient(GradientBuilder& b) { times(b, b.op("Cos", {b.I(0)})); }
void cos_gradient(GradientBuilder& b) { times(b, b.neg(b.op("Sin", {b.I(0)}))); }
void tan_gradient(GradientBuilder& b) { times(b, with_scalar(b, "Add", b.mul(b.O(0), b.O(0)), 1)); }  // 1 + Y^2
void asin_gradient(GradientBuilder& b) { divided_by(b, b.op("Sqrt", {one_minus_square(b)})); }
void acos_gradient(GradientBuilder& b) { divided_by(b, b.neg(b.op("Sqrt", {one_minus_square(b)}))); }
void atan_gradient(GradientBuilder& b) { divided_by(b, with_scalar(b, "Add", b.mul(b.I(0), b.I(0)), 1)); }
void sinh_gradient(GradientBuilder& b) { times(b, b.op("Cosh", {b.I(0)})); }
void cosh_gradient(GradientBuilder& b) { times(b, b.op("Sinh", {b.I(0)})); }
// cosh(asinh X) = sqrt(X^2 + 1), without overflow of X^2.
void asinh_gradient(GradientBuilder& b) { divided_by(b, b.op("Cosh", {b.O(0)})); }
void acosh_gradient(GradientBuilder& b) {  // sqrt((X - 1)(X + 1))
  divided_by(b, b.op("Sqrt", {b.mul(with_scalar(b, "Sub", b.I(0), 1), with_scalar(b, "Add", b.I(0), 1))}));
}
void atanh_gradient(GradientBuilder& b) { divided_by(b, one_minus_square(b)); }
void softsign_gradient(GradientBuilder& b) {  // (1 + |X|)^2
  Value* d = with_scalar(b, "Add", b.op("Abs", {b.I(0)}), 1);
  divided_by(b, b.mul(d, d));
}

// Selu: gamma * dY for X > 0, else dY * gamma * alpha * exp(X) = dY * (Y + gamma * alpha)
// (also at X = 0, as PyTorch). The sign of Y tells the branch when gamma > 0 and alpha >= 0
// (the defaults), else X does.
void selu_gradient(GradientBuilder& b) {
  const Node& n = b.node();
  const double alpha = n.attr_float("alpha", 1.67326319217681884765625f);
  const double gamma = n.attr_float("gamma", 1.05070102214813232421875f);
  Value* positive = with_scalar(b, "Greater", gamma > 0 && alpha >= 0 ? b.O(0) : b.I(0), 0);
  b.GI(0, select(b, positive, with_scalar(b, "Mul", b.GO(0), gamma),
                 b.mul(b.GO(0), with_scalar(b, "Add", b.O(0), gamma * alpha))));
}

// HardSigmoid: dX = alpha * dY where 0 < Y < 1 (the linear part, strictly).
void hard_sigmoid_gradient(GradientBuilder& b) {
  Value* linear = b.op("And", {with_scalar(b, "Greater", b.O(0), 0), with_scalar(b, "Less", b.O(0), 1)});
  b.GI(0, select(b, linear, with_scalar(b, "Mul", b.GO(0), b.node().attr_float("alpha", 0.2f))));
}

// Celu: Y > 0 exactly when X > 0 (any alpha != 0), and exp(X/alpha) = Y/alpha + 1: from Y.
void celu_gradient(GradientBuilder& b) {
  Value* exp_term = with_scalar(b, "Add", with_scalar(b, "Div", b.O(0), b.node().attr_float("alpha", 1.f)), 1);
  b.GI(0, select(b, with_scalar(b, "Greater", b.O(0), 0), b.GO(0), b.mul(b.GO(0), exp_term)));
}

// ThresholdedRelu: dX = dY where X > alpha. For alpha >= 0, Y > alpha is the same test (Y is
// X or 0), so Y is read; for a negative alpha, X.
void thresholded_relu_gradient(GradientBuilder& b) {
  const float alpha = b.node().attr_float("alpha", 1.f);
  pass_gradient_where(b, with_scalar(b, "Greater", alpha >= 0 ? b.O(0) : b.I(0), alpha));
}

// Shrink: dX = dY where |X| > lambd (the bias only shifts the value).
void shrink_gradient(GradientBuilder& b) {
  pass_gradient_where(b, with_scalar(b, "Greater", b.op("Abs", {b.I(0)}), b.node().attr_float("lambd", 0.5f)));
}

// Cast/CastLike: the gradient is dY cast back to the input's float type (the driver only
// asks when input and output are both floating point).
void cast_gradient(GradientBuilder& b) {
  const DType from = b.I(0)->dtype;
  if (!is_floating(from))
    throw UnsupportedOp(b.node().describe() + ": the element type of input '" + b.I(0)->name +
                        "' is unknown, so its gradient cannot be cast back");
  b.GI(0, b.op("Cast", {b.GO(0)}, {{"to", static_cast<int64_t>(from)}}));
}

void zero_gradient(GradientBuilder& b) { b.GI(0, b.zeros_like(b.I(0))); }

}  // namespace

void register_elementwise_ops(Registry& r) {
  using A = dnnl::algorithm;
  add_float_unary(r, "Reciprocal", 1, [](auto x) { return decltype(x)(1) / x; }, reciprocal_gradient);
  add_float_unary(r, "Floor", 1, [](auto x) { return std::floor(x); }, zero_gradient);
  add_float_unary(r, "Ceil", 1, [](auto x) { return std::ceil(x); }, zero_gradient);
  add_float_unary(r, "Sin", 7, [](auto x) { return std::sin(x); }, sin_gradient);
  add_float_unary(r, "Cos", 7, [](auto x) { return std::cos(x); }, cos_gradient);
  add_float_unary(r, "Tan", 7, [](auto x) { return std::tan(x); }, tan_gradient);
  add_float_unary(r, "Asin", 7, [](auto x) { return std::asin(x); }, asin_gradient);
  add_float_unary(r, "Acos", 7, [](auto x) { return std::acos(x); }, acos_gradient);
  add_float_unary(r, "Atan", 7, [](auto x) { return std::atan(x); }, atan_gradient);
  add_float_unary(r, "Sinh", 9, [](auto x) { return std::sinh(x); }, sinh_gradient);
  add_float_unary(r, "Cosh", 9, [](auto x) { return std::cosh(x); }, cosh_gradient);
  add_float_unary(r, "Asinh", 9, [](auto x) { return std::asinh(x); }, asinh_gradient);
  add_float_unary(r, "Acosh", 9, [](auto x) { return std::acosh(x); }, acosh_gradient);
  add_float_unary(r, "Atanh", 9, [](auto x) { return std::atanh(x); }, atanh_gradient);
  add_float_unary(r, "Softsign", 1, [](auto x) { return x / (decltype(x)(1) + std::abs(x)); },
                  softsign_gradient);

  // Erf and Sign accept every numeric type.
  r.add({"", "Erf", 9, INT_MAX,
         unary<ONNXTRAIN_FLOAT_TYPES, int64_t, int32_t, int16_t, int8_t, uint64_t, uint32_t, uint16_t, uint8_t>(
             plain([](auto x) {
               using C = decltype(x);
               if constexpr (std::is_floating_point_v<C>) return std::erf(x);
               else return convert<C>(std::erf(static_cast<double>(x)));
             })),
         "own", erf_gradient});
  r.add({"", "Sign", 9, INT_MAX,
         unary<ONNXTRAIN_FLOAT_TYPES, int64_t, int32_t, int16_t, int8_t, uint64_t, uint32_t, uint16_t, uint8_t>(
             plain([](auto x) { return sign_of(x); })),
         "own", zero_gradient});
  r.add({"", "Not", 1, INT_MAX, unary<bool>(plain([](bool x) { return !x; })), "own", {}, {}, true});
  r.add({"", "BitwiseNot", 18, INT_MAX,
         unary<int64_t, int32_t, int16_t, int8_t, uint64_t, uint32_t, uint16_t, uint8_t>(
             plain([](auto x) { return decltype(x)(~x); })),
         "own", {}, {}, true});

  // oneDNN's round uses the default (to nearest even) rounding mode, as nearbyint does.
  r.add({"", "Round", 11, INT_MAX,
         with_dnnl_float(A::eltwise_round,
                         unary<ONNXTRAIN_FLOAT_TYPES>(plain([](auto x) { return std::nearbyint(x); }))),
         "oneDNN eltwise", zero_gradient});

  // oneDNN has elu and linear/clip, but chaining them as eltwise post-ops gives wrong
  // results in oneDNN 2.6's reference implementation (small tensors), so own loops.
  r.add({"", "Selu", 1, INT_MAX, unary<ONNXTRAIN_FLOAT_TYPES>([](const Node& n) {
           float alpha = n.attr_float("alpha", 1.67326319217681884765625f);
           float gamma = n.attr_float("gamma", 1.05070102214813232421875f);
           return [alpha, gamma](auto x) {
             using C = decltype(x);
             return x > 0 ? C(gamma) * x : C(gamma) * C(alpha) * std::expm1(x);
           };
         }),
         "own", selu_gradient});
  r.add({"", "HardSigmoid", 1, INT_MAX, unary<ONNXTRAIN_FLOAT_TYPES>([](const Node& n) {
           float alpha = n.attr_float("alpha", 0.2f), beta = n.attr_float("beta", 0.5f);
           return [alpha, beta](auto x) {
             using C = decltype(x);
             return std::min(std::max(C(alpha) * x + C(beta), C(0)), C(1));
           };
         }),
         "own", hard_sigmoid_gradient});
  r.add({"", "Celu", 12, INT_MAX, unary<ONNXTRAIN_FLOAT_TYPES>([](const Node& n) {
           double alpha = n.attr_float("alpha", 1.f);
           if (alpha == 0) fail(n, "alpha must not be 0");
           return [alpha](auto x) {
             using C = decltype(x);
             return x > 0 ? x : static_cast<C>(alpha * std::expm1(static_cast<double>(x) / alpha));
           };
         }),
         "own", celu_gradient});
  r.add({"", "ThresholdedRelu", 10, INT_MAX, unary<ONNXTRAIN_FLOAT_TYPES>([](const Node& n) {
           float alpha = n.attr_float("alpha", 1.f);
           return [alpha](auto x) { return x > decltype(x)(alpha) ? x : decltype(x)(0); };
         }),
         "own", thresholded_relu_gradient});
  r.add({"", "Shrink", 9, INT_MAX, make_shrink, "own", shrink_gradient});
  r.add({"", "IsNaN", 9, INT_MAX, make_isnan, "own", {}, {}, true});
  r.add({"", "IsInf", 10, INT_MAX, make_isinf, "own", {}, {}, true});
  r.add({"", "Cast", 1, INT_MAX, make_cast, "own", cast_gradient});
  // CastLike's second input only gives the target type.
  r.add({"", "CastLike", 15, INT_MAX, make_cast, "own", cast_gradient, {1}});

}

}  // namespace onnxtrain::ops
