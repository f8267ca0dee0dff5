// ConvGrad's weight gradient as one matrix product, for the geometries where oneDNN's direct
// backward-weights kernel is slow: outputs of a few pixels over many channels (the last
// stages of ResNets at small inputs). There the direct kernel has almost no spatial work to
// block and runs at a quarter of the machine's rate (resnet18 at 64x64, 512 channels over
// 2x2 outputs: 604 MFLOP in 15.6 ms at 1 thread, ~39 GFLOP/s), while dY (M x N*P) times
// im2col(X) (N*P x C*K) is a well-shaped matrix product, and its result is already in the
// plain layout (no reorder of dW afterwards). Same sums over the same N*P terms in float32.
#include "ops/conv_common.h"

namespace onnxtrain::ops {

namespace conv_impl {

// Measured against oneDNN's kernel plus its dW reorder (3x3 convolutions, batch 8 and 32,
// 64-512 channels, 1x1 to 4x4 outputs, 1 and 2 threads; docs/performance.md "Session 12"):
// with <= 4 output positions and >= 256 channels the product takes 0.28-0.9 of the time
// (512 channels over 2x2 at batch 32: 6.5 vs 17.7 ms at 1 thread, 4.5 vs 8.0 at 2); at 128
// channels it ties, and from 3x3 outputs on the direct kernel catches up or wins.
bool WeightsGradGemm::pays(const Geometry& g) {
  return g.group == 1 && g.out_size() <= 4 && std::min(g.c, g.m) >= 256;
}

WeightsGradGemm::WeightsGradGemm(const Geometry& g) : g_(g) {
  rows_ = g.n * g.out_size();
  cols_ = g.c * g.k_size();
  using tag = dnnl::memory::format_tag;
  const auto f32 = dnnl::memory::data_type::f32;
  a_md_ = dnnl::memory::desc({g.m, rows_}, f32, tag::ab);
  col_md_ = dnnl::memory::desc({rows_, cols_}, f32, tag::ab);
  dw_md_ = dnnl::memory::desc({g.m, cols_}, f32, tag::ab);
  matmul_ = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md_, col_md_, dw_md_), arena_scratchpad(),
                                                      cpu_engine()));
}

void WeightsGradGemm::run(const Tensor& x_t, const Tensor& dy_t, Tensor& dw_t) const {
  const Geometry& g = g_;
  const float* x = x_t.data<float>();
  const float* dy = dy_t.data<float>();
  const int64_t osz = g.out_size(), isz = g.in_size(), ksz = g.k_size();
  dnnl::memory a = scratch_memory(a_md_), col = scratch_memory(col_md_);
  float* ap = static_cast<float*>(a.get_data_handle());
  float* cp = static_cast<float*>(col.get_data_handle());
  // a[m, (n, p)] = dy[n, m, p]
  parallel_for(g.m, [&](int64_t m) {
    for (int64_t n = 0; n < g.n; ++n)
      for (int64_t p = 0; p < osz; ++p) ap[m * rows_ + n * osz + p] = dy[(n * g.m + m) * osz + p];
  }, 4);
  // col[(n, o0, o1, o2), (c, k0, k1, k2)] = x[n, c, o * s - pb + k * d], 0 in the padding
  parallel_for(rows_, [&](int64_t r) {
    const int64_t n = r / osz, o = r % osz;
    const int64_t o0 = o / (g.out[1] * g.out[2]), o1 = o / g.out[2] % g.out[1], o2 = o % g.out[2];
    float* row = cp + r * cols_;
    for (int64_t c = 0; c < g.c; ++c) {
      const float* xc = x + (n * g.c + c) * isz;
      float* out = row + c * ksz;
      for (int64_t k0 = 0; k0 < g.k[0]; ++k0) {
        const int64_t i0 = o0 * g.s[0] - g.pb[0] + k0 * g.d[0];
        for (int64_t k1 = 0; k1 < g.k[1]; ++k1) {
          const int64_t i1 = o1 * g.s[1] - g.pb[1] + k1 * g.d[1];
          for (int64_t k2 = 0; k2 < g.k[2]; ++k2) {
            const int64_t i2 = o2 * g.s[2] - g.pb[2] + k2 * g.d[2];
            const bool inside = i0 >= 0 && i0 < g.in[0] && i1 >= 0 && i1 < g.in[1] && i2 >= 0 && i2 < g.in[2];
            *out++ = inside ? xc[(i0 * g.in[1] + i1) * g.in[2] + i2] : 0.0f;
          }
        }
      }
    }
  }, 4);
  execute(matmul_, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, col}, {DNNL_ARG_DST, bind(dw_md_, dw_t)}});
}

}  // namespace conv_impl

}  // namespace onnxtrain::ops
