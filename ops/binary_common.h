#pragma once
// What binary.cpp (Add, Sub, Mul, Div, Pow, Mod, BitShift, comparisons, logic) and
// variadic_where_prelu.cpp (Max, Min, Sum, Mean, Where, PRelu) share: type lists, wrap-around
// integer arithmetic, the broadcast plan and its loops, the binary kernel factory and the
// scalar helpers of the gradient rules.
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

// variadic_where_prelu.cpp, called from register_binary_ops.
void register_variadic_where_prelu_ops(Registry& r);

namespace binary_impl {

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

Plan make_plan(const std::vector<Shape>& inputs, const Shape& out);

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
std::vector<Shape> binary_shapes(const Node& node, const std::vector<InputInfo>& in);


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

// A scalar constant of a float dtype (float16/bfloat16 included).
Value* scalar_of(GradientBuilder& b, double value, DType dtype);

// Emitted binary ops in a graph older than opset 7 need broadcast=1 to broadcast their
// second operand (suffix-aligned); the rules below put the full-size operand first.
Attributes legacy_broadcast(const GradientBuilder& b);

}  // namespace binary_impl

}  // namespace onnxtrain::ops
