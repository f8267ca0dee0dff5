#pragma once
// What the indexing files share (gather.cpp, scatter.cpp, onehot_nonzero_trilu.cpp): element
// size and index type dispatch, index validation and the GatherElements/ScatterElements
// and GatherND/ScatterND layouts. Defined in indexing.cpp, which also registers the family.
#include <string>
#include <vector>

#include "onnxtrain/errors.h"
#include "ops/gradient.h"
#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

// One per file, called from register_indexing_ops.
void register_gather_ops(Registry& r);
void register_scatter_ops(Registry& r);
void register_onehot_nonzero_trilu_ops(Registry& r);
void register_indexing_extra_ops(Registry& r);

namespace indexing_impl {

template <size_t S>
struct Bytes {
  static constexpr size_t size = S;
};

template <typename F>
void dispatch_element_size(DType dtype, const Node& node, F&& f) {
  if (dtype == DType::String || dtype == DType::Undefined)
    fail(node, "does not support element type " + dtype_name(dtype));
  switch (dtype_size(dtype)) {
    case 1: f(Bytes<1>{}); break;
    case 2: f(Bytes<2>{}); break;
    case 4: f(Bytes<4>{}); break;
    case 8: f(Bytes<8>{}); break;
    default: fail(node, "does not support element type " + dtype_name(dtype));
  }
}

void require_index_type(const Node& node, const InputInfo& in, const char* name);

template <typename F>
void dispatch_index(DType dtype, const Node& node, F&& f) {
  dispatch_types<int32_t, int64_t>(dtype, node, std::forward<F>(f));
}

[[noreturn]] void fail_index(const Node& node, const char* input, const Shape& input_shape, int64_t position,
                             int64_t value, const std::string& axis_desc, int64_t dim);

// Fails on the first index outside [-dim, dim).
template <typename I>
void check_indices(const Node& node, const Tensor& indices, const char* input, int64_t axis, int64_t dim) {
  const I* idx = indices.data<I>();
  const int64_t n = indices.numel();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t v = idx[i];
    if (v < -dim || v >= dim) fail_index(node, input, indices.shape(), i, v, "axis " + std::to_string(axis), dim);
  }
}

inline int64_t wrap(int64_t v, int64_t dim) { return v < 0 ? v + dim : v; }

// ------------------------------------------------- GatherElements / ScatterElements

// The index tensor seen as rows of its last dimension; each row maps to a base offset in
// `data` (whose dims may be larger than the index dims off the axis).
struct ElementsLayout {
  Shape index_shape;
  Shape data_strides;
  int64_t axis = 0;
  int64_t axis_dim = 0;
  int64_t row_len = 0;
  int64_t rows = 0;
  int64_t col_stride = 0;  // data stride along the last dim, 0 when that dim is the axis

  int64_t row_base(int64_t row) const {
    int64_t base = 0;
    for (int64_t d = static_cast<int64_t>(index_shape.size()) - 2; d >= 0; --d) {
      const int64_t c = row % index_shape[d];
      row /= index_shape[d];
      if (d != axis) base += c * data_strides[d];
    }
    return base;
  }
  int64_t offset(int64_t base, int64_t col, int64_t index) const {
    return base + col * col_stride + wrap(index, axis_dim) * data_strides[axis];
  }
};

ElementsLayout elements_layout(const Node& node, const Shape& data, const Shape& indices);

// ------------------------------------------------------- GatherND / ScatterND

// Index tuples of length k address slices of data[b + k:] inside each of the `batches`
// leading blocks of data (batch_dims b; ScatterND has b = 0).
struct NdLayout {
  Shape data_shape;
  int64_t batch_dims = 0;
  int64_t batches = 1;
  int64_t tuples = 0;  // per batch
  int64_t k = 0;
  int64_t slice = 1;  // elements
  int64_t batch_stride = 0;
  Shape tuple_strides;  // data strides of dims b .. b+k-1

  template <typename I>
  void check(const Node& node, const Tensor& indices) const {
    const I* idx = indices.data<I>();
    const int64_t n = indices.numel();
    for (int64_t i = 0; i < n; ++i) {
      const int64_t d = batch_dims + i % k, dim = data_shape[d], v = idx[i];
      if (v < -dim || v >= dim) fail_index(node, "indices", indices.shape(), i, v, "data dimension " + std::to_string(d), dim);
    }
  }
  // Element offset in data of the slice addressed by tuple t (global over batches).
  template <typename I>
  int64_t offset(const I* idx, int64_t t) const {
    const I* tuple = idx + t * k;
    int64_t off = (t / tuples) * batch_stride;
    for (int64_t j = 0; j < k; ++j) off += wrap(tuple[j], data_shape[batch_dims + j]) * tuple_strides[j];
    return off;
  }
};

NdLayout nd_layout(const Node& node, const Shape& data, const Shape& indices, int64_t b);

void require_float_grad(const Node& node, const InputInfo& in);

}  // namespace indexing_impl

}  // namespace onnxtrain::ops
