// Det: batched determinant by LU decomposition with partial pivoting (in double), with its
// DetGrad kernel and gradient rule. Registered from register_matmul_ops.
#include "ops/matmul_common.h"

namespace onnxtrain::ops {

namespace {

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

void register_det_ops(Registry& r) {
  r.add({"", "Det", 11, INT_MAX, make_det, "own", det_gradient});
  r.add({graph::kTrainingDomain, "DetGrad", 1, INT_MAX, make_det_grad, "own"});
}

}  // namespace onnxtrain::ops
