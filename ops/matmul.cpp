// Matrix products: MatMul, Gemm and Einsum on oneDNN matmul for float32 (primitives built at
// plan time), own loops for double and integer types; Det by LU decomposition.
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
constexpr int kMaxEllipsisDims = 64;
constexpr int kMaxLabels = 128 + kMaxEllipsisDims;  // character codes, then ellipsis dims

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

// ---------------------------------------------------------------------------------------------
// Einsum: each operand is first reduced to distinct labels (diagonals taken, labels nobody
// else uses summed out), then operands are contracted left to right as batched matmuls
// [batch, left, contracted] x [batch, contracted, right]; a final pass sums and permutes into
// the output order. All of it is planned at plan time; run() only executes the steps.

// out[i] = sum over r of in[offset(i) + offset(r)]. One strided pass covers diagonals (a
// repeated label's strides added up), transposes and sums over labels.
struct GatherStep {
  int src = 0, dst = 0;  // slots
  Shape shape, strides;
  Shape red_shape, red_strides;
};

struct ContractStep {
  int a = 0, b = 0, dst = 0;  // slots holding [B, M, K], [B, K, N] -> [B, M, N]
  int64_t batch = 1, m = 1, k = 1, n = 1;
  std::shared_ptr<DnnlMatMul> dnnl;
};

template <typename T>
void gather_sum(const T* in, const GatherStep& g, T* out) {
  using A = std::conditional_t<std::is_same_v<T, float>, double, Acc<T>>;
  const int rank = static_cast<int>(g.shape.size());
  const int64_t inner = rank ? g.shape.back() : 1;
  const int64_t inner_stride = rank ? g.strides.back() : 0;
  const int64_t outer = inner ? shape_numel(g.shape) / inner : 0;
  const int64_t reds = shape_numel(g.red_shape);
  const int red_rank = static_cast<int>(g.red_shape.size());
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, inner * reds));
  parallel_for(outer, [&](int64_t o) {
    int64_t base = 0, rest = o;
    for (int d = rank - 2; d >= 0; --d) {
      base += (rest % g.shape[d]) * g.strides[d];
      rest /= g.shape[d];
    }
    T* dst = out + o * inner;
    if (reds == 1) {
      for (int64_t j = 0; j < inner; ++j) dst[j] = in[base + j * inner_stride];
      return;
    }
    int64_t idx[kMaxLabels] = {};
    for (int64_t j = 0; j < inner; ++j) {
      const T* src = in + base + j * inner_stride;
      A acc{};
      int64_t off = 0;
      for (int64_t r = 0; r < reds; ++r) {
        acc += static_cast<A>(src[off]);
        for (int d = red_rank - 1; d >= 0; --d) {
          if (++idx[d] < g.red_shape[d]) {
            off += g.red_strides[d];
            break;
          }
          off -= (g.red_shape[d] - 1) * g.red_strides[d];
          idx[d] = 0;
        }
      }
      dst[j] = static_cast<T>(acc);
    }
  }, grain);
}

template <typename T>
void contract_loop(const ContractStep& c, const T* a, const T* b, T* y) {
  const int64_t rows = c.batch * c.m;
  parallel_for(rows, [&](int64_t r) {
    const int64_t bi = r / c.m, i = r % c.m;
    gemm_loop(a + (bi * c.m + i) * c.k, c.k, 1, b + bi * c.k * c.n, c.n, 1, y + r * c.n, 1, c.n, c.k);
  }, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, c.n * c.k)));
}

class EinsumKernel final : public Kernel {
 public:
  EinsumKernel(const Node& node, const std::vector<InputInfo>& in);
  void run(KernelContext& ctx) override;

 private:
  struct Operand {
    std::vector<int> labels;
    Shape shape;
    int slot = 0;
  };

  int new_slot(const Shape& shape) {
    scratch_shapes_.push_back(shape);
    return static_cast<int>(inputs_ + scratch_shapes_.size() - 1);
  }
  // Plans a gather of `x` into `labels` (each label of x not listed is summed out).
  Operand gather(const Operand& x, const std::vector<int>& labels);

  size_t inputs_ = 0;
  DType dtype_ = DType::Undefined;
  Shape out_shape_;
  std::vector<int64_t> size_;  // per label
  std::vector<Shape> scratch_shapes_;
  std::vector<std::variant<GatherStep, ContractStep>> steps_;
  std::vector<Tensor> scratch_;
};

EinsumKernel::Operand EinsumKernel::gather(const Operand& x, const std::vector<int>& labels) {
  GatherStep g;
  g.src = x.slot;
  const Shape strides = strides_of(x.shape);
  std::vector<int64_t> label_stride(size_.size(), 0);
  std::vector<bool> listed(size_.size(), false);
  for (size_t i = 0; i < x.labels.size(); ++i)
    if (x.shape[i] != 1) label_stride[x.labels[i]] += strides[i];  // size-1 dims broadcast
  for (int l : labels) {
    listed[l] = true;
    g.shape.push_back(size_[l]);
    g.strides.push_back(label_stride[l]);
  }
  std::vector<bool> seen(size_.size(), false);
  for (size_t i = 0; i < x.labels.size(); ++i) {
    const int l = x.labels[i];
    if (listed[l] || seen[l] || x.shape[i] == 1) continue;
    seen[l] = true;
    g.red_shape.push_back(x.shape[i]);
    g.red_strides.push_back(label_stride[l]);
  }
  Operand out{labels, g.shape, x.slot};
  if (labels == x.labels && g.shape == x.shape) return out;  // already in that form
  out.slot = g.dst = new_slot(g.shape);
  steps_.push_back(std::move(g));
  return out;
}

EinsumKernel::EinsumKernel(const Node& node, const std::vector<InputInfo>& in) : inputs_(in.size()) {
  std::string eq;
  for (char ch : node.attr_string("equation", "")) if (ch != ' ') eq += ch;
  if (in.empty()) fail(node, "needs at least one input");
  dtype_ = in[0].dtype;
  for (const auto& i : in)
    if (i.dtype != dtype_) fail(node, "inputs have different element types");
  const size_t arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  std::vector<std::string> terms(1);
  for (char ch : lhs) {
    if (ch == ',') terms.emplace_back();
    else terms.back().push_back(ch);
  }
  if (terms.size() != in.size())
    fail(node, "equation '" + eq + "' has " + std::to_string(terms.size()) + " operand terms for " + std::to_string(in.size()) + " inputs");

  // Letters keep their character code as label; ellipsis dims get 128 + i, right-aligned.
  auto split = [&](const std::string& term, std::vector<int>& letters, int& ellipsis_at) {
    ellipsis_at = -1;
    for (size_t i = 0; i < term.size(); ++i) {
      const char ch = term[i];
      if (std::isalpha(static_cast<unsigned char>(ch))) {
        letters.push_back(ch);
      } else if (term.compare(i, 3, "...") == 0 && ellipsis_at < 0) {
        ellipsis_at = static_cast<int>(letters.size());
        i += 2;
      } else {
        fail(node, "invalid equation '" + eq + "' (term '" + term + "')");
      }
    }
  };
  std::vector<std::vector<int>> letters(in.size());
  std::vector<int> ellipsis_at(in.size());
  int max_ell = 0;
  for (size_t t = 0; t < in.size(); ++t) {
    split(terms[t], letters[t], ellipsis_at[t]);
    const int64_t rank = static_cast<int64_t>(in[t].shape.size()), nl = static_cast<int64_t>(letters[t].size());
    if (ellipsis_at[t] < 0 ? rank != nl : rank < nl)
      fail_shape(node, "term '" + terms[t] + "' does not match input " + std::to_string(t) + " of shape " + shape_str(in[t].shape));
    max_ell = std::max<int>(max_ell, static_cast<int>(rank - nl));
  }
  if (max_ell > kMaxEllipsisDims) fail(node, "too many ellipsis dimensions");
  size_.assign(128 + max_ell, -1);  // -1: label not used
  std::vector<int> count(size_.size(), 0);
  std::vector<Operand> ops(in.size());
  for (size_t t = 0; t < in.size(); ++t) {
    Operand& op = ops[t];
    op.shape = in[t].shape;
    op.slot = static_cast<int>(t);
    const int ell = static_cast<int>(op.shape.size() - letters[t].size());
    op.labels = letters[t];
    if (ellipsis_at[t] >= 0) {
      std::vector<int> e;
      for (int i = 0; i < ell; ++i) e.push_back(128 + max_ell - ell + i);
      op.labels.insert(op.labels.begin() + ellipsis_at[t], e.begin(), e.end());
    }
    for (size_t i = 0; i < op.labels.size(); ++i) {
      const int l = op.labels[i];
      const int64_t d = op.shape[i];
      ++count[l];
      for (size_t j = 0; j < i; ++j)
        if (op.labels[j] == l && op.shape[j] != d) fail_shape(node, "repeated label in term '" + terms[t] + "' has different sizes");
      if (size_[l] < 0 || size_[l] == 1) size_[l] = d;
      else if (d != size_[l] && d != 1)
        fail_shape(node, "label sizes " + std::to_string(size_[l]) + " and " + std::to_string(d) + " cannot be broadcast in '" + eq + "'");
    }
  }
  // Output labels: explicit, or the ellipsis dims followed by letters used once, sorted.
  std::vector<int> out_labels;
  if (arrow != std::string::npos) {
    std::vector<int> out_letters;
    int out_ell = -1;
    split(eq.substr(arrow + 2), out_letters, out_ell);
    out_labels = out_letters;
    if (out_ell >= 0) {
      std::vector<int> e;
      for (int i = 0; i < max_ell; ++i) e.push_back(128 + i);
      out_labels.insert(out_labels.begin() + out_ell, e.begin(), e.end());
    }
    for (size_t i = 0; i < out_labels.size(); ++i) {
      if (count[out_labels[i]] == 0) fail(node, "output label of '" + eq + "' does not occur in any input");
      for (size_t j = 0; j < i; ++j)
        if (out_labels[j] == out_labels[i]) fail(node, "output of '" + eq + "' repeats a label");
    }
  } else {
    for (int i = 0; i < max_ell; ++i) out_labels.push_back(128 + i);
    for (int l = 0; l < 128; ++l)
      if (count[l] == 1) out_labels.push_back(l);
  }
  for (int l : out_labels) out_shape_.push_back(size_[l]);

  // Where each label still occurs (an operand's size-1 dim broadcast against a larger one
  // does not count: it is dropped by the gather).
  auto occurs = [&](const Operand& op, int l) {
    for (size_t i = 0; i < op.labels.size(); ++i)
      if (op.labels[i] == l && (op.shape[i] == size_[l])) return true;
    return false;
  };
  auto in_output = [&](int l) { return std::find(out_labels.begin(), out_labels.end(), l) != out_labels.end(); };
  for (size_t t = 0; t < ops.size(); ++t) {
    std::vector<int> keep;
    for (size_t i = 0; i < ops[t].labels.size(); ++i) {
      const int l = ops[t].labels[i];
      if (std::find(keep.begin(), keep.end(), l) != keep.end() || !occurs(ops[t], l)) continue;
      bool used = in_output(l);
      for (size_t u = 0; u < ops.size() && !used; ++u) used = u != t && occurs(ops[u], l);
      if (used) keep.push_back(l);
    }
    ops[t] = gather(ops[t], keep);
  }
  Operand cur = ops[0];
  for (size_t t = 1; t < ops.size(); ++t) {
    const Operand& y = ops[t];
    auto needed = [&](int l) {
      if (in_output(l)) return true;
      for (size_t u = t + 1; u < ops.size(); ++u)
        if (occurs(ops[u], l)) return true;
      return false;
    };
    auto has = [](const Operand& o, int l) { return std::find(o.labels.begin(), o.labels.end(), l) != o.labels.end(); };
    std::vector<int> batch, left, contracted, right;
    for (int l : cur.labels) {
      if (has(y, l)) (needed(l) ? batch : contracted).push_back(l);
      else if (needed(l)) left.push_back(l);
    }
    for (int l : y.labels)
      if (!has(cur, l) && needed(l)) right.push_back(l);
    auto cat = [](std::vector<int> a, const std::vector<int>& b, const std::vector<int>& c) {
      a.insert(a.end(), b.begin(), b.end());
      a.insert(a.end(), c.begin(), c.end());
      return a;
    };
    auto prod = [&](const std::vector<int>& ls) {
      int64_t p = 1;
      for (int l : ls) p *= size_[l];
      return p;
    };
    const Operand a = gather(cur, cat(batch, left, contracted));
    const Operand b = gather(y, cat(batch, contracted, right));
    ContractStep c;
    c.a = a.slot;
    c.b = b.slot;
    c.batch = prod(batch);
    c.m = prod(left);
    c.k = prod(contracted);
    c.n = prod(right);
    cur.labels = cat(batch, left, right);
    cur.shape.clear();
    for (int l : cur.labels) cur.shape.push_back(size_[l]);
    cur.slot = c.dst = new_slot(cur.shape);
    if (dtype_ == DType::Float && c.batch > 0 && c.m > 0 && c.k > 0 && c.n > 0)
      c.dnnl = std::make_shared<DnnlMatMul>(Shape{c.batch, c.m, c.k}, Shape{c.batch, c.k, c.n}, Shape{c.batch, c.m, c.n});
    steps_.push_back(std::move(c));
  }
  const size_t before = steps_.size();
  cur = gather(cur, out_labels);
  if (steps_.size() == before && cur.slot >= static_cast<int>(inputs_)) {
    // The last step already produces the output layout: let it write the output directly.
    const int last = cur.slot;
    scratch_shapes_.pop_back();
    for (auto& s : steps_) std::visit([&](auto& st) { if (st.dst == last) st.dst = -1; }, s);
  } else if (steps_.size() == before) {
    GatherStep copy;  // the output is an input unchanged
    copy.src = cur.slot;
    copy.dst = -1;
    copy.shape = cur.shape;
    copy.strides = strides_of(cur.shape);
    steps_.push_back(copy);
  } else {
    std::get<GatherStep>(steps_.back()).dst = -1;
    scratch_shapes_.pop_back();
  }
  for (const auto& s : scratch_shapes_) scratch_.emplace_back(dtype_, s);
}

void EinsumKernel::run(KernelContext& ctx) {
  Tensor& y = ctx.output(0, dtype_, out_shape_);
  auto slot = [&](int s) -> const Tensor& {
    if (s < 0) return y;
    if (s < static_cast<int>(inputs_)) return ctx.input(s);
    return scratch_[s - inputs_];
  };
  dispatch_numeric(dtype_, ctx.node(), [&](auto tag) {
    using T = decltype(tag);
    auto ptr = [&](int s) { return const_cast<T*>(slot(s).template data<T>()); };
    for (const auto& step : steps_) {
      if (const auto* g = std::get_if<GatherStep>(&step)) {
        gather_sum<T>(ptr(g->src), *g, ptr(g->dst));
      } else {
        const auto& c = std::get<ContractStep>(step);
        if constexpr (std::is_same_v<T, float>) {
          if (c.dnnl) {
            c.dnnl->run(slot(c.a), slot(c.b), slot(c.dst));
            continue;
          }
        }
        contract_loop<T>(c, ptr(c.a), ptr(c.b), ptr(c.dst));
      }
    }
  });
}

std::unique_ptr<Kernel> make_einsum_kernel(const Node& node, const std::vector<InputInfo>& in) {
  return std::make_unique<EinsumKernel>(node, in);
}

// Swaps the last two axes of a value of rank >= 2.
Value* transpose_last_two(GradientBuilder& b, Value* v, size_t rank) {
  std::vector<int64_t> perm(rank);
  for (size_t i = 0; i < rank; ++i) perm[i] = static_cast<int64_t>(i);
  std::swap(perm[rank - 1], perm[rank - 2]);
  return b.transpose(v, perm);
}

// Y = A @ B with numpy semantics: 1-D operands are promoted to matrices (and the promoted
// axis removed from Y), batch dims broadcast. dA = dY @ B^T, dB = A^T @ dY, each summed
// back over broadcast batch dims by the driver.
void matmul_gradient(GradientBuilder& b) {
  Value* a = b.I(0);
  Value* w = b.I(1);
  const size_t ra = b.rank(a), rw = b.rank(w);
  Value* gy = b.GO(0);
  if (ra == 1 && rw == 1) gy = b.unsqueeze(gy, {0, 1});
  else if (ra == 1) gy = b.unsqueeze(gy, {-2});
  else if (rw == 1) gy = b.unsqueeze(gy, {-1});
  Value* a2 = ra == 1 ? b.unsqueeze(a, {0}) : a;
  Value* w2 = rw == 1 ? b.unsqueeze(w, {1}) : w;
  const size_t ra2 = std::max<size_t>(ra, 2), rw2 = std::max<size_t>(rw, 2);
  if (b.needs_grad(0)) {
    Value* ga = b.op("MatMul", {gy, transpose_last_two(b, w2, rw2)});
    if (ra == 1) {
      // ga is [..., 1, K]: sum the batch dims away, then drop the promoted axis.
      ga = b.sum_to_shape_of(ga, a2);
      b.GI(0, b.squeeze(ga, {0}));
    } else {
      b.GI_broadcast(0, ga);
    }
  }
  if (b.needs_grad(1)) {
    Value* gw = b.op("MatMul", {transpose_last_two(b, a2, ra2), gy});
    if (rw == 1) {
      gw = b.sum_to_shape_of(gw, w2);
      b.GI(1, b.squeeze(gw, {1}));
    } else {
      b.GI_broadcast(1, gw);
    }
  }
}

}  // namespace

void register_matmul_ops(Registry& r) {
  auto matmul = [](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    return std::make_unique<MatMulKernel>(node, in);
  };
  auto gemm = [](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    return std::make_unique<GemmKernel>(node, in);
  };
  r.add({"", "MatMul", 1, INT_MAX, matmul, "oneDNN matmul", matmul_gradient});
  r.add({"", "Gemm", 1, INT_MAX, gemm, "oneDNN matmul"});
  r.add({"", "Einsum", 12, INT_MAX, make_einsum_kernel, "oneDNN matmul"});
  r.add({"", "Det", 11, INT_MAX, make_det, "own"});
}

}  // namespace onnxtrain::ops
