// Softmax, LogSoftmax and Hardmax.
//
// Before opset 13 the input is coerced to 2-D at `axis` (default 1) and normalised over
// the flattened trailing dims; from opset 13 one axis (default -1) is normalised. Both
// become an [outer, size, inner] view (inner = 1 for the old form). float32 Softmax runs
// oneDNN's softmax_v2 on that view; LogSoftmax (see softmax_common.h for why), double and
// Hardmax use own loops.
// Gradients: ai.onnxtrain.SoftmaxGrad / LogSoftmaxGrad (oneDNN softmax_v2 backward).
#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/dnnl_utils.h"
#include "ops/op_utils.h"
#include "ops/registry.h"
#include "ops/softmax_common.h"

namespace onnxtrain::ops {

namespace {

enum class SoftmaxKind { Softmax, LogSoftmax, Hardmax };

struct SoftmaxView {
  int64_t outer = 1, size = 1, inner = 1;
};

SoftmaxView softmax_view(const Node& node, const Shape& shape) {
  const int64_t rank = static_cast<int64_t>(shape.size());
  SoftmaxView v;
  if (node.opset < 13) {
    // The 2-D coercion allows axis == rank (everything is "outer").
    int64_t axis = node.attr_int("axis", 1);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis > rank)
      fail(node, "axis " + std::to_string(node.attr_int("axis", 1)) + " is outside [-" + std::to_string(rank) + ", " +
                     std::to_string(rank) + "]");
    for (int64_t d = 0; d < rank; ++d) (d < axis ? v.outer : v.size) *= shape[d];
    return v;
  }
  if (rank == 0) fail_shape(node, "needs an input of rank >= 1");
  const int64_t axis = normalize_axis(node.attr_int("axis", -1), rank, node);
  for (int64_t d = 0; d < rank; ++d) (d < axis ? v.outer : d == axis ? v.size : v.inner) *= shape[d];
  return v;
}

// Own loop over one [size, inner] block: `inner` independent rows with stride `inner`,
// processed together so the innermost loop is contiguous.
template <typename T>
void softmax_block(SoftmaxKind kind, const T* x, T* y, int64_t size, int64_t inner, T* tmp) {
  T* best = tmp;
  for (int64_t i = 0; i < inner; ++i) best[i] = x[i];
  for (int64_t r = 1; r < size; ++r)
    for (int64_t i = 0; i < inner; ++i) best[i] = std::max(best[i], x[r * inner + i]);
  if (kind == SoftmaxKind::Hardmax) {
    // One-hot at the first maximum.
    for (int64_t i = 0; i < inner; ++i) {
      bool found = false;
      for (int64_t r = 0; r < size; ++r) {
        const bool hit = !found && x[r * inner + i] == best[i];
        y[r * inner + i] = hit ? T{1} : T{0};
        found = found || hit;
      }
    }
    return;
  }
  T* sum = tmp + inner;
  std::fill(sum, sum + inner, T{0});
  for (int64_t r = 0; r < size; ++r)
    for (int64_t i = 0; i < inner; ++i) {
      const T e = std::exp(x[r * inner + i] - best[i]);
      sum[i] += e;
      y[r * inner + i] = e;
    }
  for (int64_t i = 0; i < inner; ++i) sum[i] = T{1} / sum[i];
  for (int64_t r = 0; r < size; ++r)
    for (int64_t i = 0; i < inner; ++i) y[r * inner + i] *= sum[i];
}

template <typename T>
void softmax_loop(SoftmaxKind kind, const SoftmaxView& v, const T* x, T* y) {
  if (kind == SoftmaxKind::LogSoftmax) return log_softmax_rows(x, y, v.outer, v.size, v.inner);
  if (v.size == 0 || v.inner == 0) return;
  const int64_t block = v.size * v.inner;
  const bool parallel = v.outer > 1 && v.outer * block >= 16384;
#pragma omp parallel if (parallel)
  {
    std::vector<T> tmp(static_cast<size_t>(2 * v.inner));
#pragma omp for schedule(static)
    for (int64_t o = 0; o < v.outer; ++o) softmax_block(kind, x + o * block, y + o * block, v.size, v.inner, tmp.data());
  }
}

class DnnlSoftmaxKernel final : public Kernel {
 public:
  explicit DnnlSoftmaxKernel(const SoftmaxView& v) {
    md_ = plain_desc({v.outer, v.size, v.inner}, DType::Float);
    dnnl::softmax_v2_forward::desc desc(dnnl::prop_kind::forward_training, dnnl::algorithm::softmax_accurate, md_, md_, 1);
    pd_ = dnnl::softmax_v2_forward::primitive_desc(desc, arena_scratchpad(), cpu_engine());
    primitive_ = dnnl::softmax_v2_forward(pd_);
  }
  void run(KernelContext& ctx) override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, DType::Float, x.shape());
    execute(primitive_, {{DNNL_ARG_SRC, bind(md_, x)}, {DNNL_ARG_DST, bind(md_, y)}});
  }

 private:
  dnnl::memory::desc md_;
  dnnl::softmax_v2_forward::primitive_desc pd_;  // kept: the backward pass uses it as a hint
  dnnl::softmax_v2_forward primitive_;
};

KernelFactory softmax_factory(SoftmaxKind kind) {
  return [kind](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    dispatch_float(in[0].dtype, node, [](auto) {});
    const SoftmaxView v = softmax_view(node, in[0].shape);
    if (kind == SoftmaxKind::Softmax && in[0].dtype == DType::Float && v.outer * v.size * v.inner > 0)
      return std::make_unique<DnnlSoftmaxKernel>(v);
    return make_function_kernel([kind, v](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      Tensor& y = ctx.output(0, x.dtype(), x.shape());
      dispatch_float(x.dtype(), ctx.node(), [&](auto tag) {
        using T = decltype(tag);
        softmax_loop<T>(kind, v, x.data<T>(), y.data<T>());
      });
    });
  };
}


// --- Gradients ---------------------------------------------------------------------------
//
// ai.onnxtrain.SoftmaxGrad(dY, Y) -> dX = Y * (dY - sum(dY * Y)) and
// ai.onnxtrain.LogSoftmaxGrad(dY, Y) -> dX = dY - exp(Y) * sum(dY), sums over the softmax
// axis. Attributes: axis, and coerce_2d = 1 for the forward's opset < 13 semantics
// (normalise over the flattened dims from `axis` on). float32 runs oneDNN's softmax_v2
// backward (forward descriptor as hint), double an own loop.

SoftmaxView grad_view(const Node& node, const Shape& shape) {
  const int64_t rank = static_cast<int64_t>(shape.size());
  SoftmaxView v;
  int64_t axis = node.attr_int("axis", -1);
  if (node.attr_int("coerce_2d", 0) != 0) {
    if (axis < 0) axis += rank;
    if (axis < 0 || axis > rank) fail(node, "axis " + std::to_string(node.attr_int("axis", -1)) + " is out of range");
    for (int64_t d = 0; d < rank; ++d) (d < axis ? v.outer : v.size) *= shape[d];
    return v;
  }
  if (rank == 0) fail_shape(node, "needs an input of rank >= 1");
  axis = normalize_axis(axis, rank, node);
  for (int64_t d = 0; d < rank; ++d) (d < axis ? v.outer : d == axis ? v.size : v.inner) *= shape[d];
  return v;
}

template <typename T>
void softmax_grad_block(bool log, const T* dy, const T* y, T* dx, int64_t size, int64_t inner, T* sum) {
  std::fill(sum, sum + inner, T{0});
  if (log) {
    for (int64_t r = 0; r < size; ++r)
      for (int64_t i = 0; i < inner; ++i) sum[i] += dy[r * inner + i];
    for (int64_t r = 0; r < size; ++r)
      for (int64_t i = 0; i < inner; ++i) dx[r * inner + i] = dy[r * inner + i] - std::exp(y[r * inner + i]) * sum[i];
  } else {
    for (int64_t r = 0; r < size; ++r)
      for (int64_t i = 0; i < inner; ++i) sum[i] += dy[r * inner + i] * y[r * inner + i];
    for (int64_t r = 0; r < size; ++r)
      for (int64_t i = 0; i < inner; ++i) dx[r * inner + i] = y[r * inner + i] * (dy[r * inner + i] - sum[i]);
  }
}

template <typename T>
void softmax_grad_loop(bool log, const SoftmaxView& v, const T* dy, const T* y, T* dx) {
  if (v.size == 0 || v.inner == 0) return;
  const int64_t block = v.size * v.inner;
  const bool parallel = v.outer > 1 && v.outer * block >= 16384;
#pragma omp parallel if (parallel)
  {
    std::vector<T> sum(static_cast<size_t>(v.inner));
#pragma omp for schedule(static)
    for (int64_t o = 0; o < v.outer; ++o)
      softmax_grad_block(log, dy + o * block, y + o * block, dx + o * block, v.size, v.inner, sum.data());
  }
}

class DnnlSoftmaxGradKernel final : public Kernel {
 public:
  DnnlSoftmaxGradKernel(const SoftmaxView& v, bool log) {
    md_ = plain_desc({v.outer, v.size, v.inner}, DType::Float);
    const auto alg = log ? dnnl::algorithm::softmax_log : dnnl::algorithm::softmax_accurate;
    dnnl::softmax_v2_forward::desc fwd(dnnl::prop_kind::forward_training, alg, md_, md_, 1);
    dnnl::softmax_v2_forward::primitive_desc hint(fwd, arena_scratchpad(), cpu_engine());
    dnnl::softmax_v2_backward::desc bwd(alg, md_, md_, md_, 1);
    primitive_ = dnnl::softmax_v2_backward(dnnl::softmax_v2_backward::primitive_desc(bwd, arena_scratchpad(), cpu_engine(), hint));
  }
  void run(KernelContext& ctx) override {
    const Tensor& dy = ctx.input(0);
    const Tensor& y = ctx.input(1);
    Tensor& dx = ctx.output(0, DType::Float, y.shape());
    execute(primitive_, {{DNNL_ARG_DST, bind(md_, y)}, {DNNL_ARG_DIFF_DST, bind(md_, dy)}, {DNNL_ARG_DIFF_SRC, bind(md_, dx)}});
  }

 private:
  dnnl::memory::desc md_;
  dnnl::softmax_v2_backward primitive_;
};

KernelFactory softmax_grad_factory(bool log) {
  return [log](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    if (in.size() < 2 || !in[0].present || !in[1].present) fail(node, "needs the inputs dY and Y");
    dispatch_float(in[1].dtype, node, [](auto) {});
    if (in[0].dtype != in[1].dtype || in[0].shape != in[1].shape)
      fail_shape(node, "dY " + shape_str(in[0].shape) + " and Y " + shape_str(in[1].shape) +
                           " must have the same shape and element type");
    const SoftmaxView v = grad_view(node, in[1].shape);
    if (in[1].dtype == DType::Float && v.outer * v.size * v.inner > 0)
      return std::make_unique<DnnlSoftmaxGradKernel>(v, log);
    return make_function_kernel([log, v](KernelContext& ctx) {
      const Tensor& dy = ctx.input(0);
      const Tensor& y = ctx.input(1);
      Tensor& dx = ctx.output(0, y.dtype(), y.shape());
      dispatch_float(y.dtype(), ctx.node(), [&](auto tag) {
        using T = decltype(tag);
        softmax_grad_loop<T>(log, v, dy.data<T>(), y.data<T>(), dx.data<T>());
      });
    });
  };
}

GradientRule softmax_gradient(bool log) {
  return [log](GradientBuilder& b) {
    const Node& n = b.node();
    const bool coerce = n.opset < 13;
    const int64_t axis = n.attr_int("axis", coerce ? 1 : -1);
    b.GI(0, b.train_op(log ? "LogSoftmaxGrad" : "SoftmaxGrad", {b.GO(0), b.O(0)},
                       {{"axis", axis}, {"coerce_2d", int64_t{coerce ? 1 : 0}}}));
  };
}

// Hardmax is piecewise constant: its gradient is zero.
void hardmax_gradient(GradientBuilder& b) { b.GI(0, b.zeros_like(b.I(0))); }

}  // namespace

void register_softmax_ops(Registry& r) {
  r.add({"", "Softmax", 1, INT_MAX, softmax_factory(SoftmaxKind::Softmax), "oneDNN softmax_v2", softmax_gradient(false)});
  r.add({"", "LogSoftmax", 1, INT_MAX, softmax_factory(SoftmaxKind::LogSoftmax), "own (sums in double)",
         softmax_gradient(true)});
  r.add({"", "Hardmax", 1, INT_MAX, softmax_factory(SoftmaxKind::Hardmax), "own", hardmax_gradient});
  const char* d = graph::kTrainingDomain;
  r.add({d, "SoftmaxGrad", 1, INT_MAX, softmax_grad_factory(false), "oneDNN softmax_v2 backward"});
  r.add({d, "LogSoftmaxGrad", 1, INT_MAX, softmax_grad_factory(true), "oneDNN softmax_v2 backward"});
}

}  // namespace onnxtrain::ops
