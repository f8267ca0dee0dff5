// Binary, variadic and ternary elementwise operators with numpy broadcasting.
//
// Broadcasting is planned once per input signature: output dims of size 1 are dropped and
// adjacent dims are merged while every input is either contiguous or broadcast across both,
// so e.g. [N,C,H,W] + [C,1,1] becomes rows of H*W elements with a scalar second operand.
// Each row then runs a loop specialised for "contiguous or scalar" per operand, with no
// index arithmetic per element. Large float32 Add/Sub/Mul/Div use oneDNN's binary primitive
// when its broadcast rules fit (src0 full-size, src1 broadcast).
//
// Integer semantics the ONNX spec leaves open (chosen to never trap and never be UB):
// arithmetic wraps around; x / 0 and x % 0 give 0; INT_MIN / -1 gives INT_MIN; a shift by
// at least the bit width gives 0; integer Pow with a negative exponent gives 0 unless the
// base is 1 or -1; float-to-integer results (integer Pow with a float exponent) saturate
// and NaN becomes 0.
//
// Max, Min, Sum, Mean, Where and PRelu are in variadic_where_prelu.cpp; shared machinery:
// binary_common.h.
#include "ops/binary_common.h"

namespace onnxtrain::ops {

namespace binary_impl {

Plan make_plan(const std::vector<Shape>& inputs, const Shape& out) {
  Plan p;
  p.out_shape = out;
  p.numel = shape_numel(out);
  std::vector<Shape> strides;
  for (const auto& s : inputs) strides.push_back(broadcast_strides(s, out));
  Shape dims;
  std::vector<Strides> dim_strides;
  for (size_t d = 0; d < out.size(); ++d) {
    if (out[d] == 1) continue;
    Strides s{};
    for (size_t k = 0; k < inputs.size(); ++k) s[k] = strides[k][d];
    bool mergeable = !dims.empty();
    for (size_t k = 0; k < inputs.size() && mergeable; ++k) mergeable = dim_strides.back()[k] == s[k] * out[d];
    if (mergeable) {
      dims.back() *= out[d];
      dim_strides.back() = s;
    } else {
      dims.push_back(out[d]);
      dim_strides.push_back(s);
    }
  }
  if (!dims.empty()) {
    p.inner = dims.back();
    for (int k = 0; k < kMaxInputs; ++k) p.contiguous[k] = dim_strides.back()[k] != 0;
    dims.pop_back();
    dim_strides.pop_back();
  }
  p.outer = std::move(dims);
  p.outer_strides = std::move(dim_strides);
  return p;
}

std::vector<Shape> binary_shapes(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() < 2 || !in[0].present || !in[1].present) fail(node, "expects two inputs");
  Shape a = in[0].shape, b = in[1].shape;
  if (node.opset < 7) {
    if (node.attr_int("broadcast", 0) == 0) {
      if (a != b)
        fail_shape(node, "shapes " + shape_str(a) + " and " + shape_str(b) + " differ and broadcast is not set");
    } else {
      const auto ra = static_cast<int64_t>(a.size()), rb = static_cast<int64_t>(b.size());
      int64_t axis = node.has_attr("axis") ? node.attr_int("axis") : ra - rb;
      if (axis < 0) axis += ra;
      if (rb > ra || axis < 0 || axis + rb > ra)
        fail_shape(node, "cannot broadcast " + shape_str(b) + " into " + shape_str(a) + " at axis " +
                             std::to_string(node.attr_int("axis", ra - rb)));
      Shape padded(ra, 1);
      std::copy(b.begin(), b.end(), padded.begin() + axis);
      if (broadcast_shapes({a, padded}, node) != a)
        fail_shape(node, "cannot broadcast " + shape_str(b) + " into " + shape_str(a));
      b = padded;
    }
  }
  return {a, b};
}

// A scalar constant of a float dtype (float16/bfloat16 included).
Value* scalar_of(GradientBuilder& b, double value, DType dtype) {
  switch (dtype) {
    case DType::Double: return b.constant(Tensor::scalar<double>(value));
    case DType::Float: return b.constant(Tensor::scalar<float>(static_cast<float>(value)));
    case DType::Float16:
    case DType::BFloat16: {
      Tensor t(dtype, Shape{});
      float f = static_cast<float>(value);
      *static_cast<uint16_t*>(t.raw()) = dtype == DType::Float16 ? float_to_half(f) : float_to_bfloat16(f);
      return b.constant(t);
    }
    default:
      throw UnsupportedOp(b.node().describe() + ": gradient needs a float scalar of type " + dtype_name(dtype));
  }
}

// Emitted binary ops in a graph older than opset 7 need broadcast=1 to broadcast their
// second operand (suffix-aligned); the rules below put the full-size operand first.
Attributes legacy_broadcast(const GradientBuilder& b) {
  if (b.node().opset < 7) return {{"broadcast", int64_t{1}}};
  return {};
}

}  // namespace binary_impl

namespace {

using namespace binary_impl;

// Integer remainder; `floored` gives the sign of the divisor (Python), otherwise of the
// dividend (C).
template <typename T>
T int_mod(T a, T b, bool floored) {
  if (b == 0) return 0;
  if constexpr (std::is_signed_v<T>) {
    if (b == -1) return 0;
    T r = static_cast<T>(a % b);
    if (floored && r != 0 && ((r < 0) != (b < 0))) r = static_cast<T>(r + b);
    return r;
  } else {
    return static_cast<T>(a % b);
  }
}

// Float to integer with NaN -> 0 and saturation (plain conversion is UB out of range).
template <typename To>
To saturate(double d) {
  if constexpr (std::is_floating_point_v<To> || is_half_v<To>) {
    return store<To>(d);
  } else {
    if (std::isnan(d)) return 0;
    if (d <= static_cast<double>(std::numeric_limits<To>::lowest())) return std::numeric_limits<To>::lowest();
    if (d >= static_cast<double>(std::numeric_limits<To>::max())) return std::numeric_limits<To>::max();
    return static_cast<To>(d);
  }
}

template <typename B, typename E>
compute_t<B> power(compute_t<B> base, compute_t<E> exponent) {
  using C = compute_t<B>;
  if constexpr (std::is_integral_v<C> && std::is_integral_v<compute_t<E>>) {
    if constexpr (std::is_signed_v<compute_t<E>>) {
      if (exponent < 0) {
        if (base == 1) return 1;
        if constexpr (std::is_signed_v<C>)
          if (base == -1) return (exponent % 2) ? C(-1) : C(1);
        return 0;
      }
    }
    using U = wide_unsigned_t<C>;
    U result = 1, b = static_cast<U>(base);
    for (auto e = static_cast<uint64_t>(exponent); e; e >>= 1, b *= b)
      if (e & 1) result *= b;
    return static_cast<C>(result);
  } else if constexpr (std::is_same_v<C, float> && std::is_same_v<compute_t<E>, float>) {
    return std::pow(base, exponent);
  } else if constexpr (std::is_floating_point_v<C>) {
    return static_cast<C>(std::pow(static_cast<double>(base), static_cast<double>(exponent)));
  } else {
    return saturate<C>(std::pow(static_cast<double>(base), static_cast<double>(exponent)));
  }
}

// ---- oneDNN binary for float32 ----------------------------------------------------------

class DnnlBinaryKernel final : public Kernel {
 public:
  DnnlBinaryKernel(dnnl::algorithm algorithm, const Shape& a, const Shape& b, const Shape& out, bool swap)
      : out_shape_(out), swap_(swap) {
    a_md_ = plain_desc(a, DType::Float);
    b_md_ = plain_desc(b, DType::Float);
    out_md_ = plain_desc(out, DType::Float);
    pd_ = dnnl::binary::primitive_desc(dnnl::binary::desc(algorithm, a_md_, b_md_, out_md_), arena_scratchpad(), cpu_engine());
    primitive_ = dnnl::binary(pd_);
  }
  void run(KernelContext& ctx) override {
    const Tensor& a = ctx.input(swap_ ? 1 : 0);
    const Tensor& b = ctx.input(swap_ ? 0 : 1);
    Tensor& y = ctx.output(0, DType::Float, out_shape_);
    execute(primitive_, {{DNNL_ARG_SRC_0, bind(a_md_, a)}, {DNNL_ARG_SRC_1, bind(b_md_, b)}, {DNNL_ARG_DST, bind(out_md_, y)}});
  }

 private:
  Shape out_shape_;
  bool swap_;
  dnnl::memory::desc a_md_, b_md_, out_md_;
  dnnl::binary::primitive_desc pd_;
  dnnl::binary primitive_;
};

// Measured (Add, 1 thread, AVX-512 machine): the own loop is 2-3x faster below ~64K
// elements (oneDNN's per-execution overhead is ~1.5 us), on par at 64K-256K, and oneDNN is
// 10-50% faster on large tensors (wider vectors, streaming stores).
constexpr int64_t kDnnlBinaryMinElements = int64_t(1) << 18;

// oneDNN wants src0 at the full output shape and src1 with equal or unit dims, same rank.
std::unique_ptr<Kernel> try_dnnl_binary(dnnl::algorithm algorithm, bool commutative, const std::vector<Shape>& shapes,
                                        const Shape& out) {
  if (out.empty() || out.size() > 12 || shape_numel(out) < kDnnlBinaryMinElements) return nullptr;
  auto pad = [&](const Shape& s) {
    Shape p(out.size() - s.size(), 1);
    p.insert(p.end(), s.begin(), s.end());
    return p;
  };
  Shape a = pad(shapes[0]), b = pad(shapes[1]);
  bool swap = false;
  if (a != out) {
    if (!commutative || b != out) return nullptr;
    std::swap(a, b);
    swap = true;
  }
  return std::make_unique<DnnlBinaryKernel>(algorithm, a, b, out, swap);
}

template <typename Core>
KernelFactory arithmetic(dnnl::algorithm algorithm, bool commutative, Core core) {
  KernelFactory own = binary<false>(NumericTypes{}, plain(core));
  return [=](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    if (in.size() >= 2 && in[0].dtype == DType::Float && in[1].dtype == DType::Float) {
      auto shapes = binary_shapes(node, in);
      if (auto k = try_dnnl_binary(algorithm, commutative, shapes, broadcast_shapes(shapes, node))) return k;
    }
    return own(node, in);
  };
}

// ---- ops with their own factories -------------------------------------------------------

// Pow: the exponent may have another type than the base from opset 12; the result has the
// base's type.
std::unique_ptr<Kernel> make_pow(const Node& node, const std::vector<InputInfo>& in) {
  using BaseTypes = TypeList<float, double, Half, BFloat16, int64_t, int32_t>;
  auto shapes = binary_shapes(node, in);
  dispatch(BaseTypes{}, in[0].dtype, node, [](auto) {});
  dispatch(NumericTypes{}, in[1].dtype, node, [](auto) {});
  if (node.opset < 12 && in[0].dtype != in[1].dtype)
    fail(node, "base and exponent types differ (allowed from opset 12)");
  Plan plan = make_plan(shapes, broadcast_shapes(shapes, node));
  return make_function_kernel([plan](KernelContext& ctx) {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    dispatch(BaseTypes{}, a.dtype(), ctx.node(), [&](auto base) {
      using B = decltype(base);
      Tensor& y = ctx.output(0, a.dtype(), plan.out_shape);
      dispatch(NumericTypes{}, b.dtype(), ctx.node(), [&](auto exponent) {
        using E = decltype(exponent);
        run2(plan, cdata<B>(a), cdata<E>(b), mdata<B>(y),
             [](B x, E e) { return store<B>(power<B, E>(load(x), load(e))); });
      });
    });
  });
}

auto make_mod_core(const Node& node, const std::vector<InputInfo>& in) {
  bool fmod = node.attr_int("fmod", 0) != 0;
  if (!fmod && is_floating(in[0].dtype)) fail(node, "fmod must be 1 for floating-point inputs");
  return [fmod](auto a, auto b) {
    if constexpr (std::is_floating_point_v<decltype(a)>) return std::fmod(a, b);
    else return int_mod(a, b, !fmod);
  };
}

auto make_bitshift_core(const Node& node, const std::vector<InputInfo>&) {
  std::string direction = node.attr_string("direction", "");
  if (direction != "LEFT" && direction != "RIGHT") fail(node, "direction must be LEFT or RIGHT, got '" + direction + "'");
  bool left = direction == "LEFT";
  return [left](auto a, auto b) {
    using T = decltype(a);
    if (b >= std::numeric_limits<T>::digits) return T(0);
    using U = wide_unsigned_t<T>;
    return left ? static_cast<T>(static_cast<U>(a) << b) : static_cast<T>(a >> b);
  };
}
// Before opset 7, broadcasting could align the second operand at `axis` instead of at the
// trailing dims; the driver's unbroadcast follows numpy rules only.
void require_numpy_broadcast(GradientBuilder& b) {
  const Node& n = b.node();
  if (n.opset < 7 && n.attr_int("broadcast", 0) != 0 && n.has_attr("axis"))
    throw UnsupportedOp(n.describe() + ": no gradient for legacy broadcasting with an 'axis' attribute");
}

void add_gradient(GradientBuilder& b) {
  require_numpy_broadcast(b);
  if (b.needs_grad(0)) b.GI_broadcast(0, b.GO(0));
  if (b.needs_grad(1)) b.GI_broadcast(1, b.GO(0));
}

void sub_gradient(GradientBuilder& b) {
  require_numpy_broadcast(b);
  if (b.needs_grad(0)) b.GI_broadcast(0, b.GO(0));
  if (b.needs_grad(1)) b.GI_broadcast(1, b.neg(b.GO(0)));
}

void mul_gradient(GradientBuilder& b) {
  require_numpy_broadcast(b);
  const Attributes bc = legacy_broadcast(b);
  if (b.needs_grad(0)) b.GI_broadcast(0, b.op("Mul", {b.GO(0), b.I(1)}, bc));
  if (b.needs_grad(1)) b.GI_broadcast(1, b.op("Mul", {b.GO(0), b.I(0)}, bc));
}

// d(a/b)/da = 1/b, d(a/b)/db = -a/b^2 = -y/b.
void div_gradient(GradientBuilder& b) {
  require_numpy_broadcast(b);
  const Attributes bc = legacy_broadcast(b);
  if (b.needs_grad(0)) b.GI_broadcast(0, b.op("Div", {b.GO(0), b.I(1)}, bc));
  if (b.needs_grad(1)) b.GI_broadcast(1, b.neg(b.op("Div", {b.mul(b.GO(0), b.O(0)), b.I(1)}, bc)));
}

Value* cast_to(GradientBuilder& b, Value* v, DType dtype) {
  if (v->dtype == dtype || dtype == DType::Undefined || v->dtype == DType::Undefined) return v;
  return b.op("Cast", {v}, {{"to", static_cast<int64_t>(dtype)}});
}

// Pow(A, B): dA = dY * B * A^(B-1) (0 where B == 0); dB = dY * Y * log(A), only meaningful
// for A > 0: at A == 0 it is set to 0 (as PyTorch does; log(A) is replaced by log(1)), for
// A < 0 it is NaN (log of a negative number: the exponent has no real derivative there).
// An integer exponent gets no gradient (the driver does not ask).
void pow_gradient(GradientBuilder& b) {
  require_numpy_broadcast(b);
  Value *base = b.I(0), *exponent = b.I(1), *y = b.O(0);
  const DType t = base->dtype;
  const Attributes bc = legacy_broadcast(b);
  if (b.needs_grad(0)) {
    // B - 1, or 0 where B == 0: then dA = 0 instead of 0 * 0^-1 = NaN at A == 0 (as PyTorch).
    // These ops run on B's shape (usually a scalar).
    Value* e = cast_to(b, exponent, t);
    Value* e_is_zero = b.op("Cast", {b.op("Equal", {e, scalar_of(b, 0.0, t)}, bc)}, {{"to", static_cast<int64_t>(t)}});
    Value* e_minus_1 = b.add(b.op("Sub", {e, scalar_of(b, 1.0, t)}, bc), e_is_zero);
    Value* p = b.op("Pow", {base, e_minus_1}, bc);
    b.GI_broadcast(0, b.mul(b.GO(0), b.op("Mul", {p, e}, bc)));
  }
  if (b.needs_grad(1)) {
    Value* zero_mask = b.op("Cast", {b.op("Equal", {base, scalar_of(b, 0.0, t)}, bc)}, {{"to", static_cast<int64_t>(t)}});
    Value* log_base = b.op("Log", {b.add(base, zero_mask)});
    Value* g = b.op("Mul", {b.mul(b.GO(0), y), log_base}, bc);
    b.GI_broadcast(1, cast_to(b, g, exponent->dtype));
  }
}


// Mod with fmod=1 (float): Y = A - trunc(A/B) * B, so dA = dY and dB = -trunc(A/B) * dY
// = dY * (Y - A) / B. Integer Mod has no float values to differentiate.
void mod_gradient(GradientBuilder& b) {
  if (b.needs_grad(0)) b.GI_broadcast(0, b.GO(0));
  if (b.needs_grad(1)) b.GI_broadcast(1, b.mul(b.GO(0), b.div(b.sub(b.O(0), b.I(0)), b.I(1))));
}

}  // namespace

void register_binary_ops(Registry& r) {
  using A = dnnl::algorithm;
  auto both = [](auto f) { return plain(f); };
  r.add({"", "Add", 1, INT_MAX, arithmetic(A::binary_add, true, [](auto a, auto b) { return wrap_add(a, b); }),
         "oneDNN binary", add_gradient});
  r.add({"", "Sub", 1, INT_MAX, arithmetic(A::binary_sub, false, [](auto a, auto b) { return wrap_sub(a, b); }),
         "oneDNN binary", sub_gradient});
  r.add({"", "Mul", 1, INT_MAX, arithmetic(A::binary_mul, true, [](auto a, auto b) { return wrap_mul(a, b); }),
         "oneDNN binary", mul_gradient});
  r.add({"", "Div", 1, INT_MAX, arithmetic(A::binary_div, false, [](auto a, auto b) { return safe_div(a, b); }),
         "oneDNN binary", div_gradient});
  r.add({"", "Pow", 1, INT_MAX, make_pow, "own", pow_gradient});
  r.add({"", "Mod", 10, INT_MAX, binary<false>(NumericTypes{}, make_mod_core), "own", mod_gradient});
  r.add({"", "BitShift", 11, INT_MAX, binary<false>(UnsignedTypes{}, make_bitshift_core), "own", {}, {}, true});

  r.add({"", "Equal", 1, INT_MAX, binary<true>(AllTypes{}, both([](auto a, auto b) { return a == b; })), "own", {}, {}, true});
  r.add({"", "Less", 1, INT_MAX, binary<true>(NumericTypes{}, both([](auto a, auto b) { return a < b; })), "own", {}, {}, true});
  r.add({"", "Greater", 1, INT_MAX, binary<true>(NumericTypes{}, both([](auto a, auto b) { return a > b; })), "own", {}, {}, true});
  r.add({"", "LessOrEqual", 12, INT_MAX, binary<true>(NumericTypes{}, both([](auto a, auto b) { return a <= b; })),
         "own", {}, {}, true});
  r.add({"", "GreaterOrEqual", 12, INT_MAX, binary<true>(NumericTypes{}, both([](auto a, auto b) { return a >= b; })),
         "own", {}, {}, true});
  r.add({"", "And", 1, INT_MAX, binary<true>(BoolTypes{}, both([](bool a, bool b) { return a && b; })), "own", {}, {}, true});
  r.add({"", "Or", 1, INT_MAX, binary<true>(BoolTypes{}, both([](bool a, bool b) { return a || b; })), "own", {}, {}, true});
  r.add({"", "Xor", 1, INT_MAX, binary<true>(BoolTypes{}, both([](bool a, bool b) { return a != b; })), "own", {}, {}, true});

  // Opset 18: the integer bit operations.
  r.add({"", "BitwiseAnd", 18, INT_MAX, binary<false>(IntTypes{}, both([](auto a, auto b) { return decltype(a)(a & b); })),
         "own", {}, {}, true});
  r.add({"", "BitwiseOr", 18, INT_MAX, binary<false>(IntTypes{}, both([](auto a, auto b) { return decltype(a)(a | b); })),
         "own", {}, {}, true});
  r.add({"", "BitwiseXor", 18, INT_MAX, binary<false>(IntTypes{}, both([](auto a, auto b) { return decltype(a)(a ^ b); })),
         "own", {}, {}, true});

  register_variadic_where_prelu_ops(r);
}

}  // namespace onnxtrain::ops
