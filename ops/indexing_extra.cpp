// The rarer indexing ops: Compress, ReverseSequence, Unique, NonMaxSuppression.
// Registered from register_indexing_ops (indexing.cpp). Gradient rules at the end.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>

#include "ops/gradient.h"
#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

void register_indexing_extra_ops(Registry& r);

namespace {

// ---------------------------------------------------------------- Compress

std::unique_ptr<Kernel> make_compress(const Node& node, const std::vector<InputInfo>& in) {
  const Shape& s = in[0].shape;
  if (in[1].dtype != DType::Bool) fail(node, "condition must be bool, got " + dtype_name(in[1].dtype));
  if (in[1].shape.size() != 1) fail_shape(node, "condition must be 1-D, got " + shape_str(in[1].shape));
  const bool flatten = !node.has_attr("axis");
  if (!flatten && s.empty()) fail_shape(node, "input must have rank >= 1 when axis is given");
  const int64_t axis = flatten ? 0 : normalize_axis(node.attr_int("axis"), static_cast<int64_t>(s.size()), node);
  // The selected axis is `dim` long with `outer` blocks before it and `inner` elements after.
  const int64_t dim = flatten ? shape_numel(s) : s[axis];
  int64_t outer = 1, inner = 1;
  if (!flatten) {
    for (int64_t d = 0; d < axis; ++d) outer *= s[d];
    for (size_t d = axis + 1; d < s.size(); ++d) inner *= s[d];
  }
  return make_function_kernel([=](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    const Tensor& cond = ctx.input(1);
    const bool* c = cond.data<bool>();
    // numpy.compress: a shorter condition drops the trailing slices; a longer one may only
    // add false entries.
    std::vector<int64_t> picked;
    for (int64_t i = 0; i < cond.numel(); ++i) {
      if (!c[i]) continue;
      if (i >= dim)
        fail(ctx.node(), "condition selects index " + std::to_string(i) + " but the " +
                             (flatten ? std::string("flattened input") : "axis " + std::to_string(axis)) + " has size " +
                             std::to_string(dim));
      picked.push_back(i);
    }
    Shape out_shape = flatten ? Shape{static_cast<int64_t>(picked.size())} : x.shape();
    if (!flatten) out_shape[axis] = static_cast<int64_t>(picked.size());
    Tensor& y = ctx.output(0, x.dtype(), out_shape);
    if (y.numel() == 0) return;
    const size_t block = static_cast<size_t>(inner) * dtype_size(x.dtype());
    const auto* src = static_cast<const std::byte*>(x.raw());
    auto* dst = static_cast<std::byte*>(y.raw());
    const int64_t n = static_cast<int64_t>(picked.size());
    parallel_for(
        outer * n,
        [&](int64_t i) {
          const int64_t o = i / n, j = i % n;
          std::memcpy(dst + i * block, src + (o * dim + picked[j]) * block, block);
        },
        std::max<int64_t>(1, 65536 / static_cast<int64_t>(block)));
  });
}

// --------------------------------------------------------- ReverseSequence

std::unique_ptr<Kernel> make_reverse_sequence(const Node& node, const std::vector<InputInfo>& in) {
  const Shape& s = in[0].shape;
  if (s.size() < 2) fail_shape(node, "input must have rank >= 2, got " + shape_str(s));
  const int64_t batch_axis = node.attr_int("batch_axis", 1), time_axis = node.attr_int("time_axis", 0);
  if ((batch_axis != 0 && batch_axis != 1) || (time_axis != 0 && time_axis != 1) || batch_axis == time_axis)
    fail(node, "batch_axis and time_axis must be 0 and 1 in some order, got " + std::to_string(batch_axis) + " and " +
                   std::to_string(time_axis));
  if (in[1].dtype != DType::Int64) fail(node, "sequence_lens must be int64, got " + dtype_name(in[1].dtype));
  const int64_t batch = s[batch_axis], time = s[time_axis];
  if (in[1].shape != Shape{batch})
    fail_shape(node, "sequence_lens " + shape_str(in[1].shape) + " must have shape [" + std::to_string(batch) + "]");
  const int64_t inner = shape_numel(Shape(s.begin() + 2, s.end()));
  // Strides (in inner blocks) of the batch and time axes, both among the first two dims.
  const int64_t batch_stride = batch_axis == 0 ? time : 1, time_stride = time_axis == 0 ? batch : 1;
  return make_function_kernel([=](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    const int64_t* lens = ctx.input(1).data<int64_t>();
    for (int64_t b = 0; b < batch; ++b)
      if (lens[b] < 0 || lens[b] > time)
        fail(ctx.node(), "sequence_lens[" + std::to_string(b) + "] = " + std::to_string(lens[b]) + " is outside [0, " +
                             std::to_string(time) + "]");
    Tensor& y = ctx.output(0, x.dtype(), x.shape());
    if (y.numel() == 0) return;
    const size_t block = static_cast<size_t>(inner) * dtype_size(x.dtype());
    const auto* src = static_cast<const std::byte*>(x.raw());
    auto* dst = static_cast<std::byte*>(y.raw());
    parallel_for(
        batch * time,
        [&](int64_t i) {
          const int64_t b = i / time, t = i % time;
          const int64_t from = t < lens[b] ? lens[b] - 1 - t : t;
          std::memcpy(dst + (b * batch_stride + t * time_stride) * block,
                      src + (b * batch_stride + from * time_stride) * block, block);
        },
        std::max<int64_t>(1, 65536 / static_cast<int64_t>(block)));
  });
}

// ------------------------------------------------------------------ Unique

// A strict weak order on values; NaNs sort last and equal each other (numpy.unique).
template <typename T>
inline bool value_less(T a, T b) {
  if constexpr (std::is_floating_point_v<T>)
    return a < b || (std::isnan(b) && !std::isnan(a));
  else
    return a < b;
}

std::unique_ptr<Kernel> make_unique_op(const Node& node, const std::vector<InputInfo>& in) {
  const Shape& s = in[0].shape;
  const bool flatten = !node.has_attr("axis");
  if (!flatten && s.empty()) fail_shape(node, "input must have rank >= 1 when axis is given");
  const int64_t axis = flatten ? 0 : normalize_axis(node.attr_int("axis"), static_cast<int64_t>(s.size()), node);
  const bool sorted = node.attr_int("sorted", 1) != 0;
  // Slices along the axis: `count` of them, each `outer` x `inner` elements.
  const int64_t count = flatten ? shape_numel(s) : s[axis];
  int64_t outer = 1, inner = 1;
  if (!flatten) {
    for (int64_t d = 0; d < axis; ++d) outer *= s[d];
    for (size_t d = axis + 1; d < s.size(); ++d) inner *= s[d];
  }
  return make_function_kernel([=](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    dispatch_all(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const T* v = x.data<T>();
      // -1, 0, 1 like memcmp, comparing slices a and b element by element.
      auto compare = [&](int64_t a, int64_t b) {
        for (int64_t o = 0; o < outer; ++o)
          for (int64_t i = 0; i < inner; ++i) {
            const T va = v[(o * count + a) * inner + i], vb = v[(o * count + b) * inner + i];
            if (value_less(va, vb)) return -1;
            if (value_less(vb, va)) return 1;
          }
        return 0;
      };
      std::vector<int64_t> order(count);
      std::iota(order.begin(), order.end(), 0);
      // Stable, so each group of equal slices starts with its first occurrence.
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return compare(a, b) < 0; });
      std::vector<int64_t> first;                 // per group (in sorted order): first occurrence
      std::vector<int64_t> group_of(count);       // per slice: its group
      std::vector<int64_t> group_size;
      for (int64_t k = 0; k < count; ++k) {
        if (k == 0 || compare(order[k - 1], order[k]) != 0) {
          first.push_back(order[k]);
          group_size.push_back(0);
        }
        group_of[order[k]] = static_cast<int64_t>(first.size()) - 1;
        ++group_size.back();
      }
      const int64_t unique = static_cast<int64_t>(first.size());
      // Output rank of each group: sorted order, or order of first occurrence.
      std::vector<int64_t> rank_of(unique);
      std::iota(rank_of.begin(), rank_of.end(), 0);
      if (!sorted) {
        std::vector<int64_t> by_first(unique);
        std::iota(by_first.begin(), by_first.end(), 0);
        std::sort(by_first.begin(), by_first.end(), [&](int64_t a, int64_t b) { return first[a] < first[b]; });
        for (int64_t r = 0; r < unique; ++r) rank_of[by_first[r]] = r;
      }

      Shape y_shape = flatten ? Shape{unique} : x.shape();
      if (!flatten) y_shape[axis] = unique;
      Tensor& y = ctx.output(0, x.dtype(), y_shape);
      T* yv = y.data<T>();
      for (int64_t g = 0; g < unique; ++g)
        for (int64_t o = 0; o < outer; ++o)
          std::copy_n(v + (o * count + first[g]) * inner, inner, yv + (o * unique + rank_of[g]) * inner);
      if (ctx.wants_output(1)) {
        int64_t* p = ctx.output(1, DType::Int64, {unique}).data<int64_t>();
        for (int64_t g = 0; g < unique; ++g) p[rank_of[g]] = first[g];
      }
      if (ctx.wants_output(2)) {
        int64_t* p = ctx.output(2, DType::Int64, {count}).data<int64_t>();
        for (int64_t k = 0; k < count; ++k) p[k] = rank_of[group_of[k]];
      }
      if (ctx.wants_output(3)) {
        int64_t* p = ctx.output(3, DType::Int64, {unique}).data<int64_t>();
        for (int64_t g = 0; g < unique; ++g) p[rank_of[g]] = group_size[g];
      }
    });
  });
}

// ------------------------------------------------------- NonMaxSuppression

struct Box {
  float y1, x1, y2, x2;  // y1 <= y2, x1 <= x2
  float area() const { return (y2 - y1) * (x2 - x1); }
};

// Intersection over union above the threshold; degenerate boxes never overlap (as in ONNX
// Runtime's reference).
bool overlaps(const Box& a, const Box& b, float threshold) {
  const float ix1 = std::max(a.x1, b.x1), ix2 = std::min(a.x2, b.x2);
  const float iy1 = std::max(a.y1, b.y1), iy2 = std::min(a.y2, b.y2);
  if (ix2 <= ix1 || iy2 <= iy1) return false;
  const float inter = (ix2 - ix1) * (iy2 - iy1);
  const float area_a = a.area(), area_b = b.area();
  const float uni = area_a + area_b - inter;
  if (area_a <= 0 || area_b <= 0 || uni <= 0) return false;
  return inter / uni > threshold;
}

std::unique_ptr<Kernel> make_non_max_suppression(const Node& node, const std::vector<InputInfo>& in) {
  const Shape& bs = in[0].shape;
  const Shape& ss = in[1].shape;
  if (in[0].dtype != DType::Float || in[1].dtype != DType::Float) fail(node, "boxes and scores must be float32");
  if (bs.size() != 3 || bs[2] != 4) fail_shape(node, "boxes must have shape [batches, boxes, 4], got " + shape_str(bs));
  if (ss.size() != 3 || ss[0] != bs[0] || ss[2] != bs[1])
    fail_shape(node, "scores " + shape_str(ss) + " must have shape [" + std::to_string(bs[0]) + ", classes, " +
                         std::to_string(bs[1]) + "] for boxes " + shape_str(bs));
  const int64_t center = node.attr_int("center_point_box", 0);
  if (center != 0 && center != 1) fail(node, "center_point_box must be 0 or 1, got " + std::to_string(center));
  const int64_t batches = bs[0], spatial = bs[1], classes = ss[1];
  return make_function_kernel([=](KernelContext& ctx) {
    const Node& n = ctx.node();
    // Optional scalar inputs; an empty tensor counts as absent.
    auto optional = [&](size_t i) -> const Tensor* {
      return ctx.has_input(i) && ctx.input(i).numel() > 0 ? &ctx.input(i) : nullptr;
    };
    int64_t max_out = 0;
    if (const Tensor* t = optional(2)) {
      if (t->dtype() != DType::Int64) fail(n, "max_output_boxes_per_class must be int64");
      max_out = std::max<int64_t>(t->data<int64_t>()[0], 0);
    }
    float iou = 0.f;
    if (const Tensor* t = optional(3)) {
      if (t->dtype() != DType::Float) fail(n, "iou_threshold must be float32");
      iou = t->data<float>()[0];
      if (!(iou >= 0.f && iou <= 1.f)) fail(n, "iou_threshold must be in [0, 1], got " + std::to_string(iou));
    }
    const Tensor* score_threshold = optional(4);
    if (score_threshold && score_threshold->dtype() != DType::Float) fail(n, "score_threshold must be float32");

    const float* bp = ctx.input(0).data<float>();
    const float* sp = ctx.input(1).data<float>();
    std::vector<Box> boxes(batches * spatial);
    for (int64_t i = 0; i < batches * spatial; ++i) {
      const float* b = bp + i * 4;
      if (center) {
        boxes[i] = {b[1] - b[3] / 2, b[0] - b[2] / 2, b[1] + b[3] / 2, b[0] + b[2] / 2};
      } else {
        boxes[i] = {std::min(b[0], b[2]), std::min(b[1], b[3]), std::max(b[0], b[2]), std::max(b[1], b[3])};
      }
    }
    std::vector<int64_t> result;  // (batch, class, box) triples
    std::vector<int64_t> candidates, selected;
    for (int64_t b = 0; b < batches && max_out > 0; ++b)
      for (int64_t c = 0; c < classes; ++c) {
        const float* score = sp + (b * classes + c) * spatial;
        candidates.clear();
        for (int64_t i = 0; i < spatial; ++i)
          if (!score_threshold || score[i] > score_threshold->data<float>()[0]) candidates.push_back(i);
        // Highest score first; ties keep the lower box index first.
        std::stable_sort(candidates.begin(), candidates.end(),
                         [&](int64_t x, int64_t y) { return score[x] > score[y]; });
        selected.clear();
        for (int64_t i : candidates) {
          if (static_cast<int64_t>(selected.size()) >= max_out) break;
          const Box& box = boxes[b * spatial + i];
          bool keep = true;
          for (int64_t s : selected)
            if (overlaps(boxes[b * spatial + s], box, iou)) {
              keep = false;
              break;
            }
          if (!keep) continue;
          selected.push_back(i);
          result.insert(result.end(), {b, c, i});
        }
      }
    Tensor& out = ctx.output(0, DType::Int64, {static_cast<int64_t>(result.size() / 3), 3});
    std::copy(result.begin(), result.end(), out.data<int64_t>());
  });
}

// ------------------------------------------------------------ gradient rules

// Compress copies the selected slices: its gradient scatters dY back to them, i.e. the
// gradient of a Gather at NonZero(condition) (ai.onnxtrain.GatherGrad, in indexing.cpp).
// Without an axis the input is seen flattened.
void compress_gradient(GradientBuilder& b) {
  const graph::Node& n = b.node();
  Value* picked = b.reshape(b.op("NonZero", {b.I(1)}), {-1});
  if (n.has_attr("axis")) {
    b.GI(0, b.train_op("GatherGrad", {b.GO(0), picked, b.shape_of(b.I(0))}, {{"axis", n.attr_int("axis")}}));
    return;
  }
  Value* flat = b.train_op("GatherGrad", {b.GO(0), picked, b.shape_of(b.reshape(b.I(0), {-1}))},
                           {{"axis", int64_t{0}}});
  b.GI(0, b.op("Reshape", {flat, b.shape_of(b.I(0))}));
}

// ReverseSequence is a permutation that is its own inverse: dX = ReverseSequence(dY).
void reverse_sequence_gradient(GradientBuilder& b) {
  const graph::Node& n = b.node();
  b.GI(0, b.op("ReverseSequence", {b.GO(0), b.I(1)},
               {{"batch_axis", n.attr_int("batch_axis", 1)}, {"time_axis", n.attr_int("time_axis", 0)}}));
}

}  // namespace

void register_indexing_extra_ops(Registry& r) {
  r.add({"", "Compress", 9, INT_MAX, make_compress, "own", compress_gradient, {1}});
  r.add({"", "ReverseSequence", 10, INT_MAX, make_reverse_sequence, "own", reverse_sequence_gradient, {1}});
  // Unique's Y is piecewise a gather of X, but which elements it keeps (and how many)
  // changes with the values; it is treated as not differentiable.
  r.add({"", "Unique", 11, INT_MAX, make_unique_op, "own", {}, {}, /*not_differentiable*/ true});
  r.add({"", "NonMaxSuppression", 10, INT_MAX, make_non_max_suppression, "own", {}, {}, /*not_differentiable*/ true});
}

}  // namespace onnxtrain::ops
