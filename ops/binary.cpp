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
#include <array>
#include <cmath>
#include <limits>
#include <type_traits>

#include "ops/dnnl_utils.h"
#include "ops/op_utils.h"
#include "ops/gradient.h"
#include "ops/half.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

namespace {


template <typename... Ts>
struct TypeList {};

template <typename... Ts, typename F>
void dispatch(TypeList<Ts...>, DType dtype, const Node& node, F&& f) {
  bool done = false;
  ((!done && dtype == dtype_for<Ts>() ? (f(Ts{}), done = true) : false), ...);
  if (!done) fail(node, "does not support element type " + dtype_name(dtype));
}

using FloatTypes = TypeList<float, double, Half, BFloat16>;
using IntTypes = TypeList<int64_t, int32_t, int16_t, int8_t, uint64_t, uint32_t, uint16_t, uint8_t>;
using NumericTypes =
    TypeList<float, double, Half, BFloat16, int64_t, int32_t, int16_t, int8_t, uint64_t, uint32_t, uint16_t, uint8_t>;
using AllTypes = TypeList<float, double, Half, BFloat16, int64_t, int32_t, int16_t, int8_t, uint64_t, uint32_t,
                          uint16_t, uint8_t, bool>;
using UnsignedTypes = TypeList<uint64_t, uint32_t, uint16_t, uint8_t>;
using BoolTypes = TypeList<bool>;

// ---- wrap-around integer arithmetic -----------------------------------------------------

// Unsigned type at least as wide as int, so no operand is promoted to a signed int.
template <typename T>
using wide_unsigned_t = std::conditional_t<(sizeof(T) <= 4), uint32_t, uint64_t>;

template <typename T>
T wrap_add(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = wide_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
  } else {
    return a + b;
  }
}
template <typename T>
T wrap_sub(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = wide_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(a) - static_cast<U>(b));
  } else {
    return a - b;
  }
}
template <typename T>
T wrap_mul(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = wide_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(a) * static_cast<U>(b));
  } else {
    return a * b;
  }
}
template <typename T>
T safe_div(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    if (b == 0) return 0;
    if constexpr (std::is_signed_v<T>)
      if (b == -1) return wrap_sub(T(0), a);
    return static_cast<T>(a / b);
  } else {
    return a / b;
  }
}
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

// ---- broadcast plan ---------------------------------------------------------------------

constexpr int kMaxInputs = 3;
using Strides = std::array<int64_t, kMaxInputs>;

struct Plan {
  Shape out_shape;
  int64_t numel = 0;
  int64_t inner = 1;                        // length of the innermost merged dim
  std::array<bool, kMaxInputs> contiguous{};  // per input: stride 1 (else 0) in that dim
  Shape outer;                              // the other merged dims, outermost first
  std::vector<Strides> outer_strides;

  int64_t rows() const { return numel / inner; }
  void offsets(int64_t row, Strides& off) const {
    off.fill(0);
    for (int d = static_cast<int>(outer.size()) - 1; d >= 0; --d) {
      int64_t i = row % outer[d];
      row /= outer[d];
      for (int k = 0; k < kMaxInputs; ++k) off[k] += i * outer_strides[d][k];
    }
  }
};

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

constexpr int64_t kBlock = 16384;  // elements per parallel work item

// Calls body(row_or_block_offsets..., out_offset, count) over the plan, in parallel when
// large: over rows, or over blocks of a single long row.
template <typename Body>
void for_each_span(const Plan& p, Body&& body) {
  if (p.numel == 0) return;
  const int64_t rows = p.rows(), inner = p.inner;
  if (rows == 1) {
    const int64_t blocks = (inner + kBlock - 1) / kBlock;
    parallel_for(blocks, [&](int64_t j) {
      int64_t begin = j * kBlock;
      Strides off{};
      for (int k = 0; k < kMaxInputs; ++k) off[k] = p.contiguous[k] ? begin : 0;
      body(off, begin, std::min(kBlock, inner - begin));
    }, 2);
  } else {
    parallel_for(rows, [&](int64_t r) {
      Strides off;
      p.offsets(r, off);
      body(off, r * inner, inner);
    }, std::max<int64_t>(1, kBlock / inner));
  }
}

// The innermost loop, specialised on whether each operand advances, so it vectorises.
template <bool SA, bool SB, typename A, typename B, typename R, typename F>
inline void span2(const A* a, const B* b, R* out, int64_t n, const F& f) {
  if constexpr (SA && SB) {
    for (int64_t i = 0; i < n; ++i) out[i] = f(a[i], b[i]);
  } else if constexpr (SA) {
    const B bv = *b;
    for (int64_t i = 0; i < n; ++i) out[i] = f(a[i], bv);
  } else if constexpr (SB) {
    const A av = *a;
    for (int64_t i = 0; i < n; ++i) out[i] = f(av, b[i]);
  } else {
    const R v = f(*a, *b);
    for (int64_t i = 0; i < n; ++i) out[i] = v;
  }
}

template <bool SA, bool SB, typename A, typename B, typename R, typename F>
void run2_impl(const Plan& p, const A* a, const B* b, R* out, const F& f) {
  for_each_span(p, [&](const Strides& off, int64_t o, int64_t n) {
    span2<SA, SB>(a + off[0], b + off[1], out + o, n, f);
  });
}

// out = f(a, b) over the plan; `out` may alias a full-size `a`.
template <typename A, typename B, typename R, typename F>
void run2(const Plan& p, const A* a, const B* b, R* out, const F& f) {
  if (p.contiguous[0] && p.contiguous[1]) run2_impl<true, true>(p, a, b, out, f);
  else if (p.contiguous[0]) run2_impl<true, false>(p, a, b, out, f);
  else if (p.contiguous[1]) run2_impl<false, true>(p, a, b, out, f);
  else run2_impl<false, false>(p, a, b, out, f);
}

// Applies a functor on compute types to storage types.
template <typename R, typename A, typename B, typename F>
auto lift(const F& f) {
  return [f](A a, B b) -> R { return store<R>(f(load(a), load(b))); };
}

// ---- input shapes, including the legacy (opset < 7) broadcast attribute -----------------

// Before opset 7, B broadcast to A only when broadcast=1, with B's dims matching A's dims
// from `axis` on (suffix by default); without it the shapes had to be equal.
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

using ShapesFn = std::vector<Shape> (*)(const Node&, const std::vector<InputInfo>&);

// A binary op over `types` (both inputs of the same type); make_core(node, inputs) returns
// the functor on compute types. The result is bool or the input type.
template <bool kBoolResult, typename Types, typename MakeCore>
KernelFactory binary(Types types, MakeCore make_core, ShapesFn shapes_fn = binary_shapes) {
  return [=](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    auto shapes = shapes_fn(node, in);
    if (in[0].dtype != in[1].dtype)
      fail(node, "input types " + dtype_name(in[0].dtype) + " and " + dtype_name(in[1].dtype) + " differ");
    dispatch(types, in[0].dtype, node, [](auto) {});
    Plan plan = make_plan(shapes, broadcast_shapes(shapes, node));
    auto core = make_core(node, in);
    return make_function_kernel([=](KernelContext& ctx) {
      const Tensor& a = ctx.input(0);
      const Tensor& b = ctx.input(1);
      dispatch(types, a.dtype(), ctx.node(), [&](auto tag) {
        using T = decltype(tag);
        using R = std::conditional_t<kBoolResult, bool, T>;
        Tensor& y = ctx.output(0, dtype_for<R>(), plan.out_shape);
        run2(plan, cdata<T>(a), cdata<T>(b), mdata<R>(y), lift<R, T, T>(core));
      });
    });
  };
}

template <typename F>
auto plain(F f) {
  return [f](const Node&, const std::vector<InputInfo>&) { return f; };
}

// ---- oneDNN binary for float32 ----------------------------------------------------------

class DnnlBinaryKernel final : public Kernel {
 public:
  DnnlBinaryKernel(dnnl::algorithm algorithm, const Shape& a, const Shape& b, const Shape& out, bool swap)
      : out_shape_(out), swap_(swap) {
    a_md_ = plain_desc(a, DType::Float);
    b_md_ = plain_desc(b, DType::Float);
    out_md_ = plain_desc(out, DType::Float);
    pd_ = dnnl::binary::primitive_desc(dnnl::binary::desc(algorithm, a_md_, b_md_, out_md_), cpu_engine());
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

// Before opset 7 PRelu's slope was per channel (dim 1), as old PyTorch exports use it; from
// opset 7 it broadcasts to X unidirectionally.
std::vector<Shape> prelu_shapes(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() < 2 || !in[0].present || !in[1].present) fail(node, "expects inputs X and slope");
  const Shape& x = in[0].shape;
  Shape slope = in[1].shape;
  if (node.opset < 7 && slope.size() == 1 && slope[0] != 1 && x.size() >= 2 && slope[0] == x[1]) {
    slope = Shape(x.size() - 1, 1);
    slope[0] = x[1];
  }
  if (broadcast_shapes({x, slope}, node) != x)
    fail_shape(node, "slope " + shape_str(in[1].shape) + " does not broadcast to X " + shape_str(x));
  return {x, slope};
}

// Max/Min/Sum/Mean: the first two inputs produce the output, the others fold into it in
// place. Mean divides at the end.
template <typename Types, typename Core>
KernelFactory variadic(Types types, Core core, bool mean) {
  return [=](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    if (in.empty()) fail(node, "needs at least one input");
    std::vector<Shape> shapes;
    for (const auto& i : in) {
      if (!i.present) fail(node, "inputs cannot be omitted");
      if (i.dtype != in[0].dtype) fail(node, "inputs have different types");
      shapes.push_back(i.shape);
    }
    dispatch(types, in[0].dtype, node, [](auto) {});
    if (in.size() == 1)
      return make_function_kernel([](KernelContext& ctx) { ctx.set_output(0, ctx.input(0).reshaped(ctx.input(0).shape())); });
    Shape out = broadcast_shapes(shapes, node);
    std::vector<Plan> plans{make_plan({shapes[0], shapes[1]}, out)};
    for (size_t k = 2; k < shapes.size(); ++k) plans.push_back(make_plan({out, shapes[k]}, out));
    return make_function_kernel([=](KernelContext& ctx) {
      dispatch(types, ctx.input(0).dtype(), ctx.node(), [&](auto tag) {
        using T = decltype(tag);
        Tensor& y = ctx.output(0, dtype_for<T>(), out);
        T* dst = mdata<T>(y);
        auto f = lift<T, T, T>(core);
        run2(plans[0], cdata<T>(ctx.input(0)), cdata<T>(ctx.input(1)), dst, f);
        for (size_t k = 2; k < ctx.num_inputs(); ++k) run2(plans[k - 1], dst, cdata<T>(ctx.input(k)), dst, f);
        if (mean) {
          const auto n = static_cast<compute_t<T>>(ctx.num_inputs());
          parallel_for(y.numel(), [&](int64_t i) { dst[i] = store<T>(load(dst[i]) / n); });
        }
      });
    });
  };
}

std::unique_ptr<Kernel> make_where(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() != 3 || !in[0].present || !in[1].present || !in[2].present) fail(node, "expects three inputs");
  if (in[0].dtype != DType::Bool) fail(node, "condition must be bool, got " + dtype_name(in[0].dtype));
  if (in[1].dtype != in[2].dtype) fail(node, "X and Y have different types");
  dispatch(AllTypes{}, in[1].dtype, node, [](auto) {});
  std::vector<Shape> shapes{in[0].shape, in[1].shape, in[2].shape};
  Plan plan = make_plan(shapes, broadcast_shapes(shapes, node));
  return make_function_kernel([plan](KernelContext& ctx) {
    const Tensor& c = ctx.input(0);
    const Tensor& x = ctx.input(1);
    const Tensor& yv = ctx.input(2);
    dispatch(AllTypes{}, x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      Tensor& out = ctx.output(0, x.dtype(), plan.out_shape);
      const bool* cd = c.data<bool>();
      const T *xd = cdata<T>(x), *yd = cdata<T>(yv);
      T* od = mdata<T>(out);
      const int64_t sc = plan.contiguous[0], sx = plan.contiguous[1], sy = plan.contiguous[2];
      for_each_span(plan, [&](const Strides& off, int64_t o, int64_t n) {
        const bool* cp = cd + off[0];
        const T *xp = xd + off[1], *yp = yd + off[2];
        T* op = od + o;
        for (int64_t i = 0; i < n; ++i) op[i] = cp[i * sc] ? xp[i * sx] : yp[i * sy];
      });
    });
  });
}

// Before opset 7, broadcasting could align the second operand at `axis` instead of at the
// trailing dims; the driver's unbroadcast follows numpy rules only.
void require_numpy_broadcast(GradientBuilder& b) {
  const Node& n = b.node();
  if (n.opset < 7 && n.attr_int("broadcast", 0) != 0 && n.has_attr("axis"))
    throw UnsupportedOp(n.describe() + ": no gradient for legacy broadcasting with an 'axis' attribute");
}

// Emitted binary ops in a graph older than opset 7 need broadcast=1 to broadcast their
// second operand (suffix-aligned); the rules below put the full-size operand first.
Attributes legacy_broadcast(const GradientBuilder& b) {
  if (b.node().opset < 7) return {{"broadcast", int64_t{1}}};
  return {};
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


// ---- gradients of Pow, Max/Min, Sum/Mean, Where, PRelu, Mod ----------------------------

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

// Max/Min: the gradient goes to the input(s) equal to the output; ties split it evenly
// (as PyTorch's maximum/minimum do for two tensors). Where the output is NaN the gradients
// are NaN.
void select_gradient(GradientBuilder& b) {
  const size_t n = b.node().inputs.size();
  if (n == 1) {
    b.GI(0, b.GO(0));
    return;
  }
  Value* y = b.O(0);
  const auto to = static_cast<int64_t>(y->dtype);
  std::vector<Value*> masks;
  for (size_t i = 0; i < n; ++i) masks.push_back(b.op("Cast", {b.op("Equal", {y, b.I(i)})}, {{"to", to}}));
  Value* share = b.div(b.GO(0), b.op("Sum", masks));
  for (size_t i = 0; i < n; ++i)
    if (b.needs_grad(i)) b.GI_broadcast(i, b.mul(share, masks[i]));
}

void sum_gradient(GradientBuilder& b) {
  for (size_t i = 0; i < b.node().inputs.size(); ++i)
    if (b.needs_grad(i)) b.GI_broadcast(i, b.GO(0));
}

void mean_gradient(GradientBuilder& b) {
  const size_t n = b.node().inputs.size();
  Value* g = b.GO(0);
  if (n > 1) g = b.op("Mul", {g, scalar_of(b, 1.0 / static_cast<double>(n), b.O(0)->dtype)}, legacy_broadcast(b));
  for (size_t i = 0; i < n; ++i)
    if (b.needs_grad(i)) b.GI_broadcast(i, g);
}

// Where(C, X, Y): dX = Where(C, dY, 0), dY = Where(C, 0, dY); no gradient to C.
void where_gradient(GradientBuilder& b) {
  Value* zero = scalar_of(b, 0.0, b.O(0)->dtype);
  if (b.needs_grad(1)) b.GI_broadcast(1, b.op("Where", {b.I(0), b.GO(0), zero}));
  if (b.needs_grad(2)) b.GI_broadcast(2, b.op("Where", {b.I(0), zero, b.GO(0)}));
}

// Mod with fmod=1 (float): Y = A - trunc(A/B) * B, so dA = dY and dB = -trunc(A/B) * dY
// = dY * (Y - A) / B. Integer Mod has no float values to differentiate.
void mod_gradient(GradientBuilder& b) {
  if (b.needs_grad(0)) b.GI_broadcast(0, b.GO(0));
  if (b.needs_grad(1)) b.GI_broadcast(1, b.mul(b.GO(0), b.div(b.sub(b.O(0), b.I(0)), b.I(1))));
}

// ai.onnxtrain.PReluGrad(dY, X, slope) -> (dX, dSlope). dX = dY * (X < 0 ? slope : 1);
// dSlope = dY * X where X < 0, summed over the broadcast dims to slope's own shape in the
// kernel (in double). legacy_channel=1: the opset < 7 per-channel slope ([C] against dim 1).
std::unique_ptr<Kernel> make_prelu_grad(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() != 3 || !in[0].present || !in[1].present || !in[2].present) fail(node, "expects dY, X and slope");
  if (in[0].dtype != in[1].dtype || in[1].dtype != in[2].dtype) fail(node, "input types differ");
  if (in[0].shape != in[1].shape) fail_shape(node, "dY and X differ in shape");
  dispatch(FloatTypes{}, in[0].dtype, node, [](auto) {});
  const Shape x_shape = in[1].shape;
  Shape slope = in[2].shape;
  if (node.attr_int("legacy_channel", 0) && slope.size() == 1 && slope[0] != 1 && x_shape.size() >= 2 &&
      slope[0] == x_shape[1]) {
    slope = Shape(x_shape.size() - 1, 1);
    slope[0] = x_shape[1];
  }
  if (broadcast_shapes({x_shape, slope}, node) != x_shape)
    fail_shape(node, "slope " + shape_str(in[2].shape) + " does not broadcast to X " + shape_str(x_shape));
  Plan plan = make_plan({x_shape, x_shape, slope}, x_shape);
  const Shape slope_out = in[2].shape;
  return make_function_kernel([plan, slope_out](KernelContext& ctx) {
    const Tensor& dy = ctx.input(0);
    const Tensor& x = ctx.input(1);
    const Tensor& s = ctx.input(2);
    dispatch(FloatTypes{}, x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      using C = compute_t<T>;
      const T *gd = cdata<T>(dy), *xd = cdata<T>(x), *sd = cdata<T>(s);
      Tensor& dx = ctx.output(0, x.dtype(), x.shape());
      T* dxd = mdata<T>(dx);
      const int64_t ss = plan.contiguous[2];
      for_each_span(plan, [&](const Strides& off, int64_t o, int64_t n) {
        const T* sp = sd + off[2];
        for (int64_t i = 0; i < n; ++i) {
          C xv = load(xd[o + i]), gv = load(gd[o + i]);
          dxd[o + i] = store<T>(xv < 0 ? gv * load(sp[i * ss]) : gv);
        }
      });
      if (!ctx.wants_output(1)) return;
      Tensor& ds = ctx.output(1, x.dtype(), slope_out);
      std::vector<double> acc(static_cast<size_t>(ds.numel()), 0.0);
      auto contribution = [&](int64_t k) -> double {
        C xv = load(xd[k]);
        return xv < 0 ? static_cast<double>(load(gd[k])) * static_cast<double>(xv) : 0.0;
      };
      const int64_t rows = plan.rows(), inner = plan.inner;
      if (plan.numel > 0 && ss) {
        // slope varies along the inner dim: fold rows serially (vectorisable inner loop).
        Strides off;
        for (int64_t r = 0; r < rows; ++r) {
          plan.offsets(r, off);
          double* a = acc.data() + off[2];
          for (int64_t i = 0; i < inner; ++i) a[i] += contribution(r * inner + i);
        }
      } else if (plan.numel > 0) {
        // one slope element per row: row sums in parallel, then folded.
        std::vector<double> part(static_cast<size_t>(rows));
        parallel_for(rows, [&](int64_t r) {
          double sum = 0;
          for (int64_t i = 0; i < inner; ++i) sum += contribution(r * inner + i);
          part[r] = sum;
        }, std::max<int64_t>(1, kBlock / inner));
        Strides off;
        for (int64_t r = 0; r < rows; ++r) {
          plan.offsets(r, off);
          acc[off[2]] += part[r];
        }
      }
      T* dsd = mdata<T>(ds);
      for (size_t k = 0; k < acc.size(); ++k) dsd[k] = store<T>(acc[k]);
    });
  });
}

void prelu_gradient(GradientBuilder& b) {
  Attributes attrs{{"legacy_channel", int64_t{b.node().opset < 7 ? 1 : 0}}};
  const bool slope = b.needs_grad(1);
  auto outs = b.op_n("PReluGrad", {b.GO(0), b.I(0), b.I(1)}, slope ? 2 : 1, std::move(attrs), graph::kTrainingDomain);
  if (b.needs_grad(0)) b.GI(0, outs[0]);
  if (slope) b.GI(1, outs[1]);
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

  // NaN wins in Max and Min, as in numpy.
  auto max = [](auto a, auto b) { return (a > b || a != a) ? a : b; };
  auto min = [](auto a, auto b) { return (a < b || a != a) ? a : b; };
  auto add = [](auto a, auto b) { return a + b; };
  r.add({"", "Max", 1, INT_MAX, variadic(NumericTypes{}, max, false), "own", select_gradient});
  r.add({"", "Min", 1, INT_MAX, variadic(NumericTypes{}, min, false), "own", select_gradient});
  r.add({"", "Sum", 1, INT_MAX, variadic(FloatTypes{}, add, false), "own", sum_gradient});
  r.add({"", "Mean", 1, INT_MAX, variadic(FloatTypes{}, add, true), "own", mean_gradient});

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

  r.add({"", "Where", 9, INT_MAX, make_where, "own", where_gradient, {0}});
  r.add({"", "PRelu", 1, INT_MAX,
         binary<false>(NumericTypes{}, both([](auto x, auto slope) {
                         if constexpr (std::is_unsigned_v<decltype(x)>) return x;
                         else return x < 0 ? wrap_mul(x, slope) : x;
                       }),
                       prelu_shapes),
         "own", prelu_gradient});
  r.add({graph::kTrainingDomain, "PReluGrad", 1, INT_MAX, make_prelu_grad, "own"});
}

}  // namespace onnxtrain::ops
