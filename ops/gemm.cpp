// Gemm: Y = alpha * A' * B' + beta * C on oneDNN matmul for float32 (C fused as a binary
// post-op), own loops for double and integer types, and its gradient rule (standard Gemm
// nodes). Registered from register_matmul_ops; shared helpers: matmul_common.h.
#include "ops/matmul_common.h"

namespace onnxtrain::ops {

using namespace matmul_impl;

namespace {

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
    if (in[0].dtype == DType::Float && m_ > 0 && n_ > 0 && k_ > 0) build_dnnl(compute_type(node));
  }

  void run(KernelContext& ctx) override {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    Tensor& y = ctx.output(0, a.dtype(), {m_, n_});
    if (dnnl_) {
      ExecArgs args{{DNNL_ARG_SRC, a_(a)}, {DNNL_ARG_WEIGHTS, b_(b)}, {DNNL_ARG_DST, bind(y_md_, y)}};
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

  void build_dnnl(dnnl::memory::data_type type) {
    // Transposes are expressed as strides: oneDNN's gemm-based matmul reads them directly
    // (a bf16 copy keeps them).
    a_ = MatMulOperand(strided_desc({m_, k_}, DType::Float, trans_a_ ? Shape{1, m_} : Shape{k_, 1}), type);
    b_ = MatMulOperand(strided_desc({k_, n_}, DType::Float, trans_b_ ? Shape{1, k_} : Shape{n_, 1}), type);
    y_md_ = plain_desc({m_, n_}, DType::Float);
    dnnl::matmul::desc desc(a_.desc(), b_.desc(), y_md_);
    auto make = [&](CMode mode) -> std::optional<dnnl::matmul::primitive_desc> {
      dnnl::primitive_attr attr = arena_scratchpad();
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
  MatMulOperand a_, b_;
  dnnl::memory::desc y_md_, c_md_;
  dnnl::matmul::primitive_desc pd_;
  std::optional<dnnl::matmul> dnnl_;
};

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

void register_gemm_ops(Registry& r) {
  auto gemm = [](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    return std::make_unique<GemmKernel>(node, in);
  };
  r.add({"", "Gemm", 1, INT_MAX, gemm, "oneDNN matmul", gemm_gradient});
}

}  // namespace onnxtrain::ops
