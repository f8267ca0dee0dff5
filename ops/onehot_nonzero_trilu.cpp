// OneHot, NonZero and Trilu, with their gradient rules. Shared helpers: indexing_common.h.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ops/indexing_common.h"

namespace onnxtrain::ops {

namespace indexing_impl {

// ------------------------------------------------------------------ OneHot

// A scalar numeric input converted to int64 with the C++ truncation of a cast, refusing
// values the cast cannot represent.
int64_t scalar_as_int64(const Tensor& t, const Node& node, const char* name) {
  if (t.numel() != 1) fail_shape(node, std::string("'") + name + "' must hold one value, got shape " + shape_str(t.shape()));
  int64_t result = 0;
  dispatch_numeric(t.dtype(), node, [&](auto tag) {
    using T = decltype(tag);
    const T v = t.data<T>()[0];
    if constexpr (std::is_floating_point_v<T>) {
      if (!(std::abs(v) < 9.2e18)) fail(node, std::string("'") + name + "' value " + std::to_string(v) + " is not a valid integer");
    } else if constexpr (std::is_same_v<T, uint64_t>) {
      if (v > static_cast<uint64_t>(INT64_MAX)) fail(node, std::string("'") + name + "' value is too large");
    }
    result = static_cast<int64_t>(v);
  });
  return result;
}

std::unique_ptr<Kernel> make_one_hot(const Node& node, const std::vector<InputInfo>& in) {
  const int64_t rank = static_cast<int64_t>(in[0].shape.size());
  int64_t axis = node.attr_int("axis", -1);
  if (axis < -rank - 1 || axis > rank)
    fail(node, "axis " + std::to_string(axis) + " is out of range [" + std::to_string(-rank - 1) + ", " + std::to_string(rank) + "]");
  if (axis < 0) axis += rank + 1;
  if (shape_numel(in[2].shape) != 2) fail_shape(node, "values must hold [off_value, on_value], got shape " + shape_str(in[2].shape));
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= in[0].shape[d];
  const int64_t inner = outer ? shape_numel(in[0].shape) / outer : 0;
  // Negative indices count from the back since opset 11; before, they select nothing.
  const bool negative_indices = node.opset >= 11;
  return make_function_kernel([axis, outer, inner, negative_indices](KernelContext& ctx) {
    const Node& node = ctx.node();
    const Tensor& indices = ctx.input(0);
    const Tensor& values = ctx.input(2);
    const int64_t depth = scalar_as_int64(ctx.input(1), node, "depth");
    if (depth < 0) fail(node, "depth must be >= 0, got " + std::to_string(depth));
    Shape out_shape = indices.shape();
    out_shape.insert(out_shape.begin() + axis, depth);
    Tensor& out = ctx.output(0, values.dtype(), out_shape);
    if (out.numel() == 0) return;
    const double lowest = negative_indices ? static_cast<double>(-depth) : 0.0;
    const auto* vals = static_cast<const std::byte*>(values.raw());
    auto* dst = static_cast<std::byte*>(out.raw());
    dispatch_element_size(values.dtype(), node, [&](auto size_tag) {
      constexpr size_t S = decltype(size_tag)::size;
      dispatch_numeric(indices.dtype(), node, [&](auto itag) {
        using I = decltype(itag);
        const I* idx = indices.data<I>();
        // out[o, d, i] = values[idx[o, i] == d]; indices outside [lowest, depth) match nothing.
        parallel_for(outer * depth, [&](int64_t od) {
          const int64_t o = od / depth, d = od % depth;
          const I* row = idx + o * inner;
          std::byte* orow = dst + od * inner * S;
          for (int64_t i = 0; i < inner; ++i) {
            const double v = static_cast<double>(row[i]);
            // Truncation toward zero, as the cast to int64 the spec prescribes.
            const bool hit = v > lowest - 1 && v < static_cast<double>(depth) &&
                             wrap(static_cast<int64_t>(v), depth) == d;
            std::memcpy(orow + i * S, vals + (hit ? S : 0), S);
          }
        }, std::max<int64_t>(1, 16384 / std::max<int64_t>(inner, 1)));
      });
    });
  });
}

// ----------------------------------------------------------------- NonZero

std::unique_ptr<Kernel> make_non_zero(const Node&, const std::vector<InputInfo>&) {
  return make_function_kernel([](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    // A scalar behaves as a one-element vector (numpy's atleast_1d(x).nonzero()).
    const Shape shape = x.rank() == 0 ? Shape{1} : x.shape();
    const int64_t rank = static_cast<int64_t>(shape.size()), n = x.numel();
    dispatch_all(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const T* v = x.data<T>();
      int64_t count = 0;
      for (int64_t i = 0; i < n; ++i) count += v[i] != T(0);
      Tensor& out = ctx.output(0, DType::Int64, {rank, count});
      int64_t* o = out.data<int64_t>();
      Shape coord(rank, 0);
      int64_t k = 0;
      for (int64_t i = 0; i < n; ++i) {
        if (v[i] != T(0)) {
          for (int64_t d = 0; d < rank; ++d) o[d * count + k] = coord[d];
          ++k;
        }
        for (int64_t d = rank - 1; d >= 0 && ++coord[d] == shape[d]; --d) coord[d] = 0;
      }
    });
  });
}

// ------------------------------------------------------------------- Trilu

std::unique_ptr<Kernel> make_trilu(const Node& node, const std::vector<InputInfo>& in) {
  const Shape& s = in[0].shape;
  if (s.size() < 2) fail_shape(node, "input must have rank >= 2, got " + shape_str(s));
  const int64_t rows = s[s.size() - 2], cols = s.back();
  const int64_t matrices = rows > 0 && cols > 0 ? shape_numel(s) / (rows * cols) : 0;
  const bool upper = node.attr_int("upper", 1) != 0;
  return make_function_kernel([=](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    int64_t k = 0;
    if (ctx.has_input(1)) {
      const Tensor& kt = ctx.input(1);
      if (kt.dtype() != DType::Int64 || kt.numel() != 1) fail(ctx.node(), "k must be an int64 scalar");
      k = kt.data<int64_t>()[0];
    }
    // Beyond +-(rows + cols) every k means the same; clamping keeps j - i - k from overflowing.
    k = std::clamp<int64_t>(k, -(rows + cols), rows + cols);
    Tensor& y = ctx.output(0, x.dtype(), x.shape());
    if (y.numel() == 0) return;
    const size_t esize = dtype_size(x.dtype());
    const auto* src = static_cast<const std::byte*>(x.raw());
    auto* dst = static_cast<std::byte*>(y.raw());
    // Row i keeps columns [lo, hi): upper keeps j >= i + k, lower keeps j <= i + k.
    parallel_for(
        matrices * rows,
        [&](int64_t r) {
          const int64_t i = r % rows;
          const int64_t lo = upper ? std::clamp<int64_t>(i + k, 0, cols) : 0;
          const int64_t hi = upper ? cols : std::clamp<int64_t>(i + k + 1, 0, cols);
          const size_t row = static_cast<size_t>(r * cols) * esize;
          std::byte* o = dst + row;
          // Zero bytes are zero in every numeric type (float +0.0 included).
          std::memset(o, 0, static_cast<size_t>(lo) * esize);
          if (hi > lo) std::memcpy(o + lo * esize, src + row + lo * esize, static_cast<size_t>(hi - lo) * esize);
          std::memset(o + std::max(hi, lo) * esize, 0, static_cast<size_t>(cols - std::max(hi, lo)) * esize);
        },
        std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)));
  });
}


// ------------------------------------------------------------ gradient rules

// Trilu is linear and masks by position: dX = Trilu(dY) with the same k and upper.
void trilu_gradient(GradientBuilder& b) {
  const graph::Node& n = b.node();
  std::vector<Value*> inputs{b.GO(0)};
  if (n.has_input(1)) inputs.push_back(b.I(1));
  b.GI(0, b.op("Trilu", inputs, {{"upper", n.attr_int("upper", 1)}}));
}

// OneHot: Y = off where no hit, on where hit. dOn = sum(dY * hot), dOff = sum(dY) - dOn,
// with hot = OneHot(indices, depth, [0, 1]) (the same kernel decides the hits).
void one_hot_gradient(GradientBuilder& b) {
  const graph::Node& n = b.node();
  Value* values = b.I(2);
  const Tensor zero_one = values->dtype == DType::Double ? Tensor::from_vector<double>({2}, {0.0, 1.0})
                                                         : Tensor::from_vector<float>({2}, {0.f, 1.f});
  Value* hot = b.op("OneHot", {b.I(0), b.I(1), b.constant(zero_one)}, {{"axis", n.attr_int("axis", -1)}});
  Value* gy = b.reshape(b.GO(0), {-1});
  Value* on = b.reduce_sum(b.mul(gy, b.reshape(hot, {-1})), {0}, true);
  Value* all = b.reduce_sum(gy, {0}, true);
  Value* both = b.op("Concat", {b.sub(all, on), on}, {{"axis", int64_t{0}}});
  b.GI(2, b.op("Reshape", {both, b.shape_of(values)}));
}

}  // namespace indexing_impl

void register_onehot_nonzero_trilu_ops(Registry& r) {
  using namespace indexing_impl;
  r.add({"", "OneHot", 9, INT_MAX, make_one_hot, "own", one_hot_gradient, {0, 1}});
  r.add({"", "NonZero", 9, INT_MAX, make_non_zero, "own", {}, {}, /*not_differentiable*/ true});
  r.add({"", "Trilu", 14, INT_MAX, make_trilu, "own", trilu_gradient, {1}});
}

}  // namespace onnxtrain::ops
