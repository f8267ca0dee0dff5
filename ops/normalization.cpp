// Normalization family: BatchNormalization, InstanceNormalization, LayerNormalization, LRN,
// MeanVarianceNormalization. float32 runs on oneDNN's batch/layer normalization and LRN
// primitives where their semantics match ONNX exactly; double and the remaining cases use
// the grouped-moments loops (normalization_common.h; statistics always accumulated in double).
//
// One file per operator group, each with its forward kernels, backward kernels and gradient
// rules: batch_norm.cpp (BatchNormalization, InstanceNormalization), layer_norm.cpp
// (LayerNormalization), lrn_mvn.cpp (LRN, MeanVarianceNormalization). This file defines
// the helpers they share (normalization_common.h) and registers the family.
#include <algorithm>
#include <cmath>
#include <variant>

#include "ops/normalization_common.h"

namespace onnxtrain::ops {

namespace norm_impl {

// Offsets of every index of a (size, stride) box, row-major.
std::vector<int64_t> box_offsets(const std::vector<std::pair<int64_t, int64_t>>& dims) {
  std::vector<int64_t> out{0};
  for (auto [size, stride] : dims) {
    std::vector<int64_t> next;
    next.reserve(out.size() * static_cast<size_t>(size));
    for (int64_t base : out)
      for (int64_t i = 0; i < size; ++i) next.push_back(base + i * stride);
    out = std::move(next);
  }
  return out;
}

GroupLayout make_layout(const Shape& shape, const std::vector<bool>& reduced) {
  Shape strides = strides_of(shape);
  // Merge neighbouring dims of the same kind that are contiguous with each other.
  struct D {
    int64_t size, stride;
    bool reduced;
  };
  std::vector<D> dims;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1) continue;
    if (!dims.empty() && dims.back().reduced == reduced[i] && dims.back().stride == shape[i] * strides[i]) {
      dims.back().size *= shape[i];
      dims.back().stride = strides[i];
    } else {
      dims.push_back({shape[i], strides[i], reduced[i]});
    }
  }
  GroupLayout g;
  if (!dims.empty() && dims.back().reduced && dims.back().stride == 1) {
    g.inner = dims.back().size;
    dims.pop_back();
  }
  std::vector<std::pair<int64_t, int64_t>> kept, red;
  for (const D& d : dims) (d.reduced ? red : kept).push_back({d.size, d.stride});
  g.group_offset = box_offsets(kept);
  g.run_offset = box_offsets(red);
  g.groups = static_cast<int64_t>(g.group_offset.size());
  return g;
}

template <typename T>
void store(Tensor& t, const std::vector<double>& values) {
  T* p = t.data<T>();
  for (size_t i = 0; i < values.size(); ++i) p[i] = static_cast<T>(values[i]);
}

void store_any(Tensor& t, const std::vector<double>& values, const Node& node) {
  dispatch_float(t.dtype(), node, [&](auto tag) { store<decltype(tag)>(t, values); });
}

dnnl::memory::desc f32_vector(int64_t n) { return plain_desc({n}, DType::Float); }

dnnl::memory::desc ncsp_desc(int64_t n, int64_t c, int64_t spatial) {
  return plain_desc({n, c, spatial, 1}, DType::Float);
}
dnnl::memory bind_ptr(const dnnl::memory::desc& md, const void* p) {
  return dnnl::memory(md, cpu_engine(), const_cast<void*>(p));
}

const float* float_params(const Tensor& t, std::vector<float>& scratch) {
  if (t.dtype() == DType::Float) return t.data<float>();
  std::vector<double> v = t.as_double();
  scratch.assign(v.begin(), v.end());
  return scratch.data();
}

void check_same(const Node& node, const std::vector<InputInfo>& in, size_t a, size_t b, const char* what) {
  if (in[a].dtype != in[b].dtype || in[a].shape != in[b].shape)
    fail_shape(node, std::string(what) + ": input " + std::to_string(a) + " is " + dtype_name(in[a].dtype) +
                         shape_str(in[a].shape) + " but input " + std::to_string(b) + " is " +
                         dtype_name(in[b].dtype) + shape_str(in[b].shape));
}

void require_inputs(const Node& node, const std::vector<InputInfo>& in, size_t n, const char* names) {
  for (size_t i = 0; i < n; ++i)
    if (i >= in.size() || !in[i].present) fail(node, std::string("requires inputs ") + names);
}

}  // namespace norm_impl

void register_normalization_ops(Registry& r) {
  register_batch_norm_ops(r);
  register_layer_norm_ops(r);
  register_group_norm_ops(r);
  register_lrn_mvn_ops(r);
}

}  // namespace onnxtrain::ops
