// Reductions (ReduceSum, ReduceMean, ... ReduceLogSumExp), ArgMax/ArgMin, TopK and CumSum,
// and their gradients (ai.onnxtrain.ReduceGrad, TopKGrad). Split by operator group:
// reduction.cpp (Reduce*), reduce_grad.cpp (their backward kernel and gradient rule),
// arg_topk_cumsum.cpp (ArgMax/ArgMin, TopK, CumSum with their gradients);
// reduction_common.h holds what they share.
//
// Every reduction is first brought into a canonical form: size-1 dims are dropped and
// neighbouring dims that are both kept or both reduced are merged. What remains is
// [kept/reduced groups..., last reduced group R, trailing kept group `inner`], which the
// own loops walk with contiguous runs of R*inner elements. float32 goes to oneDNN's
// reduction primitive on the merged shape (except log-sum-exp, which oneDNN lacks).
#include <algorithm>
#include <cmath>
#include <limits>
#include <omp.h>
#include <optional>
#include <string_view>
#include <utility>

#include "ops/dnnl_utils.h"
#include "ops/reduction_common.h"

namespace onnxtrain::ops {

namespace reduction_impl {

// Converts a double result to an integer element type without undefined behaviour on
// NaN or out-of-range values (saturates; NaN becomes 0).
template <typename T>
T from_double(double v) {
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(v);
  } else {
    if (std::isnan(v)) return T{0};
    if (v <= static_cast<double>(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
    if (v >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return static_cast<T>(v);
  }
}

// --- Reduce* -------------------------------------------------------------------------

enum class ReduceOp { Sum, Mean, Max, Min, Prod, L1, L2, SumSquare, LogSum, LogSumExp };

// Running state of log(sum(exp(x))): the maximum seen and the sum of exp(x - max), so
// the result stays finite for large inputs.
struct LseAcc {
  double m = -std::numeric_limits<double>::infinity();
  double s = 0.0;
};

inline void lse_merge(LseAcc& a, double bm, double bs) {
  if (bs == 0.0) return;
  if (a.s == 0.0) { a.m = bm; a.s = bs; return; }
  if (std::isnan(bm) || std::isnan(a.m)) { a.m = std::numeric_limits<double>::quiet_NaN(); return; }
  if (bm > a.m) {
    a.s = a.s * std::exp(a.m - bm) + bs;
    a.m = bm;
  } else if (bm == a.m) {  // also equal infinities, where bm - a.m would be NaN
    a.s += bs;
  } else {
    a.s += bs * std::exp(bm - a.m);
  }
}

// Float sums accumulate in double. Integer sums and products accumulate in uint64_t so
// overflow wraps like the element type would (instead of being undefined); conversion
// back to a narrower signed type is modular in C++20.
template <ReduceOp Op, typename T>
struct Reducer {
  static constexpr bool kFloat = std::is_floating_point_v<T>;
  static constexpr bool kWrapping =
      !kFloat && (Op == ReduceOp::Sum || Op == ReduceOp::Mean || Op == ReduceOp::Prod || Op == ReduceOp::L1 ||
                  Op == ReduceOp::SumSquare);
  using Acc = std::conditional_t<
      Op == ReduceOp::Max || Op == ReduceOp::Min, T,
      std::conditional_t<Op == ReduceOp::LogSumExp, LseAcc, std::conditional_t<kWrapping, uint64_t, double>>>;

  static Acc init() {
    if constexpr (Op == ReduceOp::Max)
      return kFloat ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::lowest();
    else if constexpr (Op == ReduceOp::Min)
      return kFloat ? std::numeric_limits<T>::infinity() : std::numeric_limits<T>::max();
    else if constexpr (Op == ReduceOp::Prod)
      return Acc{1};
    else
      return Acc{};
  }

  static void add(Acc& a, T x) {
    if constexpr (Op == ReduceOp::Max) {
      if (x > a || x != x) a = (a != a) ? a : x;  // NaN propagates
    } else if constexpr (Op == ReduceOp::Min) {
      if (x < a || x != x) a = (a != a) ? a : x;
    } else if constexpr (Op == ReduceOp::LogSumExp) {
      lse_merge(a, static_cast<double>(x), 1.0);
    } else if constexpr (Op == ReduceOp::Prod) {
      a *= static_cast<Acc>(x);
    } else if constexpr (Op == ReduceOp::L1) {
      if constexpr (kFloat)
        a += std::abs(static_cast<Acc>(x));
      else if constexpr (std::is_signed_v<T>)
        a += x < 0 ? uint64_t{0} - static_cast<uint64_t>(x) : static_cast<uint64_t>(x);  // |INT_MIN| wraps
      else
        a += static_cast<Acc>(x);
    } else if constexpr (Op == ReduceOp::L2 || Op == ReduceOp::SumSquare) {
      a += static_cast<Acc>(x) * static_cast<Acc>(x);
    } else {  // Sum, Mean, LogSum
      a += static_cast<Acc>(x);
    }
  }

  static void merge(Acc& a, const Acc& b) {
    if constexpr (Op == ReduceOp::Max || Op == ReduceOp::Min)
      add(a, b);
    else if constexpr (Op == ReduceOp::LogSumExp)
      lse_merge(a, b.m, b.s);
    else if constexpr (Op == ReduceOp::Prod)
      a *= b;
    else
      a += b;
  }

  static T finish(const Acc& a, int64_t n) {
    if constexpr (Op == ReduceOp::Max || Op == ReduceOp::Min) {
      return a;
    } else if constexpr (Op == ReduceOp::Mean) {
      if (n == 0) return kFloat ? std::numeric_limits<T>::quiet_NaN() : T{0};  // the mean of nothing
      if constexpr (kFloat) return static_cast<T>(a / static_cast<double>(n));
      else if constexpr (std::is_signed_v<T>) return static_cast<T>(static_cast<int64_t>(a) / n);
      else return static_cast<T>(a / static_cast<uint64_t>(n));
    } else if constexpr (Op == ReduceOp::L2) {
      return from_double<T>(std::sqrt(a));
    } else if constexpr (Op == ReduceOp::LogSum) {
      return from_double<T>(std::log(a));
    } else if constexpr (Op == ReduceOp::LogSumExp) {
      return from_double<T>(a.s == 0.0 ? -std::numeric_limits<double>::infinity() : a.m + std::log(a.s));
    } else {
      return static_cast<T>(a);
    }
  }
};

ReducePlan make_plan(const Node& node, const Shape& shape, std::vector<int64_t> axes, bool keepdims,
                     bool noop_with_empty_axes) {
  ReducePlan p;
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (axes.empty() && noop_with_empty_axes) {
    p.identity = true;
    p.out_shape = shape;
    return p;
  }
  std::vector<bool> reduced(shape.size(), axes.empty());
  for (int64_t a : normalize_axes(axes, rank, node)) {
    if (reduced[a]) fail(node, "axis " + std::to_string(a) + " is listed twice in axes");
    reduced[a] = true;
  }
  p.reduce_numel = 1;
  for (int64_t d = 0; d < rank; ++d) {
    if (reduced[d]) {
      p.reduce_numel *= shape[d];
      if (keepdims) p.out_shape.push_back(1);
    } else {
      p.out_shape.push_back(shape[d]);
    }
  }
  p.out_numel = shape_numel(p.out_shape);
  if (p.out_numel == 0 || p.reduce_numel == 0) return p;  // nothing to read

  // Merge: drop size-1 dims, join neighbours with the same role.
  std::vector<std::pair<int64_t, bool>> groups;
  for (int64_t d = 0; d < rank; ++d) {
    if (shape[d] == 1) continue;
    if (!groups.empty() && groups.back().second == reduced[d])
      groups.back().first *= shape[d];
    else
      groups.emplace_back(shape[d], reduced[d]);
  }
  for (auto& [size, red] : groups) {
    p.merged_dims.push_back(size);
    p.merged_out_dims.push_back(red ? 1 : size);
  }
  if (!groups.empty() && !groups.back().second) {
    p.inner = groups.back().first;
    groups.pop_back();
  }
  if (!groups.empty()) {  // now ends with a reduced group (groups alternate)
    p.last_reduced = groups.back().first;
    groups.pop_back();
  }
  // Strides of the remaining groups, innermost first.
  int64_t stride = p.inner * p.last_reduced;
  std::vector<std::pair<int64_t, int64_t>> middle;  // (size, stride) of other reduced groups
  for (size_t g = groups.size(); g-- > 0;) {
    if (groups[g].second) {
      middle.emplace_back(groups[g].first, stride);
    } else {
      p.outer_sizes.insert(p.outer_sizes.begin(), groups[g].first);
      p.outer_strides.insert(p.outer_strides.begin(), stride);
    }
    stride *= groups[g].first;
  }
  for (auto& [size, st] : middle) {
    Shape next;
    next.reserve(p.middle_offsets.size() * size);
    for (int64_t i = 0; i < size; ++i)
      for (int64_t off : p.middle_offsets) next.push_back(off + i * st);
    p.middle_offsets = std::move(next);
  }
  return p;
}

// Accumulates reduction positions [p0, p1) of one output row (inner outputs) into acc.
template <typename R, typename T>
void accumulate(const ReducePlan& p, const T* x, int64_t base, int64_t p0, int64_t p1, typename R::Acc* acc) {
  const int64_t run = p.last_reduced, inner = p.inner;
  int64_t m = p0 / run, r = p0 % run;
  while (p0 < p1) {
    const int64_t len = std::min(run - r, p1 - p0);
    const T* ptr = x + base + p.middle_offsets[m] + r * inner;
    if (inner == 1) {
      typename R::Acc a = acc[0];
      for (int64_t k = 0; k < len; ++k) R::add(a, ptr[k]);
      acc[0] = a;
    } else {
      for (int64_t k = 0; k < len; ++k, ptr += inner)
        for (int64_t i = 0; i < inner; ++i) R::add(acc[i], ptr[i]);
    }
    p0 += len;
    r = 0;
    ++m;
  }
}

template <ReduceOp Op, typename T>
void reduce_loop(const ReducePlan& p, const T* x, T* y) {
  using R = Reducer<Op, T>;
  using Acc = typename R::Acc;
  if (p.out_numel == 0) return;
  if (p.reduce_numel == 0) {
    std::fill(y, y + p.out_numel, R::finish(R::init(), 0));
    return;
  }
  const int64_t outer = p.outer_count(), inner = p.inner, positions = p.reduce_numel;
  const int max_threads = omp_get_max_threads();
  if (outer >= max_threads || outer * positions * inner < kGrain) {
    parallel_with_buffer<Acc>(outer, positions * inner, inner, [&](int64_t o, Acc* acc) {
      std::fill(acc, acc + inner, R::init());
      accumulate<R>(p, x, p.base_offset(o), 0, positions, acc);
      for (int64_t i = 0; i < inner; ++i) y[o * inner + i] = R::finish(acc[i], positions);
    });
    return;
  }
  // Few outputs over a large reduction: split the reduction among the threads.
  const int64_t chunks = std::min<int64_t>(max_threads, positions);
  std::vector<Acc> partial(static_cast<size_t>(chunks * inner));
  for (int64_t o = 0; o < outer; ++o) {
    const int64_t base = p.base_offset(o);
    std::fill(partial.begin(), partial.end(), R::init());
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; ++c)
      accumulate<R>(p, x, base, positions * c / chunks, positions * (c + 1) / chunks, partial.data() + c * inner);
    for (int64_t i = 0; i < inner; ++i) {
      Acc a = partial[i];
      for (int64_t c = 1; c < chunks; ++c) R::merge(a, partial[c * inner + i]);
      y[o * inner + i] = R::finish(a, positions);
    }
  }
}

template <ReduceOp Op>
void reduce_any(const ReducePlan& p, const Tensor& x, Tensor& y, const Node& node) {
  auto run = [&](auto tag) {
    using T = decltype(tag);
    reduce_loop<Op, T>(p, x.data<T>(), y.data<T>());
  };
  dispatch_numeric(x.dtype(), node, run);
}

void reduce_dispatch(ReduceOp op, const ReducePlan& p, const Tensor& x, Tensor& y, const Node& node) {
  switch (op) {
    case ReduceOp::Sum: return reduce_any<ReduceOp::Sum>(p, x, y, node);
    case ReduceOp::Mean: return reduce_any<ReduceOp::Mean>(p, x, y, node);
    case ReduceOp::Max: return reduce_any<ReduceOp::Max>(p, x, y, node);
    case ReduceOp::Min: return reduce_any<ReduceOp::Min>(p, x, y, node);
    case ReduceOp::Prod: return reduce_any<ReduceOp::Prod>(p, x, y, node);
    case ReduceOp::L1: return reduce_any<ReduceOp::L1>(p, x, y, node);
    case ReduceOp::L2: return reduce_any<ReduceOp::L2>(p, x, y, node);
    case ReduceOp::SumSquare: return reduce_any<ReduceOp::SumSquare>(p, x, y, node);
    case ReduceOp::LogSum: return reduce_any<ReduceOp::LogSum>(p, x, y, node);
    case ReduceOp::LogSumExp: return reduce_any<ReduceOp::LogSumExp>(p, x, y, node);
  }
}

// oneDNN's reduction for float32 on the merged shape; empty when oneDNN cannot express
// it (log-sum-exp, nothing left to reduce, empty tensors, too many dims).
std::optional<dnnl::reduction::primitive_desc> dnnl_reduction(ReduceOp op, const ReducePlan& p) {
  if (p.identity || p.out_numel == 0 || p.reduce_numel == 0 || op == ReduceOp::LogSumExp) return std::nullopt;
  if (p.merged_dims.empty() || p.merged_dims == p.merged_out_dims || p.merged_dims.size() > DNNL_MAX_NDIMS)
    return std::nullopt;
  using A = dnnl::algorithm;
  A alg = A::reduction_sum;
  float power = 0.f;
  switch (op) {
    case ReduceOp::Sum: case ReduceOp::LogSum: alg = A::reduction_sum; break;
    case ReduceOp::Mean: alg = A::reduction_mean; break;
    case ReduceOp::Max: alg = A::reduction_max; break;
    case ReduceOp::Min: alg = A::reduction_min; break;
    case ReduceOp::Prod: alg = A::reduction_mul; break;
    case ReduceOp::L1: alg = A::reduction_norm_lp_sum; power = 1.f; break;
    case ReduceOp::L2: alg = A::reduction_norm_lp_sum; power = 2.f; break;
    case ReduceOp::SumSquare: alg = A::reduction_norm_lp_power_p_sum; power = 2.f; break;
    case ReduceOp::LogSumExp: return std::nullopt;
  }
  dnnl::primitive_attr attr = arena_scratchpad();
  if (op == ReduceOp::LogSum) {
    dnnl::post_ops post;
    post.append_eltwise(1.f, A::eltwise_log, 0.f, 0.f);
    attr.set_post_ops(post);
  }
  try {
    dnnl::reduction::desc desc(alg, plain_desc(p.merged_dims, DType::Float), plain_desc(p.merged_out_dims, DType::Float),
                               power, 0.f);
    dnnl::reduction::primitive_desc pd(desc, attr, cpu_engine(), /*allow_empty=*/true);
    if (!pd) return std::nullopt;
    return pd;
  } catch (const dnnl::error&) {
    return std::nullopt;
  }
}

class ReduceKernel final : public Kernel {
 public:
  ReduceKernel(ReduceOp op, DType dtype, Shape shape, bool keepdims, bool noop_with_empty_axes)
      : op_(op), dtype_(dtype), shape_(std::move(shape)), keepdims_(keepdims), noop_(noop_with_empty_axes) {}

  // Plans for fixed axes; with dynamic axes, run() plans on first use and on change.
  void prepare(const Node& node, const std::vector<int64_t>& axes) {
    axes_ = axes;
    plan_ = make_plan(node, shape_, axes, keepdims_, noop_);
    pd_.reset();
    primitive_.reset();
    if (dtype_ == DType::Float) {
      pd_ = dnnl_reduction(op_, *plan_);
      if (pd_) {
        primitive_ = dnnl::reduction(*pd_);
        src_md_ = plain_desc(plan_->merged_dims, DType::Float);
        dst_md_ = plain_desc(plan_->merged_out_dims, DType::Float);
      }
    }
  }

  void set_dynamic_axes() { dynamic_ = true; }

  void run(KernelContext& ctx) override {
    const Tensor& x = ctx.input(0);
    if (dynamic_) {
      std::vector<int64_t> axes;
      if (ctx.has_input(1)) axes = int_values(ctx.input(1));
      if (!plan_ || axes != axes_) prepare(ctx.node(), axes);
    }
    const ReducePlan& p = *plan_;
    if (p.identity) {
      ctx.set_output(0, x);
      return;
    }
    Tensor& y = ctx.output(0, x.dtype(), p.out_shape);
    if (primitive_) {
      execute(*primitive_, {{DNNL_ARG_SRC, bind(src_md_, x)}, {DNNL_ARG_DST, bind(dst_md_, y)}});
      return;
    }
    reduce_dispatch(op_, p, x, y, ctx.node());
  }

 private:
  ReduceOp op_;
  DType dtype_;
  Shape shape_;
  bool keepdims_, noop_;
  bool dynamic_ = false;
  std::vector<int64_t> axes_;
  std::optional<ReducePlan> plan_;
  std::optional<dnnl::reduction::primitive_desc> pd_;  // kept: the backward pass uses it as a hint
  std::optional<dnnl::reduction> primitive_;
  dnnl::memory::desc src_md_, dst_md_;
};

// ReduceSum takes axes as an input from opset 13, the others from opset 18.
KernelFactory reduce_factory(ReduceOp op, int axes_input_since) {
  return [op, axes_input_since](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    if (in.empty() || !in[0].present) fail(node, "needs the input 'data'");
    dispatch_numeric(in[0].dtype, node, [](auto) {});  // unsupported types fail at plan time
    const bool keepdims = node.attr_int("keepdims", 1) != 0;
    const bool axes_input = node.opset >= axes_input_since;
    const bool noop = axes_input && node.attr_int("noop_with_empty_axes", 0) != 0;
    auto kernel = std::make_unique<ReduceKernel>(op, in[0].dtype, in[0].shape, keepdims, noop);
    if (!axes_input) {
      kernel->prepare(node, node.attr_ints("axes"));
    } else if (in.size() < 2 || !in[1].present) {
      kernel->prepare(node, {});
    } else if (in[1].constant) {
      kernel->prepare(node, int_values(*in[1].constant));
    } else {
      kernel->set_dynamic_axes();
    }
    return kernel;
  };
}

}  // namespace reduction_impl

void register_reduction_ops(Registry& r) {
  using namespace reduction_impl;
  struct Entry {
    const char* name;
    ReduceOp op;
    int axes_input_since;
    bool dnnl;
    const char* grad_mode;
  };
  const Entry entries[] = {
      {"ReduceSum", ReduceOp::Sum, 13, true, "sum"},
      {"ReduceMean", ReduceOp::Mean, 18, true, "mean"},
      {"ReduceMax", ReduceOp::Max, 18, true, "max"},
      {"ReduceMin", ReduceOp::Min, 18, true, "min"},
      {"ReduceProd", ReduceOp::Prod, 18, true, "prod"},
      {"ReduceL1", ReduceOp::L1, 18, true, "l1"},
      {"ReduceL2", ReduceOp::L2, 18, true, "l2"},
      {"ReduceSumSquare", ReduceOp::SumSquare, 18, true, "sum_square"},
      {"ReduceLogSum", ReduceOp::LogSum, 18, true, "log_sum"},
      {"ReduceLogSumExp", ReduceOp::LogSumExp, 18, false, "log_sum_exp"},
  };
  for (const Entry& e : entries)
    r.add({"", e.name, 1, INT_MAX, reduce_factory(e.op, e.axes_input_since), e.dnnl ? "oneDNN reduction" : "own",
           reduce_gradient(e.grad_mode, e.axes_input_since), /*non_differentiable_inputs*/ {1}});
  register_arg_topk_cumsum_ops(r);

  const char* d = graph::kTrainingDomain;
  r.add({d, "ReduceGrad", 1, INT_MAX, make_reduce_grad, "own"});
}

}  // namespace onnxtrain::ops
