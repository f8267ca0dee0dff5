#pragma once
// What pool.cpp (MaxPool, AveragePool, LpPool, the global pools) and unpool_roi_align.cpp
// (MaxUnpool, RoiAlign) share: the pooling geometry and the *Grad gradient-rule helper.
#include <array>
#include <cmath>
#include <limits>
#include <optional>
#include <string>

#include "ops/dnnl_utils.h"
#include "ops/gradient.h"
#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

// unpool_roi_align.cpp, called from register_pool_ops.
void register_unpool_roi_align_ops(Registry& r);

namespace pool_impl {

constexpr int kMaxSpatial = 3;
using Dims3 = std::array<int64_t, kMaxSpatial>;

// Spatial arrays right-aligned in 3-D form (leading unit dims), so one loop nest covers
// 1-D to 3-D pooling.
struct PoolGeometry {
  int nsp = 0;
  int64_t n = 0, c = 0;
  Dims3 in{1, 1, 1}, out{1, 1, 1}, k{1, 1, 1}, s{1, 1, 1}, d{1, 1, 1}, pb{0, 0, 0}, pe{0, 0, 0};
  // The end pad oneDNN needs to produce `out` windows; larger than pe when ceil_mode adds a
  // window that reaches past the padded input.
  Dims3 dnnl_pe{0, 0, 0};

  int64_t in_size() const { return in[0] * in[1] * in[2]; }
  int64_t out_size() const { return out[0] * out[1] * out[2]; }
  int64_t ext(int i) const { return (k[i] - 1) * d[i] + 1; }
  bool ceil_extended() const { return dnnl_pe != pe; }
  dnnl::memory::dims dnnl(const Dims3& v, int64_t offset = 0) const {
    dnnl::memory::dims r;
    for (int i = kMaxSpatial - nsp; i < kMaxSpatial; ++i) r.push_back(v[i] + offset);
    return r;
  }
  Shape in_shape() const { return with_spatial(in); }
  Shape out_shape() const { return with_spatial(out); }
  Shape with_spatial(const Dims3& v) const {
    Shape r{n, c};
    for (int i = kMaxSpatial - nsp; i < kMaxSpatial; ++i) r.push_back(v[i]);
    return r;
  }
};

// Reads the pooling attributes; with `windows` false (MaxUnpool) only kernel, strides and
// explicit pads are read and no output size is derived.
PoolGeometry pool_geometry(const Node& node, const Shape& x, bool windows = true);

// Emits `type` (ai.onnxtrain) on (dY, inputs...) with the forward's attributes as dX.
void pool_grad_rule(GradientBuilder& b, const char* type, std::vector<Value*> extra);

}  // namespace pool_impl

}  // namespace onnxtrain::ops
