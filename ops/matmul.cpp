// MatMul (numpy semantics) on oneDNN matmul for float32 (primitives built at plan time), own
// loops for double and integer types, with its MatMulGrad kernel and gradient rule. Gemm is
// in gemm.cpp, Det in det.cpp, Einsum in einsum.cpp; shared helpers: matmul_common.h.
#include "ops/matmul_common.h"

namespace onnxtrain::ops {

using namespace matmul_impl;

namespace {

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
      dnnl_.emplace(plan_.a, plan_.b, c, compute_type(node));
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
                 const Shape& c_dims, dnnl::memory::data_type type)
      : dtype_(dtype), a_dims_(a_dims), a_strides_(a_strides), b_dims_(b_dims), b_strides_(b_strides), c_dims_(c_dims) {
    if (dtype == DType::Float && c_dims.size() <= kMaxDnnlRank && all_positive(c_dims) && a_dims.back() > 0) {
      a_ = MatMulOperand(strided_desc(a_dims, dtype, a_strides), type);
      b_ = MatMulOperand(strided_desc(b_dims, dtype, b_strides), type);
      c_md_ = plain_desc(c_dims, dtype);
      primitive_ = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_.desc(), b_.desc(), c_md_), arena_scratchpad(), cpu_engine()));
      use_dnnl_ = true;
    }
  }
  void run(const Tensor& a, const Tensor& b, Tensor& c, const Node& node) const {
    if (c.numel() == 0) return;
    if (use_dnnl_) {
      execute(primitive_, {{DNNL_ARG_SRC, a_(a)}, {DNNL_ARG_WEIGHTS, b_(b)}, {DNNL_ARG_DST, bind(c_md_, c)}});
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
  MatMulOperand a_, b_;
  dnnl::memory::desc c_md_;
  dnnl::matmul primitive_;
};

class MatMulGradKernel final : public Kernel {
 public:
  MatMulGradKernel(const Node& node, const std::vector<InputInfo>& in)
      : plan_(plan_matmul(node, in[1].shape, in[2].shape)), a_shape_(in[1].shape), b_shape_(in[2].shape) {
    const DType dt = in[1].dtype;
    const auto type = compute_type(node);
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
    da_ = BatchedProduct(dt, y_full, strides_of(y_full), swap_last_two(plan_.b), transposed_strides(plan_.b), a_full_,
                         type);
    // dB = A^T @ dY. The usual linear layer (weights without batch dims, activations with
    // full batch) folds the batch into one GEMM: [K, batch*M] @ [batch*M, N].
    const bool a_batch_full = std::equal(plan_.batch.begin(), plan_.batch.end(), plan_.a.begin());
    const int64_t rows = shape_numel(plan_.batch) * plan_.m;
    if (b_reduce_ && a_batch_full && shape_numel(Shape(plan_.b.begin(), plan_.b.end() - 2)) == 1) {
      db_ = BatchedProduct(dt, {plan_.k, rows}, {1, plan_.k}, {rows, plan_.n}, {plan_.n, 1}, {plan_.k, plan_.n}, type);
      b_reduce_ = false;
    } else {
      db_ = BatchedProduct(dt, swap_last_two(plan_.a), transposed_strides(plan_.a), y_full, strides_of(y_full), b_full_,
                           type);
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

}  // namespace

void register_einsum_ops(Registry& r);  // einsum.cpp

void register_matmul_ops(Registry& r) {
  register_einsum_ops(r);
  auto matmul = [](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    return std::make_unique<MatMulKernel>(node, in);
  };
  r.add({"", "MatMul", 1, INT_MAX, matmul, "oneDNN matmul", matmul_gradient});
  r.add({graph::kTrainingDomain, "MatMulGrad", 1, INT_MAX,
         [](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
           return std::make_unique<MatMulGradKernel>(node, in);
         },
         "oneDNN matmul"});
  register_gemm_ops(r);
  register_det_ops(r);
}

}  // namespace onnxtrain::ops
