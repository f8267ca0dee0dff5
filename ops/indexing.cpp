// Indexing: Gather, GatherElements, GatherND, ScatterElements (and the deprecated Scatter),
// ScatterND, OneHot, NonZero, Trilu. The rarer ops live in indexing_extra.cpp.
// Split by operator group: gather.cpp (Gather, GatherElements, GatherND), scatter.cpp
// (ScatterElements, Scatter, ScatterND), onehot_nonzero_trilu.cpp, each with its backward
// kernels and gradient rules; this file defines the helpers they share (indexing_common.h)
// and registers the family.
//
// Moving data does not depend on the element type, only on its size, so copies go through
// Bytes<S> (a fixed-size memcpy the compiler turns into one load/store) or a block memcpy.
// Index tensors are validated in a serial pass before any parallel loop: an exception must
// not escape an OpenMP region, and the error names the first offending index.
//
// Gradients: gather-like ops scatter their output gradient back; scatter-like ops split theirs
// between data (the positions nobody overwrote) and updates (gathered). Index inputs get no
// gradient. The backward kernels are ai.onnxtrain ops with own loops (oneDNN has no
// gather/scatter primitives).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ops/indexing_common.h"

namespace onnxtrain::ops {

namespace indexing_impl {

void require_index_type(const Node& node, const InputInfo& in, const char* name) {
  if (in.dtype != DType::Int32 && in.dtype != DType::Int64)
    fail(node, std::string("input '") + name + "' must be int32 or int64, got " + dtype_name(in.dtype));
}

// "[1,0,2]": the multi-index of a flat position, for error messages.
std::string position_str(const Shape& shape, int64_t flat) {
  Shape coord(shape.size(), 0);
  for (size_t d = shape.size(); d-- > 0;) {
    if (shape[d] == 0) break;
    coord[d] = flat % shape[d];
    flat /= shape[d];
  }
  return shape_str(coord);
}

[[noreturn]] void fail_index(const Node& node, const char* input, const Shape& input_shape, int64_t position,
                             int64_t value, const std::string& axis_desc, int64_t dim) {
  fail(node, std::string("index ") + std::to_string(value) + " in '" + input + "' at " +
                 position_str(input_shape, position) + " is out of range for " + axis_desc + " of size " +
                 std::to_string(dim) + " (valid: [" + std::to_string(-dim) + ", " + std::to_string(dim - 1) + "])");
}

ElementsLayout elements_layout(const Node& node, const Shape& data, const Shape& indices) {
  if (data.empty()) fail_shape(node, "data must have rank >= 1");
  if (indices.size() != data.size())
    fail_shape(node, "indices " + shape_str(indices) + " must have the rank of data " + shape_str(data));
  ElementsLayout l;
  const int64_t rank = static_cast<int64_t>(data.size());
  l.axis = normalize_axis(node.attr_int("axis", 0), rank, node);
  for (int64_t d = 0; d < rank; ++d)
    if (d != l.axis && indices[d] > data[d])
      fail_shape(node, "indices " + shape_str(indices) + " exceed data " + shape_str(data) + " in dimension " +
                           std::to_string(d));
  l.index_shape = indices;
  l.data_strides = strides_of(data);
  l.axis_dim = data[l.axis];
  l.row_len = indices.back();
  l.rows = l.row_len ? shape_numel(indices) / l.row_len : 0;
  l.col_stride = l.axis == rank - 1 ? 0 : l.data_strides[rank - 1];
  return l;
}

NdLayout nd_layout(const Node& node, const Shape& data, const Shape& indices, int64_t b) {
  const int64_t r = static_cast<int64_t>(data.size()), q = static_cast<int64_t>(indices.size());
  if (r < 1 || q < 1) fail_shape(node, "data and indices must have rank >= 1");
  if (b < 0 || b >= std::min(q, r)) fail(node, "batch_dims " + std::to_string(b) + " must be in [0, min(rank(data), rank(indices)))");
  NdLayout l;
  l.data_shape = data;
  l.batch_dims = b;
  l.k = indices.back();
  if (l.k < 1 || l.k > r - b)
    fail_shape(node, "the last dimension of indices " + shape_str(indices) + " must be in [1, " + std::to_string(r - b) +
                         "] for data " + shape_str(data));
  for (int64_t d = 0; d < b; ++d) {
    if (indices[d] != data[d])
      fail_shape(node, "batch dimension " + std::to_string(d) + " differs between data " + shape_str(data) +
                           " and indices " + shape_str(indices));
    l.batches *= data[d];
  }
  l.tuples = 1;
  for (int64_t d = b; d < q - 1; ++d) l.tuples *= indices[d];
  for (int64_t d = b + l.k; d < r; ++d) l.slice *= data[d];
  const Shape strides = strides_of(data);
  l.batch_stride = b > 0 ? strides[b - 1] : 0;
  l.tuple_strides.assign(strides.begin() + b, strides.begin() + b + l.k);
  return l;
}

void require_float_grad(const Node& node, const InputInfo& in) {
  if (in.dtype != DType::Float && in.dtype != DType::Double)
    fail(node, "the gradient must be float32 or float64, got " + dtype_name(in.dtype));
}

}  // namespace indexing_impl

void register_indexing_ops(Registry& r) {
  register_gather_ops(r);
  register_scatter_ops(r);
  register_onehot_nonzero_trilu_ops(r);
  register_indexing_extra_ops(r);
}

}  // namespace onnxtrain::ops
