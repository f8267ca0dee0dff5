#pragma once
// What the matrix-product files share (matmul.cpp, gemm.cpp; Einsum reaches the batched
// product through plan_batched_matmul): the own GEMM loop and the plain oneDNN matmul.
#include <algorithm>
#include <cmath>
#include <optional>
#include <cctype>
#include <memory>
#include <string>
#include <variant>

#include "ops/dnnl_utils.h"
#include "ops/op_utils.h"
#include "ops/gradient.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

// One per file, called from register_matmul_ops.
void register_gemm_ops(Registry& r);
void register_det_ops(Registry& r);

namespace matmul_impl {

constexpr size_t kMaxDnnlRank = DNNL_MAX_NDIMS;

// Integer products wrap like numpy's instead of overflowing signed types (undefined
// behaviour); 64-bit unsigned arithmetic gives the same low bits for every integer width.
template <typename T>
using Acc = std::conditional_t<std::is_integral_v<T>, uint64_t, T>;

// c (m x n, contiguous, row stride n) = a (m x k) * b (k x n) with arbitrary element strides.
// Columns go in chunks so the accumulators stay on the stack and in L1.
template <typename T>
void gemm_loop(const T* a, int64_t a_rs, int64_t a_cs, const T* b, int64_t b_rs, int64_t b_cs, T* c,
               int64_t m, int64_t n, int64_t k) {
  using A = Acc<T>;
  constexpr int64_t kChunk = 256;
  A acc[kChunk];
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j0 = 0; j0 < n; j0 += kChunk) {
      const int64_t nj = std::min(kChunk, n - j0);
      std::fill_n(acc, nj, A{});
      for (int64_t p = 0; p < k; ++p) {
        const A av = static_cast<A>(a[i * a_rs + p * a_cs]);
        const T* brow = b + p * b_rs + j0 * b_cs;
        if (b_cs == 1) {
          for (int64_t j = 0; j < nj; ++j) acc[j] += av * static_cast<A>(brow[j]);
        } else {
          for (int64_t j = 0; j < nj; ++j) acc[j] += av * static_cast<A>(brow[j * b_cs]);
        }
      }
      for (int64_t j = 0; j < nj; ++j) c[i * n + j0 + j] = static_cast<T>(acc[j]);
    }
  }
}

// One float32 operand of a matmul read in the primitive's compute type: `desc()` is what
// the primitive is built with, operator() binds the tensor and converts it (bf16 under
// mixed precision, into the scratch arena) or passes it as it is (f32).
class MatMulOperand {
 public:
  MatMulOperand() = default;
  MatMulOperand(const dnnl::memory::desc& user, dnnl::memory::data_type type)
      : user_(user), compute_(retyped(user, type)), convert_(user_, compute_) {}
  const dnnl::memory::desc& desc() const { return compute_; }
  dnnl::memory operator()(const Tensor& t) const { return convert_(bind(user_, t)); }

 private:
  dnnl::memory::desc user_, compute_;
  Reorderer convert_;
};

// A plain row-major matmul src[..., M, K] x wei[..., K, N] -> dst[..., M, N] of float32
// tensors (src and wei read in `type`, dst f32); batch dims of src/wei may be 1 where dst's
// are not (oneDNN broadcasts them).
class DnnlMatMul {
 public:
  DnnlMatMul(const Shape& a, const Shape& b, const Shape& c,
             dnnl::memory::data_type type = dnnl::memory::data_type::f32)
      : a_(plain_desc(a, DType::Float), type), b_(plain_desc(b, DType::Float), type) {
    c_md_ = plain_desc(c, DType::Float);
    pd_ = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_.desc(), b_.desc(), c_md_), cpu_engine());
    primitive_ = dnnl::matmul(pd_);
  }
  void run(const Tensor& a, const Tensor& b, const Tensor& c) const {
    execute(primitive_, {{DNNL_ARG_SRC, a_(a)}, {DNNL_ARG_WEIGHTS, b_(b)}, {DNNL_ARG_DST, bind(c_md_, c)}});
  }
  const dnnl::matmul::primitive_desc& pd() const { return pd_; }

 private:
  MatMulOperand a_, b_;
  dnnl::memory::desc c_md_;
  dnnl::matmul::primitive_desc pd_;
  dnnl::matmul primitive_;
};

inline bool all_positive(const Shape& s) {
  return std::all_of(s.begin(), s.end(), [](int64_t d) { return d > 0; });
}

}  // namespace matmul_impl

}  // namespace onnxtrain::ops
