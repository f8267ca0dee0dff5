// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (opsets 12, 13).
//
// Inputs are viewed as [N, C, D] (D = d1*...*dk, 1 for 2-D inputs) and targets as [N, D].
// SoftmaxCrossEntropyLoss first computes log-probabilities over C (ops/softmax_common.h)
// into its log_prob output, or into a kernel-owned buffer when that output is unused, then
// applies the NLL gather. The
// backward pass reuses those log-probabilities (softmax = exp(log_prob)): see Gradients.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "ops/op_utils.h"
#include "ops/registry.h"
#include "ops/softmax_common.h"

namespace onnxtrain::ops {

namespace {

enum class Reduction { None, Sum, Mean };

struct LossSpec {
  int64_t n = 0, c = 0, d = 1;
  Shape loss_shape;  // the target's shape for reduction "none", {} otherwise
  Reduction reduction = Reduction::Mean;
  std::optional<int64_t> ignore_index;
  bool has_weight = false;
};

LossSpec loss_spec(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() < 2 || !in[0].present || !in[1].present) fail(node, "needs the inputs 'input'/'scores' and 'target'/'labels'");
  dispatch_float(in[0].dtype, node, [](auto) {});
  dispatch_types<int32_t, int64_t>(in[1].dtype, node, [](auto) {});
  const Shape& x = in[0].shape;
  const Shape& t = in[1].shape;
  if (x.size() < 2) fail_shape(node, "input must have shape [N, C, d1, ..., dk], got " + shape_str(x));
  LossSpec s;
  s.n = x[0];
  s.c = x[1];
  for (size_t i = 2; i < x.size(); ++i) s.d *= x[i];
  Shape expected = {x[0]};
  expected.insert(expected.end(), x.begin() + 2, x.end());
  if (t != expected)
    fail_shape(node, "target shape " + shape_str(t) + " does not match input shape " + shape_str(x) + " (expected " +
                         shape_str(expected) + ")");
  if (in.size() > 2 && in[2].present) {
    if (in[2].dtype != in[0].dtype) fail(node, "weight must have the element type of the input");
    if (in[2].shape != Shape{s.c}) fail_shape(node, "weight must have shape [C] = [" + std::to_string(s.c) + "], got " + shape_str(in[2].shape));
    s.has_weight = true;
  }
  const std::string reduction = node.attr_string("reduction", "mean");
  if (reduction == "none") s.reduction = Reduction::None;
  else if (reduction == "sum") s.reduction = Reduction::Sum;
  else if (reduction == "mean") s.reduction = Reduction::Mean;
  else fail(node, "reduction must be 'none', 'sum' or 'mean', got '" + reduction + "'");
  if (node.has_attr("ignore_index")) s.ignore_index = node.attr_int("ignore_index");
  if (s.reduction == Reduction::None) s.loss_shape = t;
  return s;
}

// Checks every non-ignored target before the parallel loops (they cannot throw).
template <typename I>
void check_targets(const Node& node, const LossSpec& s, const I* target) {
  const int64_t count = s.n * s.d;
  for (int64_t k = 0; k < count; ++k) {
    const int64_t t = static_cast<int64_t>(target[k]);
    if (s.ignore_index && t == *s.ignore_index) continue;
    if (t < 0 || t >= s.c)
      fail(node, "target value " + std::to_string(t) + " at flat index " + std::to_string(k) + " is outside [0, " +
                     std::to_string(s.c) + ")");
  }
}

// loss[n, d] = -logp[n, target[n, d], d] * weight[target[n, d]] (0 for ignored targets),
// then the reduction. "mean" divides by the summed weights of the non-ignored targets.
template <typename T, typename I>
void nll(const Node& node, const LossSpec& s, const T* logp, const I* target, const T* weight, T* out) {
  check_targets(node, s, target);
  const int64_t count = s.n * s.d;
  const int64_t c = s.c, d = s.d;
  const bool has_ignore = s.ignore_index.has_value();
  const int64_t ignore = s.ignore_index.value_or(0);
  auto term = [&](int64_t k, double& w) -> double {
    const int64_t t = static_cast<int64_t>(target[k]);
    if (has_ignore && t == ignore) {
      w = 0.0;
      return 0.0;
    }
    w = weight ? static_cast<double>(weight[t]) : 1.0;
    const int64_t n = k / d, j = k % d;
    return -static_cast<double>(logp[(n * c + t) * d + j]) * w;
  };
  if (s.reduction == Reduction::None) {
    parallel_for(count, [&](int64_t k) {
      double w;
      out[k] = static_cast<T>(term(k, w));
    });
    return;
  }
  double total = 0.0, weight_sum = 0.0;
  // Branches, not an `if` clause: a region on one thread still allocates a libgomp team.
  if (worth_parallel(count)) {
#pragma omp parallel for reduction(+ : total, weight_sum)
    for (int64_t k = 0; k < count; ++k) {
      double w;
      total += term(k, w);
      weight_sum += w;
    }
  } else {
    for (int64_t k = 0; k < count; ++k) {
      double w;
      total += term(k, w);
      weight_sum += w;
    }
  }
  if (s.reduction == Reduction::Sum) {
    out[0] = static_cast<T>(total);
  } else {
    // All targets ignored (or zero weights): 0/0, NaN as in PyTorch.
    out[0] = weight_sum == 0.0 ? std::numeric_limits<T>::quiet_NaN() : static_cast<T>(total / weight_sum);
  }
}

void run_nll(KernelContext& ctx, const LossSpec& s, const Tensor& logp) {
  const Tensor& target = ctx.input(1);
  Tensor& out = ctx.output(0, logp.dtype(), s.loss_shape);
  const Tensor* weight = s.has_weight && ctx.has_input(2) ? &ctx.input(2) : nullptr;
  dispatch_float(logp.dtype(), ctx.node(), [&](auto tag) {
    using T = decltype(tag);
    dispatch_types<int32_t, int64_t>(target.dtype(), ctx.node(), [&](auto itag) {
      using I = decltype(itag);
      nll<T, I>(ctx.node(), s, logp.data<T>(), target.data<I>(), weight ? weight->data<T>() : nullptr, out.data<T>());
    });
  });
}

class SoftmaxCrossEntropyKernel final : public Kernel {
 public:
  SoftmaxCrossEntropyKernel(const LossSpec& spec, DType dtype, Shape shape)
      : spec_(spec), dtype_(dtype), shape_(std::move(shape)) {}

  void run(KernelContext& ctx) override {
    const Tensor& x = ctx.input(0);
    Tensor* logp = nullptr;
    if (ctx.wants_output(1)) {
      logp = &ctx.output(1, dtype_, shape_);
    } else {
      if (!scratch_.defined()) scratch_ = Tensor(dtype_, shape_);
      logp = &scratch_;
    }
    dispatch_float(dtype_, ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      log_softmax_rows<T>(x.data<T>(), logp->data<T>(), spec_.n, spec_.c, spec_.d);
    });
    run_nll(ctx, spec_, *logp);
  }

 private:
  LossSpec spec_;
  DType dtype_;
  Shape shape_;
  Tensor scratch_;  // log-probabilities when the log_prob output is not used
};

std::unique_ptr<Kernel> make_nll(const Node& node, const std::vector<InputInfo>& in) {
  const LossSpec spec = loss_spec(node, in);
  return make_function_kernel([spec](KernelContext& ctx) { run_nll(ctx, spec, ctx.input(0)); });
}

std::unique_ptr<Kernel> make_sce(const Node& node, const std::vector<InputInfo>& in) {
  const LossSpec spec = loss_spec(node, in);
  return std::make_unique<SoftmaxCrossEntropyKernel>(spec, in[0].dtype, in[0].shape);
}


// --- Gradients ---------------------------------------------------------------------------
//
// ai.onnxtrain.SoftmaxCrossEntropyLossGrad(dLoss, log_prob, labels, [weight]) and
// ai.onnxtrain.NegativeLogLikelihoodLossGrad(dLoss, input, target, [weight]), attributes
// reduction and ignore_index as in the forward. With w = weight[t] (1 without weights, 0
// for ignored targets) and s = dLoss[n, d] ("none"), dLoss ("sum") or dLoss / sum(w)
// ("mean"; 0 when every weight is 0, where the forward gives NaN):
//   SCE: dX[n, c, d] = (exp(log_prob[n, c, d]) - [c == t]) * w * s
//   NLL: dX[n, c, d] = -[c == t] * w * s
// One pass over the [N, C, D] gradient, parallel over (sample, chunk of D).

template <typename T, typename I>
void loss_grad(const Node& node, const LossSpec& s, const T* dloss, const T* logp, const I* target, const T* weight,
               T* dx) {
  check_targets(node, s, target);
  const int64_t count = s.n * s.d, c = s.c, d = s.d;
  const bool has_ignore = s.ignore_index.has_value();
  const int64_t ignore = s.ignore_index.value_or(0);
  auto w_of = [&](int64_t k) -> double {
    const int64_t t = static_cast<int64_t>(target[k]);
    if (has_ignore && t == ignore) return 0.0;
    return weight ? static_cast<double>(weight[t]) : 1.0;
  };
  double scale = 0.0;
  if (s.reduction == Reduction::Sum) {
    scale = static_cast<double>(dloss[0]);
  } else if (s.reduction == Reduction::Mean) {
    double weight_sum = 0.0;
    if (worth_parallel(count)) {
#pragma omp parallel for reduction(+ : weight_sum)
      for (int64_t k = 0; k < count; ++k) weight_sum += w_of(k);
    } else {
      for (int64_t k = 0; k < count; ++k) weight_sum += w_of(k);
    }
    scale = weight_sum == 0.0 ? 0.0 : static_cast<double>(dloss[0]) / weight_sum;
  }
  const bool none = s.reduction == Reduction::None;
  constexpr int64_t kChunk = 1024;
  const int64_t chunks = (d + kChunk - 1) / kChunk;
  const int64_t tasks = s.n * chunks;
  auto run_tasks = [&](int64_t task_begin, int64_t task_end) {
    T coef[kChunk];  // on the stack: a training step allocates nothing here
    for (int64_t task = task_begin; task < task_end; ++task) {
      const int64_t n = task / chunks, j0 = (task % chunks) * kChunk, len = std::min(kChunk, d - j0);
      const int64_t k0 = n * d + j0;
      for (int64_t j = 0; j < len; ++j)
        coef[j] = static_cast<T>(w_of(k0 + j) * (none ? static_cast<double>(dloss[k0 + j]) : scale));
      T* out = dx + n * c * d + j0;
      if (logp) {
        const T* lp = logp + n * c * d + j0;
        for (int64_t k = 0; k < c; ++k)
          for (int64_t j = 0; j < len; ++j) out[k * d + j] = std::exp(lp[k * d + j]) * coef[j];
      } else {
        for (int64_t k = 0; k < c; ++k) std::fill(out + k * d, out + k * d + len, T{0});
      }
      for (int64_t j = 0; j < len; ++j) {
        const int64_t t = static_cast<int64_t>(target[k0 + j]);
        if (has_ignore && t == ignore) continue;  // coef is 0 there; t may be outside [0, C)
        out[t * d + j] -= coef[j];
      }
    }
  };
  if (tasks <= 1 || !worth_parallel(count * c)) return run_tasks(0, tasks);
#pragma omp parallel
  {
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    run_tasks(tasks * t / threads, tasks * (t + 1) / threads);
  }
}

// in: dLoss, log_prob (SCE) or input (NLL), target, [weight].
KernelFactory loss_grad_factory(bool softmax) {
  return [softmax](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    if (in.size() < 3 || !in[0].present) fail(node, "needs the inputs dLoss, " + std::string(softmax ? "log_prob" : "input") + " and target");
    const LossSpec spec = loss_spec(node, std::vector<InputInfo>(in.begin() + 1, in.end()));
    if (in[0].dtype != in[1].dtype) fail(node, "dLoss must have the element type of the input");
    if (shape_numel(in[0].shape) != shape_numel(spec.loss_shape))
      fail_shape(node, "dLoss has shape " + shape_str(in[0].shape) + ", the loss " + shape_str(spec.loss_shape));
    const Shape shape = in[1].shape;
    return make_function_kernel([spec, shape, softmax](KernelContext& ctx) {
      const Tensor& dloss = ctx.input(0);
      const Tensor& x = ctx.input(1);
      const Tensor& target = ctx.input(2);
      const Tensor* weight = spec.has_weight && ctx.has_input(3) ? &ctx.input(3) : nullptr;
      Tensor& dx = ctx.output(0, x.dtype(), shape);
      dispatch_float(x.dtype(), ctx.node(), [&](auto tag) {
        using T = decltype(tag);
        dispatch_types<int32_t, int64_t>(target.dtype(), ctx.node(), [&](auto itag) {
          using I = decltype(itag);
          loss_grad<T, I>(ctx.node(), spec, dloss.data<T>(), softmax ? x.data<T>() : nullptr, target.data<I>(),
                          weight ? weight->data<T>() : nullptr, dx.data<T>());
        });
      });
    });
  };
}

Attributes loss_grad_attributes(const Node& n) {
  Attributes a{{"reduction", n.attr_string("reduction", "mean")}};
  if (n.has_attr("ignore_index")) a["ignore_index"] = n.attr_int("ignore_index");
  return a;
}

void sce_gradient(GradientBuilder& b) {
  const Node& n = b.node();
  // The forward kernel writes log_prob into this output (created when the model omitted it).
  Value* logp = b.saved_output(1, b.I(0)->dtype);
  Value* weight = n.has_input(2) ? n.inputs[2] : nullptr;
  Value* grad = nullptr;
  if (b.has_GO(0)) {
    std::vector<Value*> ins{b.GO(0), logp, b.I(1)};
    if (weight) ins.push_back(weight);
    grad = b.train_op("SoftmaxCrossEntropyLossGrad", ins, loss_grad_attributes(n));
  }
  if (b.has_GO(1)) {  // log_prob used downstream: LogSoftmax's gradient over C
    Value* g = b.train_op("LogSoftmaxGrad", {b.GO(1), logp}, {{"axis", int64_t{1}}, {"coerce_2d", int64_t{0}}});
    grad = grad ? b.add(grad, g) : g;
  }
  if (!grad) grad = b.zeros_like(b.I(0));
  b.GI(0, grad);
}

void nll_gradient(GradientBuilder& b) {
  const Node& n = b.node();
  std::vector<Value*> ins{b.GO(0), b.I(0), b.I(1)};
  if (n.has_input(2)) ins.push_back(n.inputs[2]);
  b.GI(0, b.train_op("NegativeLogLikelihoodLossGrad", ins, loss_grad_attributes(n)));
}

}  // namespace

void register_loss_ops(Registry& r) {
  // Targets and weights get no gradient.
  r.add({"", "NegativeLogLikelihoodLoss", 12, INT_MAX, make_nll, "own", nll_gradient, {1, 2}});
  r.add({"", "SoftmaxCrossEntropyLoss", 12, INT_MAX, make_sce, "own (log-softmax sums in double)", sce_gradient, {1, 2}});
  const char* d = graph::kTrainingDomain;
  r.add({d, "SoftmaxCrossEntropyLossGrad", 1, INT_MAX, loss_grad_factory(true), "own"});
  r.add({d, "NegativeLogLikelihoodLossGrad", 1, INT_MAX, loss_grad_factory(false), "own"});
}

}  // namespace onnxtrain::ops
