// Generators: ConstantOfShape, Range, EyeLike and the opset-17 window functions.
#include <cmath>
#include <cstring>
#include <numbers>
#include <string>

#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

namespace {

// Fills `count` elements of `esize` bytes with the bit pattern at `value`.
void fill_bytes(std::byte* dst, int64_t count, const std::byte* value, size_t esize) {
  bool all_zero = true;
  for (size_t b = 0; b < esize; ++b) all_zero &= value[b] == std::byte{0};
  if (all_zero) {
    std::memset(dst, 0, static_cast<size_t>(count) * esize);
    return;
  }
  parallel_for(count, [&](int64_t i) { std::memcpy(dst + i * esize, value, esize); }, 65536);
}

// A scalar input of one of the listed types; fails naming the input otherwise.
const Tensor& scalar_input(KernelContext& ctx, size_t i, const char* name) {
  const Tensor& t = ctx.input(i);
  if (t.numel() != 1) fail_shape(ctx.node(), std::string("'") + name + "' must be a scalar, got shape " + shape_str(t.shape()));
  return t;
}

// ---------------------------------------------------------- ConstantOfShape

std::unique_ptr<Kernel> make_constant_of_shape(const Node& node, const std::vector<InputInfo>& in) {
  if (in[0].dtype != DType::Int64) fail(node, "input must be int64, got " + dtype_name(in[0].dtype));
  if (in[0].shape.size() != 1) fail_shape(node, "input must be 1-D, got shape " + shape_str(in[0].shape));
  Tensor value = Tensor::scalar(0.0f);
  if (const Tensor* v = node.attr_tensor("value")) {
    if (v->numel() != 1) fail(node, "attribute 'value' must hold one element, got shape " + shape_str(v->shape()));
    if (v->dtype() == DType::String) fail(node, "string values are not supported");
    value = v->clone();
  }
  return make_function_kernel([value](KernelContext& ctx) {
    Shape shape = ctx.input(0).to_vector<int64_t>();
    for (int64_t d : shape)
      if (d < 0) fail_shape(ctx.node(), "shape " + shape_str(shape) + " has a negative dimension");
    Tensor& y = ctx.output(0, value.dtype(), shape);
    fill_bytes(static_cast<std::byte*>(y.raw()), y.numel(), static_cast<const std::byte*>(value.raw()),
               dtype_size(value.dtype()));
  });
}

// -------------------------------------------------------------------- Range

std::unique_ptr<Kernel> make_range(const Node& node, const std::vector<InputInfo>& in) {
  for (size_t i = 1; i < 3; ++i)
    if (in[i].dtype != in[0].dtype)
      fail(node, "start, limit and delta must have one type, got " + dtype_name(in[0].dtype) + ", " +
                     dtype_name(in[1].dtype) + ", " + dtype_name(in[2].dtype));
  return make_function_kernel([](KernelContext& ctx) {
    const Node& node = ctx.node();
    const Tensor& ts = scalar_input(ctx, 0, "start");
    const Tensor& tl = scalar_input(ctx, 1, "limit");
    const Tensor& td = scalar_input(ctx, 2, "delta");
    dispatch_types<float, double, int16_t, int32_t, int64_t>(ts.dtype(), node, [&](auto tag) {
      using T = decltype(tag);
      const T start = ts.data<T>()[0], limit = tl.data<T>()[0], delta = td.data<T>()[0];
      if (delta == T(0)) fail(node, "delta must not be zero");
      int64_t n = 0;
      if constexpr (std::is_floating_point_v<T>) {
        const double count = std::ceil((static_cast<double>(limit) - start) / delta);
        if (!std::isfinite(count) || count > 9.0e15)
          fail(node, "range(" + std::to_string(start) + ", " + std::to_string(limit) + ", " + std::to_string(delta) +
                         ") does not have a representable length");
        n = count > 0 ? static_cast<int64_t>(count) : 0;
        Tensor& y = ctx.output(0, ts.dtype(), {n});
        T* out = y.data<T>();
        parallel_for(n, [&](int64_t i) { out[i] = static_cast<T>(start + static_cast<double>(i) * delta); });
      } else {
        // 128-bit arithmetic: limit - start and the ceiling division cannot overflow.
        const __int128 diff = static_cast<__int128>(limit) - start, d = delta;
        if (d > 0 && diff > 0) n = static_cast<int64_t>((diff + d - 1) / d);
        if (d < 0 && diff < 0) n = static_cast<int64_t>((-diff - d - 1) / -d);
        Tensor& y = ctx.output(0, ts.dtype(), {n});
        T* out = y.data<T>();
        parallel_for(n, [&](int64_t i) { out[i] = static_cast<T>(start + static_cast<__int128>(i) * d); });
      }
    });
  });
}

// ------------------------------------------------------------------ EyeLike

// The bit pattern of 1 in `dtype` (float16 and bfloat16 included, they are never computed on).
std::vector<std::byte> one_bytes(DType dtype, const Node& node) {
  std::vector<std::byte> bytes(dtype_size(dtype));
  auto put = [&](auto v) { std::memcpy(bytes.data(), &v, sizeof v); };
  switch (dtype) {
    case DType::Float16: put(uint16_t{0x3C00}); break;
    case DType::BFloat16: put(uint16_t{0x3F80}); break;
    default: dispatch_all(dtype, node, [&](auto tag) { put(static_cast<decltype(tag)>(1)); });
  }
  return bytes;
}

std::unique_ptr<Kernel> make_eye_like(const Node& node, const std::vector<InputInfo>& in) {
  const Shape& s = in[0].shape;
  if (s.size() != 2) fail_shape(node, "input must be 2-D, got shape " + shape_str(s));
  const DType dtype = node.has_attr("dtype") ? static_cast<DType>(node.attr_int("dtype")) : in[0].dtype;
  if (dtype == DType::String || dtype == DType::Undefined) fail(node, "cannot produce element type " + dtype_name(dtype));
  const std::vector<std::byte> one = one_bytes(dtype, node);
  // Any |k| beyond rows + cols leaves the matrix empty; clamping keeps -k and cols - k defined.
  const int64_t k = std::clamp<int64_t>(node.attr_int("k", 0), -(s[0] + s[1]), s[0] + s[1]);
  // Row i holds its one at column i + k; rows outside [first, last) have none.
  const int64_t first = std::clamp<int64_t>(-k, 0, s[0]), last = std::clamp<int64_t>(s[1] - k, 0, s[0]);
  return make_function_kernel([=](KernelContext& ctx) {
    Tensor& y = ctx.output(0, dtype, s);
    const size_t esize = one.size();
    auto* dst = static_cast<std::byte*>(y.raw());
    if (y.numel()) std::memset(dst, 0, y.nbytes());
    for (int64_t i = first; i < last; ++i) std::memcpy(dst + (i * s[1] + i + k) * esize, one.data(), esize);
  });
}

// ------------------------------------------------------------------ Windows

// Generalised cosine window a0 - a1 cos(2 pi n / N) + a2 cos(4 pi n / N), where N is the
// size for a periodic window and size - 1 for a symmetric one.
struct CosineWindow {
  double a0, a1, a2;
};

KernelFactory window_factory(CosineWindow w) {
  return [w](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    if (in[0].dtype != DType::Int32 && in[0].dtype != DType::Int64)
      fail(node, "size must be int32 or int64, got " + dtype_name(in[0].dtype));
    const DType dtype = static_cast<DType>(node.attr_int("output_datatype", static_cast<int64_t>(DType::Float)));
    const bool periodic = node.attr_int("periodic", 1) != 0;
    return make_function_kernel([w, dtype, periodic](KernelContext& ctx) {
      const int64_t size = scalar_input(ctx, 0, "size").as_int64()[0];
      if (size < 0) fail(ctx.node(), "size must be >= 0, got " + std::to_string(size));
      Tensor& y = ctx.output(0, dtype, {size});
      const int64_t denom = periodic ? size : size - 1;
      dispatch_numeric(dtype, ctx.node(), [&](auto tag) {
        using T = decltype(tag);
        T* out = y.data<T>();
        if (denom <= 0) {
          // A one-point symmetric window (N = 0) is [1], like numpy.hanning(1).
          std::fill_n(out, size, T(1));
          return;
        }
        const double step = 2 * std::numbers::pi / static_cast<double>(denom);
        parallel_for(size, [&](int64_t n) {
          const double x = step * static_cast<double>(n);
          out[n] = static_cast<T>(w.a0 - w.a1 * std::cos(x) + w.a2 * std::cos(2 * x));
        });
      });
    });
  };
}

}  // namespace

void register_generator_ops(Registry& r) {
  // Generators: the outputs depend on shapes, sizes and attributes only (Range on its
  // scalar bounds, which are treated as constants), so no gradient flows through them.
  constexpr bool nd = true;  // not_differentiable
  r.add({"", "ConstantOfShape", 9, INT_MAX, make_constant_of_shape, "own", {}, {}, nd});
  r.add({"", "Range", 11, INT_MAX, make_range, "own", {}, {}, nd});
  r.add({"", "EyeLike", 9, INT_MAX, make_eye_like, "own", {}, {}, nd});
  r.add({"", "HannWindow", 17, INT_MAX, window_factory({0.5, 0.5, 0.0}), "own", {}, {}, nd});
  r.add({"", "HammingWindow", 17, INT_MAX, window_factory({25.0 / 46.0, 21.0 / 46.0, 0.0}), "own", {}, {}, nd});
  r.add({"", "BlackmanWindow", 17, INT_MAX, window_factory({0.42, 0.5, 0.08}), "own", {}, {}, nd});
}

}  // namespace onnxtrain::ops
