#pragma once
// What conv.cpp (Conv, ConvTranspose: oneDNN kernels, geometry, gradient rules) and
// conv_loops.cpp (the own direct loops for double and the geometries oneDNN rejects) share.
#include <array>
#include <optional>
#include <string>

#include "ops/dnnl_utils.h"
#include "ops/gradient.h"
#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

namespace conv_impl {

constexpr int kMaxSpatial = 3;  // oneDNN's limit; the own loops use the same 3-D form
using Dims3 = std::array<int64_t, kMaxSpatial>;

// The geometry of one (transposed) convolution. Spatial arrays are right-aligned in 3-D form:
// a 1-D convolution has in = {1, 1, w}, k = {1, 1, kw}, unit strides/dilations and zero pads
// in front, so one loop nest covers 1-D to 3-D.
struct Geometry {
  int nsp = 0;
  int64_t n = 0, c = 0, m = 0, group = 1;  // batch, input channels, output channels, groups
  Dims3 in{1, 1, 1}, out{1, 1, 1}, k{1, 1, 1}, s{1, 1, 1}, d{1, 1, 1}, pb{0, 0, 0}, pe{0, 0, 0};
  Dims3 out_pad{0, 0, 0};  // ConvTranspose only

  int64_t in_size() const { return in[0] * in[1] * in[2]; }
  int64_t out_size() const { return out[0] * out[1] * out[2]; }
  int64_t k_size() const { return k[0] * k[1] * k[2]; }
  int64_t ext(int i) const { return (k[i] - 1) * d[i] + 1; }  // dilated kernel extent
  // The last nsp entries of a 3-D array, as oneDNN wants them (with an offset, e.g. -1 for
  // oneDNN's zero-based dilation).
  dnnl::memory::dims dnnl(const Dims3& v, int64_t offset = 0) const {
    dnnl::memory::dims r;
    for (int i = kMaxSpatial - nsp; i < kMaxSpatial; ++i) r.push_back(v[i] + offset);
    return r;
  }
  Shape out_shape() const {
    Shape y{n, m};
    for (int i = kMaxSpatial - nsp; i < kMaxSpatial; ++i) y.push_back(out[i]);
    return y;
  }
};

struct GradOutputs {
  bool dx = false, dw = false, db = false;
};

// The own direct loops (conv_loops.cpp), instantiated for Transposed = false, true.
template <bool Transposed>
std::unique_ptr<Kernel> own_kernel(const Geometry& g, bool has_bias);
template <bool Transposed>
std::unique_ptr<Kernel> own_grad_kernel(const Geometry& g, const Shape& w_shape, GradOutputs want);
// dB[c] = sum of dY[n, c, ...] over the batch and the spatial dims (instantiated for float).
template <typename T>
void bias_grad_loop(int64_t n, int64_t channels, int64_t spatial, const T* dy, T* db);

// dW of an ungrouped float32 convolution as one matrix product (conv_weights_gemm.cpp):
// dW[m, (c, k...)] = dY[m, (n, o...)] . col[(n, o...), (c, k...)], col being X unfolded
// (im2col), written straight into the plain weight layout.
class WeightsGradGemm {
 public:
  // Whether it beats oneDNN's direct backward-weights kernel for this geometry (see the .cpp).
  static bool pays(const Geometry& g);
  explicit WeightsGradGemm(const Geometry& g);
  // x [N, C, spatial...], dy [N, M, out...] -> dw [M, C, k...]; buffers from the scratch arena.
  void run(const Tensor& x, const Tensor& dy, Tensor& dw) const;

 private:
  Geometry g_;
  int64_t rows_ = 0, cols_ = 0;  // col is rows_ (n, o...) x cols_ (c, k...)
  dnnl::memory::desc a_md_, col_md_, dw_md_;
  dnnl::primitive matmul_;
};

}  // namespace conv_impl

}  // namespace onnxtrain::ops
