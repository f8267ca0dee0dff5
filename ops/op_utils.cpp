#include "ops/op_utils.h"

#include <string>

namespace onnxtrain::ops {

int64_t normalize_axis(int64_t axis, int64_t rank, const Node& node) {
  if (axis < -rank || axis >= rank)
    fail_shape(node, "axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

std::vector<int64_t> normalize_axes(std::vector<int64_t> axes, int64_t rank, const Node& node) {
  for (auto& a : axes) a = normalize_axis(a, rank, node);
  return axes;
}

Shape strides_of(const Shape& shape) {
  Shape s(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

Shape broadcast_shapes(const std::vector<Shape>& shapes, const Node& node) {
  size_t rank = 0;
  for (const auto& s : shapes) rank = std::max(rank, s.size());
  Shape out(rank, 1);
  for (const auto& s : shapes) {
    size_t pad = rank - s.size();
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t& o = out[pad + i];
      if (s[i] == o || s[i] == 1) continue;
      if (o == 1) {
        o = s[i];
        continue;
      }
      std::string all;
      for (const auto& x : shapes) all += (all.empty() ? "" : " and ") + shape_str(x);
      fail_shape(node, "shapes " + all + " cannot be broadcast together");
    }
  }
  return out;
}

Shape broadcast_strides(const Shape& in, const Shape& out) {
  Shape strides(out.size(), 0);
  Shape own = strides_of(in);
  size_t pad = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) strides[pad + i] = in[i] == 1 ? 0 : own[i];
  return strides;
}

BroadcastIterator::BroadcastIterator(const Shape& out_shape, const std::vector<Shape>& in_shapes)
    : shape_(out_shape), index_(out_shape.size(), 0), offsets_(in_shapes.size(), 0) {
  for (const auto& s : in_shapes) strides_.push_back(broadcast_strides(s, out_shape));
}

void BroadcastIterator::seek(int64_t flat) {
  for (int d = static_cast<int>(shape_.size()) - 1; d >= 0; --d) {
    index_[d] = shape_[d] ? flat % shape_[d] : 0;
    flat = shape_[d] ? flat / shape_[d] : 0;
  }
  for (size_t k = 0; k < offsets_.size(); ++k) {
    offsets_[k] = 0;
    for (size_t d = 0; d < shape_.size(); ++d) offsets_[k] += index_[d] * strides_[k][d];
  }
}

void BroadcastIterator::next() {
  for (int d = static_cast<int>(shape_.size()) - 1; d >= 0; --d) {
    if (++index_[d] < shape_[d]) {
      for (size_t k = 0; k < offsets_.size(); ++k) offsets_[k] += strides_[k][d];
      return;
    }
    for (size_t k = 0; k < offsets_.size(); ++k) offsets_[k] -= (shape_[d] - 1) * strides_[k][d];
    index_[d] = 0;
  }
}

std::vector<int64_t> int_values(const Tensor& t) { return t.as_int64(); }

}  // namespace onnxtrain::ops
