// Matrix products: MatMul and Gemm on oneDNN matmul for float32 (primitives built at
// plan time), own loops for double and integer types; Det by LU decomposition. Einsum is in
// einsum.cpp.
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

namespace {

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

// A plain row-major f32 matmul src[..., M, K] x wei[..., K, N] -> dst[..., M, N]; batch dims of
// src/wei may be 1 where dst's are not (oneDNN broadcasts them).
class DnnlMatMul {
 public:
  DnnlMatMul(const Shape& a, const Shape& b, const Shape& c) {
    a_md_ = plain_desc(a, DType::Float);
    b_md_ = plain_desc(b, DType::Float);
    c_md_ = plain_desc(c, DType::Float);
    pd_ = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md_, b_md_, c_md_), cpu_engine());
    primitive_ = dnnl::matmul(pd_);
  }
  void run(const Tensor& a, const Tensor& b, const Tensor& c) const {
    execute(primitive_, {{DNNL_ARG_SRC, bind(a_md_, a)}, {DNNL_ARG_WEIGHTS, bind(b_md_, b)}, {DNNL_ARG_DST, bind(c_md_, c)}});
  }
  const dnnl::matmul::primitive_desc& pd() const { return pd_; }

 private:
  dnnl::memory::desc a_md_, b_md_, c_md_;
  dnnl::matmul::primitive_desc pd_;
  dnnl::matmul primitive_;
};

bool all_positive(const Shape& s) {
  return std::all_of(s.begin(), s.end(), [](int64_t d) { return d > 0; });
}

// ---------------------------------------------------------------------------------------------
// MatMul (numpy semantics)

struct MatMulPlan {
  Shape a, b;      // operands as [batch..., M, K] / [batch..., K, N], both of the output's rank
  Shape batch;     // broadcast batch dims
  Shape y;         // the ONNX output shape (1-D operands' unit dims removed)
  int64_t m = 0, k = 0, n = 0;
};

MatMulPlan plan_matmul(const Node& node, Shape a, Shape b) {
  if (a.empty() || b.empty()) fail_shape(node, "inputs must have rank >= 1, got " + shape_str(a) + " and " + shape_str(b));
  const bool a_vec = a.size() == 1, b_vec = b.size() == 1;
  if (a_vec) a.insert(a.begin(), 1);
  if (b_vec) b.push_back(1);
  MatMulPlan p;
  p.m = a[a.size() - 2];
  p.k = a.back();
  p.n = b.back();
  if (b[b.size() - 2] != p.k)
    fail_shape(node, "inner dimensions differ: " + shape_str(a) + " x " + shape_str(b));
  p.batch = broadcast_shapes({Shape(a.begin(), a.end() - 2), Shape(b.begin(), b.end() - 2)}, node);
  const size_t rank = p.batch.size() + 2;
  a.insert(a.begin(), rank - a.size(), 1);
  b.insert(b.begin(), rank - b.size(), 1);
  p.a = a;
  p.b = b;
  p.y = p.batch;
  if (!a_vec) p.y.push_back(p.m);
  if (!b_vec) p.y.push_back(p.n);
  return p;
}

template <typename T>
void matmul_loop(const MatMulPlan& p, const T* a, const T* b, T* y) {
  const Shape batch_a(p.a.begin(), p.a.end() - 2), batch_b(p.b.begin(), p.b.end() - 2);
  const Shape sa = broadcast_strides(batch_a, p.batch), sb = broadcast_strides(batch_b, p.batch);
  const int64_t rows = shape_numel(p.batch) * p.m, mk = p.m * p.k, kn = p.k * p.n;
  parallel_for(rows, [&](int64_t r) {
    int64_t oa = 0, ob = 0, rest = r / p.m;
    for (int d = static_cast<int>(p.batch.size()) - 1; d >= 0; --d) {
      const int64_t idx = rest % p.batch[d];
      rest /= p.batch[d];
      oa += idx * sa[d];
      ob += idx * sb[d];
    }
    gemm_loop(a + oa * mk + (r % p.m) * p.k, p.k, 1, b + ob * kn, p.n, 1, y + r * p.n, 1, p.n, p.k);
  }, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, p.n * p.k)));
}

class MatMulKernel final : public Kernel {
 public:
  MatMulKernel(const Node& node, const std::vector<InputInfo>& in) : plan_(plan_matmul(node, in[0].shape, in[1].shape)) {
    if (in[0].dtype != in[1].dtype) fail(node, "inputs have different element types");
    if (in[0].dtype == DType::Float && plan_.a.size() <= kMaxDnnlRank && all_positive(plan_.y) && plan_.k > 0) {
      Shape c = plan_.batch;
      c.push_back(plan_.m);
      c.push_back(plan_.n);
      dnnl_.emplace(plan_.a, plan_.b, c);
    }
  }
  void run(KernelContext& ctx) override {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    Tensor& y = ctx.output(0, a.dtype(), plan_.y);
    if (dnnl_) return dnnl_->run(a, b, y);
    dispatch_types<float, double, int32_t, int64_t, uint32_t, uint64_t>(a.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      if (y.numel() == 0) return;
      matmul_loop<T>(plan_, a.data<T>(), b.data<T>(), y.data<T>());
    });
  }

 private:
  MatMulPlan plan_;
  std::optional<DnnlMatMul> dnnl_;
};

// ---------------------------------------------------------------------------------------------
// Gemm: Y = alpha * A' * B' + beta * C

class GemmKernel final : public Kernel {
 public:
  GemmKernel(const Node& node, const std::vector<InputInfo>& in) {
    trans_a_ = node.attr_int("transA", 0) != 0;
    trans_b_ = node.attr_int("transB", 0) != 0;
    alpha_ = node.attr_float("alpha", 1.f);
    beta_ = node.attr_float("beta", 1.f);
    const Shape& a = in[0].shape;
    const Shape& b = in[1].shape;
    if (a.size() != 2 || b.size() != 2) fail_shape(node, "A and B must be 2-D, got " + shape_str(a) + " and " + shape_str(b));
    if (in[0].dtype != in[1].dtype) fail(node, "A and B have different element types");
    m_ = trans_a_ ? a[1] : a[0];
    k_ = trans_a_ ? a[0] : a[1];
    n_ = trans_b_ ? b[0] : b[1];
    if ((trans_b_ ? b[1] : b[0]) != k_)
      fail_shape(node, "inner dimensions differ: A " + shape_str(a) + (trans_a_ ? " (transposed)" : "") + ", B " +
                           shape_str(b) + (trans_b_ ? " (transposed)" : ""));
    has_c_ = in.size() > 2 && in[2].present && beta_ != 0.f;
    if (in.size() > 2 && in[2].present) {
      const Shape& c = in[2].shape;
      if (in[2].dtype != in[0].dtype) fail(node, "C has a different element type than A");
      // Unidirectional broadcast of C to [M, N].
      bool ok = c.size() <= 2;
      if (ok && c.size() >= 1) ok = c.back() == n_ || c.back() == 1;
      if (ok && c.size() == 2) ok = c[0] == m_ || c[0] == 1;
      if (!ok) fail_shape(node, "C " + shape_str(c) + " cannot be broadcast to [" + std::to_string(m_) + "," + std::to_string(n_) + "]");
      c_rows_ = c.size() == 2 ? c[0] : 1;
      c_cols_ = c.empty() ? 1 : c.back();
    } else if (node.opset < 11) {
      fail(node, "input C is required before opset 11");
    }
    if (in[0].dtype == DType::Float && m_ > 0 && n_ > 0 && k_ > 0) build_dnnl();
  }

  void run(KernelContext& ctx) override {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    Tensor& y = ctx.output(0, a.dtype(), {m_, n_});
    if (dnnl_) {
      std::unordered_map<int, dnnl::memory> args{
          {DNNL_ARG_SRC, bind(a_md_, a)}, {DNNL_ARG_WEIGHTS, bind(b_md_, b)}, {DNNL_ARG_DST, bind(y_md_, y)}};
      if (c_mode_ == CMode::Binary) {
        args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1] = bind(c_md_, ctx.input(2));
      } else if (c_mode_ == CMode::Sum) {
        broadcast_c<float>(ctx.input(2).data<float>(), y.data<float>(), 1.f, false);
      }
      execute(*dnnl_, args);
      return;
    }
    dispatch_types<float, double, int32_t, int64_t, uint32_t, uint64_t>(a.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      T* out = y.data<T>();
      if (y.numel() == 0) return;
      const T* pa = a.data<T>();
      const T* pb = b.data<T>();
      parallel_for(m_, [&](int64_t i) {
        gemm_loop(pa + (trans_a_ ? i : i * k_), trans_a_ ? 1 : k_, trans_a_ ? m_ : 1, pb, trans_b_ ? 1 : n_,
                  trans_b_ ? k_ : 1, out + i * n_, 1, n_, k_);
      }, std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, n_ * k_)));
      scale_and_add_c<T>(ctx, out);
    });
  }

 private:
  enum class CMode { None, Binary, Sum };

  void build_dnnl() {
    // Transposes are expressed as strides: oneDNN's gemm-based matmul reads them directly.
    a_md_ = strided_desc({m_, k_}, DType::Float, trans_a_ ? Shape{1, m_} : Shape{k_, 1});
    b_md_ = strided_desc({k_, n_}, DType::Float, trans_b_ ? Shape{1, k_} : Shape{n_, 1});
    y_md_ = plain_desc({m_, n_}, DType::Float);
    dnnl::matmul::desc desc(a_md_, b_md_, y_md_);
    auto make = [&](CMode mode) -> std::optional<dnnl::matmul::primitive_desc> {
      dnnl::primitive_attr attr;
      if (alpha_ != 1.f) attr.set_output_scales(0, {alpha_});
      dnnl::post_ops ops;
      if (mode == CMode::Binary) {
        c_md_ = plain_desc({c_rows_, c_cols_}, DType::Float);
        ops.append_binary(dnnl::algorithm::binary_add, c_md_);
      } else if (mode == CMode::Sum) {
        ops.append_sum(beta_);
      }
      attr.set_post_ops(ops);
      try {
        return dnnl::matmul::primitive_desc(desc, attr, cpu_engine());
      } catch (const dnnl::error&) {
        return std::nullopt;
      }
    };
    auto is_ref = [](const dnnl::matmul::primitive_desc& pd) { return std::string(pd.impl_info_str()).rfind("ref", 0) == 0; };
    std::optional<dnnl::matmul::primitive_desc> pd;
    if (!has_c_) {
      c_mode_ = CMode::None;
      pd = make(c_mode_);
    } else {
      // C as a broadcast binary post-op saves a pass over Y, but only with beta == 1 and when
      // oneDNN has an optimised kernel for that broadcast; otherwise pre-fill Y with C.
      if (beta_ == 1.f) {
        pd = make(CMode::Binary);
        c_mode_ = CMode::Binary;
      }
      if (!pd || is_ref(*pd)) {
        pd = make(CMode::Sum);
        c_mode_ = CMode::Sum;
      }
    }
    if (!pd) return;
    pd_ = *pd;
    dnnl_.emplace(pd_);
  }

  // y = scale * y + beta * C (broadcast); `accumulate` false overwrites y with C.
  template <typename T>
  void broadcast_c(const T* c, T* y, T scale, bool accumulate) const {
    const int64_t rs = c_rows_ == 1 ? 0 : c_cols_, cs = c_cols_ == 1 ? 0 : 1;
    parallel_for(m_, [&](int64_t i) {
      T* row = y + i * n_;
      const T* crow = c + i * rs;
      if (!accumulate) {
        for (int64_t j = 0; j < n_; ++j) row[j] = crow[j * cs];
        return;
      }
      const T beta = static_cast<T>(beta_);
      for (int64_t j = 0; j < n_; ++j)
        row[j] = static_cast<T>(static_cast<Acc<T>>(scale) * static_cast<Acc<T>>(row[j]) +
                                static_cast<Acc<T>>(beta) * static_cast<Acc<T>>(crow[j * cs]));
    }, std::max<int64_t>(1, 16384 / std::max<int64_t>(n_, 1)));
  }

  template <typename T>
  void scale_and_add_c(KernelContext& ctx, T* y) const {
    const T alpha = static_cast<T>(alpha_);
    if (has_c_) return broadcast_c<T>(ctx.input(2).data<T>(), y, alpha, true);
    if (alpha_ == 1.f) return;
    const int64_t total = m_ * n_;
    parallel_for(total, [&](int64_t i) { y[i] = static_cast<T>(static_cast<Acc<T>>(alpha) * static_cast<Acc<T>>(y[i])); });
  }

  bool trans_a_ = false, trans_b_ = false, has_c_ = false;
  float alpha_ = 1.f, beta_ = 1.f;
  int64_t m_ = 0, k_ = 0, n_ = 0, c_rows_ = 1, c_cols_ = 1;
  CMode c_mode_ = CMode::None;
  dnnl::memory::desc a_md_, b_md_, y_md_, c_md_;
  dnnl::matmul::primitive_desc pd_;
  std::optional<dnnl::matmul> dnnl_;
};

// ---------------------------------------------------------------------------------------------
// Det: batched determinant by LU decomposition with partial pivoting (in double).

template <typename T>
void det_loop(const T* x, T* y, int64_t batches, int64_t n) {
  parallel_for(batches, [&](int64_t b) {
    std::vector<double> lu(static_cast<size_t>(n * n));
    const T* src = x + b * n * n;
    for (int64_t i = 0; i < n * n; ++i) lu[i] = static_cast<double>(src[i]);
    double det = 1.0;
    for (int64_t c = 0; c < n && det != 0.0; ++c) {
      int64_t pivot = c;
      for (int64_t r = c + 1; r < n; ++r)
        if (std::abs(lu[r * n + c]) > std::abs(lu[pivot * n + c])) pivot = r;
      if (lu[pivot * n + c] == 0.0) {
        det = 0.0;
        break;
      }
      if (pivot != c) {
        std::swap_ranges(lu.begin() + c * n, lu.begin() + (c + 1) * n, lu.begin() + pivot * n);
        det = -det;
      }
      const double d = lu[c * n + c];
      det *= d;
      for (int64_t r = c + 1; r < n; ++r) {
        const double f = lu[r * n + c] / d;
        if (f == 0.0) continue;
        for (int64_t j = c + 1; j < n; ++j) lu[r * n + j] -= f * lu[c * n + j];
      }
    }
    y[b] = static_cast<T>(det);
  }, 64);
}

std::unique_ptr<Kernel> make_det(const Node& node, const std::vector<InputInfo>& in) {
  const Shape& s = in[0].shape;
  if (s.size() < 2 || s[s.size() - 1] != s[s.size() - 2])
    fail_shape(node, "input must be [..., M, M], got " + shape_str(s));
  Shape y(s.begin(), s.end() - 2);
  const int64_t n = s.back();
  return make_function_kernel([y, n](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    Tensor& out = ctx.output(0, x.dtype(), y);
    dispatch_float(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      det_loop<T>(x.data<T>(), out.data<T>(), out.numel(), n);
    });
  });
}

// DetGrad (dY, A) -> dA = dY * adj(A)^T, the cofactor matrix (= det(A) * inverse(A)^T when A
// is invertible). Invertible matrices: LU with partial pivoting and two triangular solves per
// column; singular ones: each cofactor as the determinant of its minor (rank-deficient
// matrices still have nonzero cofactors when their rank is n - 1).
double lu_det(std::vector<double>& lu, int64_t n, std::vector<int64_t>* perm) {
  double det = 1.0;
  if (perm) {
    perm->resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) (*perm)[i] = i;
  }
  for (int64_t c = 0; c < n; ++c) {
    int64_t pivot = c;
    for (int64_t r = c + 1; r < n; ++r)
      if (std::abs(lu[r * n + c]) > std::abs(lu[pivot * n + c])) pivot = r;
    if (lu[pivot * n + c] == 0.0) return 0.0;
    if (pivot != c) {
      std::swap_ranges(lu.begin() + c * n, lu.begin() + (c + 1) * n, lu.begin() + pivot * n);
      if (perm) std::swap((*perm)[c], (*perm)[pivot]);
      det = -det;
    }
    const double d = lu[c * n + c];
    det *= d;
    for (int64_t r = c + 1; r < n; ++r) {
      const double f = lu[r * n + c] /= d;
      if (f == 0.0) continue;
      for (int64_t j = c + 1; j < n; ++j) lu[r * n + j] -= f * lu[c * n + j];
    }
  }
  return det;
}

template <typename T>
void det_grad_loop(const T* dy, const T* a, T* da, int64_t batches, int64_t n) {
  parallel_for(batches, [&](int64_t bi) {
    const T* src = a + bi * n * n;
    T* dst = da + bi * n * n;
    const double g = static_cast<double>(dy[bi]);
    std::vector<double> lu(static_cast<size_t>(n * n));
    for (int64_t i = 0; i < n * n; ++i) lu[i] = static_cast<double>(src[i]);
    std::vector<int64_t> perm;
    const double det = lu_det(lu, n, &perm);
    if (n == 0) return;
    if (det != 0.0) {
      // Column j of inverse(A): solve L U x = P e_j. dA[i][j] = g * det * inverse(A)[j][i].
      std::vector<double> x(static_cast<size_t>(n));
      for (int64_t j = 0; j < n; ++j) {
        for (int64_t i = 0; i < n; ++i) x[i] = perm[i] == j ? 1.0 : 0.0;
        for (int64_t i = 0; i < n; ++i)
          for (int64_t k = 0; k < i; ++k) x[i] -= lu[i * n + k] * x[k];
        for (int64_t i = n - 1; i >= 0; --i) {
          for (int64_t k = i + 1; k < n; ++k) x[i] -= lu[i * n + k] * x[k];
          x[i] /= lu[i * n + i];
        }
        for (int64_t i = 0; i < n; ++i) dst[j * n + i] = static_cast<T>(g * det * x[i]);  // inverse[i][j] -> dA[j][i]
      }
      return;
    }
    std::vector<double> minor(static_cast<size_t>((n - 1) * (n - 1)));
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < n; ++c) {
        size_t at = 0;
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < n; ++j)
            if (i != r && j != c) minor[at++] = static_cast<double>(src[i * n + j]);
        const double cof = lu_det(minor, n - 1, nullptr) * ((r + c) % 2 ? -1.0 : 1.0);
        dst[r * n + c] = static_cast<T>(g * cof);
      }
  }, 64);
}

std::unique_ptr<Kernel> make_det_grad(const Node& node, const std::vector<InputInfo>& in) {
  const Shape& s = in[1].shape;
  if (s.size() < 2 || s[s.size() - 1] != s[s.size() - 2]) fail_shape(node, "A must be [..., M, M], got " + shape_str(s));
  if (in[0].shape != Shape(s.begin(), s.end() - 2)) fail_shape(node, "dY " + shape_str(in[0].shape) + " does not match A " + shape_str(s));
  const int64_t n = s.back();
  return make_function_kernel([s, n](KernelContext& ctx) {
    const Tensor& dy = ctx.input(0);
    Tensor& da = ctx.output(0, dy.dtype(), s);
    dispatch_float(dy.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      det_grad_loop<T>(dy.data<T>(), ctx.input(1).data<T>(), da.data<T>(), dy.numel(), n);
    });
  });
}

void det_gradient(GradientBuilder& b) { b.GI(0, b.train_op("DetGrad", {b.GO(0), b.I(0)})); }

}  // namespace

// Plans y[b] = a[b] @ w[b] over row-major [batch, m, k] x [batch, k, n] -> [batch, m, n]
// (oneDNN matmul for float32, own loops otherwise); used by Einsum (einsum.cpp).
std::function<void(const Tensor&, const Tensor&, const Tensor&)> plan_batched_matmul(DType dtype, int64_t batch,
                                                                                      int64_t m, int64_t k, int64_t n,
                                                                                      const Node& node) {
  if (dtype == DType::Float && batch > 0 && m > 0 && k > 0 && n > 0) {
    auto dnnl = std::make_shared<DnnlMatMul>(Shape{batch, m, k}, Shape{batch, k, n}, Shape{batch, m, n});
    return [dnnl](const Tensor& a, const Tensor& w, const Tensor& y) { dnnl->run(a, w, y); };
  }
  return [dtype, batch, m, k, n, &node](const Tensor& a, const Tensor& w, const Tensor& y) {
    dispatch_numeric(dtype, node, [&](auto tag) {
      using T = decltype(tag);
      const int64_t rows = batch * m;
      const T* pa = a.data<T>();
      const T* pw = w.data<T>();
      T* py = const_cast<T*>(y.data<T>());
      parallel_for(rows, [&](int64_t r) {
        const int64_t bi = r / m, i = r % m;
        gemm_loop(pa + (bi * m + i) * k, k, 1, pw + bi * k * n, n, 1, py + r * n, 1, n, k);
      }, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, n * k)));
    });
  };
}

namespace {

// ---------------------------------------------------------------------------------------------
// MatMulGrad(dY, A, B) -> (dA, dB): dA = dY @ B^T, dB = A^T @ dY, summed over the batch
// dims each operand was broadcast along. Shapes are only known at plan time (attention
// exports often defeat shape inference), so one fused kernel does what a rule would need
// static ranks for; transposes are strides, never copies.

// Row-major strides of `shape` with the last two swapped: a transposed view.
Shape transposed_strides(const Shape& shape) {
  Shape st = strides_of(shape);
  std::swap(st[st.size() - 1], st[st.size() - 2]);
  return st;
}

Shape swap_last_two(Shape s) {
  std::swap(s[s.size() - 1], s[s.size() - 2]);
  return s;
}

// One batched product c[batch] = a[batch] @ b[batch] where a and b may be strided and
// broadcast along batch (size-1 dims); c is plain and full.
class BatchedProduct {
 public:
  BatchedProduct() = default;
  BatchedProduct(DType dtype, const Shape& a_dims, const Shape& a_strides, const Shape& b_dims, const Shape& b_strides,
                 const Shape& c_dims)
      : dtype_(dtype), a_dims_(a_dims), a_strides_(a_strides), b_dims_(b_dims), b_strides_(b_strides), c_dims_(c_dims) {
    if (dtype == DType::Float && c_dims.size() <= kMaxDnnlRank && all_positive(c_dims) && a_dims.back() > 0) {
      a_md_ = strided_desc(a_dims, dtype, a_strides);
      b_md_ = strided_desc(b_dims, dtype, b_strides);
      c_md_ = plain_desc(c_dims, dtype);
      primitive_ = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md_, b_md_, c_md_), cpu_engine()));
      use_dnnl_ = true;
    }
  }
  void run(const Tensor& a, const Tensor& b, Tensor& c, const Node& node) const {
    if (c.numel() == 0) return;
    if (use_dnnl_) {
      execute(primitive_, {{DNNL_ARG_SRC, bind(a_md_, a)}, {DNNL_ARG_WEIGHTS, bind(b_md_, b)}, {DNNL_ARG_DST, bind(c_md_, c)}});
      return;
    }
    dispatch_types<float, double, int32_t, int64_t, uint32_t, uint64_t>(dtype_, node, [&](auto tag) {
      using T = decltype(tag);
      const size_t r = c_dims_.size();
      const int64_t m = c_dims_[r - 2], n = c_dims_[r - 1], k = a_dims_[r - 1];
      const Shape batch(c_dims_.begin(), c_dims_.end() - 2);
      const int64_t batches = shape_numel(batch);
      const T* pa = a.data<T>();
      const T* pb = b.data<T>();
      T* pc = c.data<T>();
      parallel_for(batches * m, [&](int64_t row) {
        int64_t rest = row / m, oa = 0, ob = 0;
        for (int d = static_cast<int>(batch.size()) - 1; d >= 0; --d) {
          const int64_t idx = rest % batch[d];
          rest /= batch[d];
          if (a_dims_[d] != 1) oa += idx * a_strides_[d];
          if (b_dims_[d] != 1) ob += idx * b_strides_[d];
        }
        const int64_t i = row % m;
        gemm_loop(pa + oa + i * a_strides_[r - 2], a_strides_[r - 2], a_strides_[r - 1], pb + ob, b_strides_[r - 2],
                  b_strides_[r - 1], pc + row * n, 1, n, k);
      }, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, n * k)));
    });
  }

 private:
  DType dtype_ = DType::Undefined;
  Shape a_dims_, a_strides_, b_dims_, b_strides_, c_dims_;
  bool use_dnnl_ = false;
  dnnl::memory::desc a_md_, b_md_, c_md_;
  dnnl::matmul primitive_;
};

class MatMulGradKernel final : public Kernel {
 public:
  MatMulGradKernel(const Node& node, const std::vector<InputInfo>& in)
      : plan_(plan_matmul(node, in[1].shape, in[2].shape)), a_shape_(in[1].shape), b_shape_(in[2].shape) {
    const DType dt = in[1].dtype;
    Shape y_full = plan_.batch;
    y_full.push_back(plan_.m);
    y_full.push_back(plan_.n);
    a_full_ = plan_.batch;
    a_full_.push_back(plan_.m);
    a_full_.push_back(plan_.k);
    b_full_ = plan_.batch;
    b_full_.push_back(plan_.k);
    b_full_.push_back(plan_.n);
    a_reduce_ = shape_numel(a_full_) != shape_numel(a_shape_);
    b_reduce_ = shape_numel(b_full_) != shape_numel(b_shape_);
    // dA = dY @ B^T (B broadcast along batch inside the product).
    da_ = BatchedProduct(dt, y_full, strides_of(y_full), swap_last_two(plan_.b), transposed_strides(plan_.b), a_full_);
    // dB = A^T @ dY. The usual linear layer (weights without batch dims, activations with
    // full batch) folds the batch into one GEMM: [K, batch*M] @ [batch*M, N].
    const bool a_batch_full = std::equal(plan_.batch.begin(), plan_.batch.end(), plan_.a.begin());
    const int64_t rows = shape_numel(plan_.batch) * plan_.m;
    if (b_reduce_ && a_batch_full && shape_numel(Shape(plan_.b.begin(), plan_.b.end() - 2)) == 1) {
      db_ = BatchedProduct(dt, {plan_.k, rows}, {1, plan_.k}, {rows, plan_.n}, {plan_.n, 1}, {plan_.k, plan_.n});
      b_reduce_ = false;
    } else {
      db_ = BatchedProduct(dt, swap_last_two(plan_.a), transposed_strides(plan_.a), y_full, strides_of(y_full), b_full_);
    }
  }

  void run(KernelContext& ctx) override {
    const Tensor& dy = ctx.input(0);
    const Tensor& a = ctx.input(1);
    const Tensor& b = ctx.input(2);
    if (ctx.wants_output(0)) produce(ctx, 0, da_, dy, b, a_full_, a_shape_, a_reduce_, plan_.a, scratch_a_);
    if (ctx.wants_output(1)) produce(ctx, 1, db_, a, dy, b_full_, b_shape_, b_reduce_, plan_.b, scratch_b_);
  }

 private:
  // Without a batch reduction the product has the operand's element count and is written
  // straight into the output; otherwise into a reused scratch, then summed down.
  static void produce(KernelContext& ctx, size_t out, const BatchedProduct& product, const Tensor& x,
                      const Tensor& y, const Shape& full, const Shape& shape, bool reduce, const Shape& padded,
                      Tensor& scratch) {
    Tensor& result = ctx.output(out, x.dtype(), shape);
    if (!reduce) {
      product.run(x, y, result, ctx.node());
      return;
    }
    if (scratch.shape() != full || scratch.dtype() != x.dtype()) scratch = Tensor(x.dtype(), full);
    product.run(x, y, scratch, ctx.node());
    dispatch_float(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      sum_to<T>(scratch.data<T>(), full, result.data<T>(), padded);
    });
  }

  MatMulPlan plan_;
  Shape a_shape_, b_shape_, a_full_, b_full_;
  bool a_reduce_ = false, b_reduce_ = false;
  BatchedProduct da_, db_;
  Tensor scratch_a_, scratch_b_;
};

void matmul_gradient(GradientBuilder& b) {
  auto grads = b.op_masked("MatMulGrad", {b.GO(0), b.I(0), b.I(1)}, {b.needs_grad(0), b.needs_grad(1)});
  if (b.needs_grad(0)) b.GI(0, grads[0]);
  if (b.needs_grad(1)) b.GI(1, grads[1]);
}

// Y = alpha * A' @ B' + beta * C with A' = transA ? A^T : A (B' likewise). Each operand's
// gradient is one Gemm whose trans flags absorb every transpose (the forward kernel reads
// transposed operands through strides, so no Transpose node is needed):
//   dA = alpha * dY @ B'^T        (transA = 0)    dA = alpha * B' @ dY^T   (transA = 1)
//   dB = alpha * A'^T @ dY        (transB = 0)    dB = alpha * dY^T @ A'   (transB = 1)
//   dC = beta * dY, summed back over C's broadcast dims by the driver.
void gemm_gradient(GradientBuilder& b) {
  const Node& node = b.node();
  const int64_t ta = node.attr_int("transA", 0) != 0, tb = node.attr_int("transB", 0) != 0;
  const float alpha = node.attr_float("alpha", 1.f), beta = node.attr_float("beta", 1.f);
  Value* gy = b.GO(0);
  auto gemm = [&](Value* x, int64_t tx, Value* y, int64_t ty) {
    Attributes attrs{{"transA", tx}, {"transB", ty}};
    if (alpha != 1.f) attrs["alpha"] = alpha;
    std::vector<Value*> inputs{x, y};
    if (node.opset < 11) {
      // C is required before opset 11: a zero scalar that beta = 0 switches off.
      inputs.push_back(b.scalar(0.0, gy));
      attrs["beta"] = 0.f;
    }
    return b.op("Gemm", inputs, attrs);
  };
  if (b.needs_grad(0)) b.GI(0, ta ? gemm(b.I(1), tb, gy, 1) : gemm(gy, 0, b.I(1), 1 - tb));
  if (b.needs_grad(1)) b.GI(1, tb ? gemm(gy, 1, b.I(0), ta) : gemm(b.I(0), 1 - ta, gy, 0));
  if (b.needs_grad(2)) b.GI_broadcast(2, beta == 1.f ? gy : b.mul(gy, b.scalar(beta, gy)));
}

}  // namespace

void register_einsum_ops(Registry& r);  // einsum.cpp

void register_matmul_ops(Registry& r) {
  register_einsum_ops(r);
  auto matmul = [](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    return std::make_unique<MatMulKernel>(node, in);
  };
  auto gemm = [](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    return std::make_unique<GemmKernel>(node, in);
  };
  r.add({"", "MatMul", 1, INT_MAX, matmul, "oneDNN matmul", matmul_gradient});
  r.add({graph::kTrainingDomain, "MatMulGrad", 1, INT_MAX,
         [](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
           return std::make_unique<MatMulGradKernel>(node, in);
         },
         "oneDNN matmul"});
  r.add({"", "Gemm", 1, INT_MAX, gemm, "oneDNN matmul", gemm_gradient});
  r.add({"", "Det", 11, INT_MAX, make_det, "own", det_gradient});
  r.add({graph::kTrainingDomain, "DetGrad", 1, INT_MAX, make_det_grad, "own"});
}

}  // namespace onnxtrain::ops
