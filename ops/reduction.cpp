// Reductions (ReduceSum, ReduceMean, ... ReduceLogSumExp), ArgMax/ArgMin, TopK and CumSum,
// and their gradients (ai.onnxtrain.ReduceGrad, TopKGrad; see "Gradients" below).
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
#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

namespace {

constexpr int64_t kGrain = 32768;  // elements of work below which threads cost more than they save

// Runs f(i, buffer) for i in [0, n) in parallel, with one scratch buffer per thread.
template <typename Buf, typename F>
void parallel_with_buffer(int64_t n, int64_t work_per_item, size_t buffer_size, F&& f) {
  const bool parallel = n > 1 && n * std::max<int64_t>(work_per_item, 1) >= kGrain;
#pragma omp parallel if (parallel)
  {
    std::vector<Buf> buffer(std::max<size_t>(buffer_size, 1));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) f(i, buffer.data());
  }
}

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

// The canonical form of one reduction over one input shape.
struct ReducePlan {
  Shape out_shape;
  bool identity = false;       // noop_with_empty_axes with no axes: output = input
  int64_t out_numel = 0;
  int64_t reduce_numel = 0;    // elements per output (may be 0: reduction of an empty set)
  int64_t inner = 1;           // trailing kept group, contiguous in input and output
  int64_t last_reduced = 1;    // the reduced group just before `inner` (stride `inner`)
  Shape outer_sizes, outer_strides;  // kept groups before it, for the base offset of an output
  Shape middle_offsets{0};     // offsets of every position of the other reduced groups
  Shape merged_dims;           // for oneDNN: merged input dims
  Shape merged_out_dims;       // same with reduced dims set to 1

  int64_t outer_count() const { return inner == 0 ? 0 : out_numel / inner; }
  int64_t base_offset(int64_t o) const {
    int64_t base = 0;
    for (size_t g = outer_sizes.size(); g-- > 0;) {
      base += (o % outer_sizes[g]) * outer_strides[g];
      o /= outer_sizes[g];
    }
    return base;
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
  dnnl::primitive_attr attr;
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

// --- ArgMax / ArgMin, TopK, CumSum ----------------------------------------------------

// [outer, axis, inner] view of a shape around one axis.
struct AxisSplit {
  int64_t outer = 1, size = 1, inner = 1;
};
AxisSplit split_at(const Shape& shape, int64_t axis) {
  AxisSplit s;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    if (d < axis) s.outer *= shape[d];
    else if (d == axis) s.size = shape[d];
    else s.inner *= shape[d];
  }
  return s;
}

// True when `a` ranks before `b` for TopK(largest) and ArgMax: NaN counts as the largest
// value, which keeps the order strict-weak (std::sort needs that) and matches numpy.
template <typename T>
bool greater_nan_first(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return !std::isnan(b);
    if (std::isnan(b)) return false;
  }
  return a > b;
}

template <typename T>
bool less_nan_first(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return !std::isnan(b);
    if (std::isnan(b)) return false;
  }
  return a < b;
}

std::unique_ptr<Kernel> make_arg_reduce(const Node& node, const std::vector<InputInfo>& in, bool is_max) {
  dispatch_numeric(in[0].dtype, node, [](auto) {});
  const Shape& shape = in[0].shape;
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (rank == 0) fail_shape(node, "needs an input of rank >= 1");
  const int64_t axis = normalize_axis(node.attr_int("axis", 0), rank, node);
  const bool keepdims = node.attr_int("keepdims", 1) != 0;
  const bool last = node.opset >= 12 && node.attr_int("select_last_index", 0) != 0;
  const AxisSplit s = split_at(shape, axis);
  if (s.size == 0 && s.outer * s.inner > 0) fail_shape(node, "cannot take the index of an extremum over an empty axis");
  Shape out_shape = shape;
  if (keepdims) out_shape[axis] = 1;
  else out_shape.erase(out_shape.begin() + axis);
  return make_function_kernel([s, out_shape, is_max, last](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, DType::Int64, out_shape);
    int64_t* out = y.data<int64_t>();
    dispatch_numeric(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const T* src = x.data<T>();
      // NaN wins for both ArgMax and ArgMin, as in numpy; ties go to the first index
      // unless select_last_index asks for the last.
      auto wins = [is_max](T a, T b) { return is_max ? greater_nan_first(a, b) : less_nan_first(a, b); };
      auto better = [&wins, last](T v, T best) { return wins(v, best) || (last && !wins(best, v)); };
      parallel_for(s.outer, [&](int64_t o) {
        const T* base = src + o * s.size * s.inner;
        int64_t* dst = out + o * s.inner;
        std::fill(dst, dst + s.inner, 0);
        for (int64_t r = 1; r < s.size; ++r)
          for (int64_t i = 0; i < s.inner; ++i)
            if (better(base[r * s.inner + i], base[dst[i] * s.inner + i])) dst[i] = r;
      }, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, s.size * s.inner)));
    });
  });
}

std::unique_ptr<Kernel> make_topk(const Node& node, const std::vector<InputInfo>& in) {
  dispatch_numeric(in[0].dtype, node, [](auto) {});
  const Shape shape = in[0].shape;
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (rank == 0) fail_shape(node, "needs an input of rank >= 1");
  const int64_t axis = normalize_axis(node.attr_int("axis", -1), rank, node);
  // `sorted = 0` allows any order; the output is always sorted, which is one of them.
  const bool largest = node.opset < 11 || node.attr_int("largest", 1) != 0;
  std::optional<int64_t> fixed_k;
  if (node.opset < 10) {
    if (!node.has_attr("k")) fail(node, "needs the attribute 'k'");
    fixed_k = node.attr_int("k");
  } else if (in.size() < 2 || !in[1].present) {
    fail(node, "needs the input 'K'");
  }
  const AxisSplit s = split_at(shape, axis);
  return make_function_kernel([s, shape, axis, largest, fixed_k](KernelContext& ctx) {
    int64_t k = 0;
    if (fixed_k) {
      k = *fixed_k;
    } else {
      std::vector<int64_t> kv = int_values(ctx.input(1));
      if (kv.size() != 1) fail_shape(ctx.node(), "input 'K' must hold exactly one value");
      k = kv[0];
    }
    if (k < 0 || k > s.size)
      fail(ctx.node(), "k = " + std::to_string(k) + " is outside [0, " + std::to_string(s.size) + "], the size of axis " +
                           std::to_string(axis));
    Shape out_shape = shape;
    out_shape[axis] = k;
    const Tensor& x = ctx.input(0);
    Tensor& values = ctx.output(0, x.dtype(), out_shape);
    Tensor& indices = ctx.output(1, DType::Int64, out_shape);
    if (k == 0) return;
    dispatch_numeric(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      using Entry = std::pair<T, int64_t>;
      const T* src = x.data<T>();
      T* vout = values.data<T>();
      int64_t* iout = indices.data<int64_t>();
      // Ties keep the lower index first, for both directions.
      auto before = [largest](const Entry& a, const Entry& b) {
        if (largest ? greater_nan_first(a.first, b.first) : greater_nan_first(b.first, a.first)) return true;
        if (largest ? greater_nan_first(b.first, a.first) : greater_nan_first(a.first, b.first)) return false;
        return a.second < b.second;
      };
      parallel_with_buffer<Entry>(s.outer * s.inner, s.size * 8, static_cast<size_t>(s.size), [&](int64_t line, Entry* buf) {
        const int64_t o = line / s.inner, i = line % s.inner;
        const T* in_line = src + o * s.size * s.inner + i;
        for (int64_t r = 0; r < s.size; ++r) buf[r] = {in_line[r * s.inner], r};
        if (k == s.size) std::sort(buf, buf + s.size, before);
        else std::partial_sort(buf, buf + k, buf + s.size, before);
        const int64_t out_base = o * k * s.inner + i;
        for (int64_t r = 0; r < k; ++r) {
          vout[out_base + r * s.inner] = buf[r].first;
          iout[out_base + r * s.inner] = buf[r].second;
        }
      });
    });
  });
}

std::unique_ptr<Kernel> make_cumsum(const Node& node, const std::vector<InputInfo>& in) {
  dispatch_numeric(in[0].dtype, node, [](auto) {});
  if (in.size() < 2 || !in[1].present) fail(node, "needs the input 'axis'");
  const Shape shape = in[0].shape;
  const bool exclusive = node.attr_int("exclusive", 0) != 0;
  const bool reverse = node.attr_int("reverse", 0) != 0;
  return make_function_kernel([shape, exclusive, reverse](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    std::vector<int64_t> axis_values = int_values(ctx.input(1));
    if (axis_values.size() != 1) fail_shape(ctx.node(), "input 'axis' must hold exactly one value");
    const int64_t rank = static_cast<int64_t>(shape.size());
    if (rank == 0) fail_shape(ctx.node(), "needs an input of rank >= 1");
    const int64_t axis = normalize_axis(axis_values[0], rank, ctx.node());
    const AxisSplit s = split_at(shape, axis);
    Tensor& y = ctx.output(0, x.dtype(), shape);
    dispatch_numeric(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      // Floats accumulate in double, integers in uint64_t (wrapping, never undefined).
      using Acc = std::conditional_t<std::is_floating_point_v<T>, double, uint64_t>;
      const T* src = x.data<T>();
      T* dst = y.data<T>();
      parallel_with_buffer<Acc>(s.outer, s.size * s.inner, static_cast<size_t>(s.inner), [&](int64_t o, Acc* acc) {
        std::fill(acc, acc + s.inner, Acc{0});
        for (int64_t step = 0; step < s.size; ++step) {
          const int64_t r = reverse ? s.size - 1 - step : step;
          const int64_t off = (o * s.size + r) * s.inner;
          for (int64_t i = 0; i < s.inner; ++i) {
            const Acc v = static_cast<Acc>(src[off + i]);
            if (exclusive) {
              dst[off + i] = static_cast<T>(acc[i]);
              acc[i] += v;
            } else {
              acc[i] += v;
              dst[off + i] = static_cast<T>(acc[i]);
            }
          }
        }
      });
    });
  });
}


// --- Gradients ---------------------------------------------------------------------------
//
// ai.onnxtrain.ReduceGrad(dY, X, [Y], [axes]) -> dX, one pass over X for every Reduce*
// (mode attribute) instead of an Expand + elementwise chain: dX = expand(dY) * d y / d x.
// It walks X with the forward's ReducePlan, so keepdims and the axes forms cost nothing.
//   Sum 1, Mean 1/n, SumSquare 2x, L1 sign(x), L2 x/y (0 where y = 0), LogSum exp(-y),
//   LogSumExp exp(x - y), Max/Min [x == y] / #ties (ties split evenly; NaN extrema get 0),
//   Prod the product of the other elements (no zero: y/x exactly as prod/x; one zero: the
//   product of the nonzeros at the zero, 0 elsewhere; two or more zeros: 0).

enum class GradMode { Sum, Mean, SumSquare, L1, L2, LogSum, LogSumExp, Max, Min, Prod };

GradMode parse_grad_mode(const Node& node) {
  static const std::pair<const char*, GradMode> modes[] = {
      {"sum", GradMode::Sum}, {"mean", GradMode::Mean},  {"sum_square", GradMode::SumSquare},
      {"l1", GradMode::L1},   {"l2", GradMode::L2},      {"log_sum", GradMode::LogSum},
      {"log_sum_exp", GradMode::LogSumExp}, {"max", GradMode::Max}, {"min", GradMode::Min},
      {"prod", GradMode::Prod}};
  const std::string m = node.attr_string("mode", "");
  for (const auto& [name, mode] : modes)
    if (m == name) return mode;
  fail(node, "unknown mode '" + m + "'");
}

bool grad_mode_needs_y(GradMode m) {
  return m == GradMode::L2 || m == GradMode::LogSum || m == GradMode::LogSumExp || m == GradMode::Max ||
         m == GradMode::Min;
}

// Calls f(offset, len) for each contiguous-run segment of reduction positions [p0, p1) of
// output row `o`: elements offset + k * inner + i, k < len, i < inner, belong to outputs
// o * inner + i.
template <typename F>
void walk_positions(const ReducePlan& p, int64_t base, int64_t p0, int64_t p1, F&& f) {
  const int64_t run = p.last_reduced;
  int64_t m = p0 / run, r = p0 % run;
  while (p0 < p1) {
    const int64_t len = std::min(run - r, p1 - p0);
    f(base + p.middle_offsets[m] + r * p.inner, len);
    p0 += len;
    r = 0;
    ++m;
  }
}

// Per-output statistics for Max/Min (count of ties) and Prod (product of the nonzeros,
// count of zeros) in a parallel pass over X.
template <GradMode M, typename T>
void grad_aux(const ReducePlan& p, const T* x, const T* y, double* prod, int64_t* count) {
  const int64_t outer = p.outer_count(), inner = p.inner, positions = p.reduce_numel;
  auto row = [&](int64_t o, int64_t p0, int64_t p1, double* pr, int64_t* cn) {
    const T* yo = y ? y + o * inner : nullptr;
    walk_positions(p, p.base_offset(o), p0, p1, [&](int64_t off, int64_t len) {
      for (int64_t k = 0; k < len; ++k)
        for (int64_t i = 0; i < inner; ++i) {
          const T v = x[off + k * inner + i];
          if constexpr (M == GradMode::Prod) {
            if (v == T{0}) ++cn[i];
            else pr[i] *= static_cast<double>(v);
          } else {
            cn[i] += v == yo[i];
          }
        }
    });
  };
  const int max_threads = omp_get_max_threads();
  if (outer >= max_threads || outer * positions * inner < kGrain) {
    parallel_for(outer, [&](int64_t o) {
      std::fill(prod + o * inner, prod + (o + 1) * inner, 1.0);
      std::fill(count + o * inner, count + (o + 1) * inner, int64_t{0});
      row(o, 0, positions, prod + o * inner, count + o * inner);
    }, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, positions * inner)));
    return;
  }
  // Few outputs over a large reduction: split the positions among the threads.
  const int64_t chunks = std::min<int64_t>(max_threads, positions);
  std::vector<double> pp(static_cast<size_t>(chunks * inner));
  std::vector<int64_t> pc(static_cast<size_t>(chunks * inner));
  for (int64_t o = 0; o < outer; ++o) {
    std::fill(pp.begin(), pp.end(), 1.0);
    std::fill(pc.begin(), pc.end(), int64_t{0});
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; ++c)
      row(o, positions * c / chunks, positions * (c + 1) / chunks, pp.data() + c * inner, pc.data() + c * inner);
    for (int64_t i = 0; i < inner; ++i) {
      double a = 1.0;
      int64_t n = 0;
      for (int64_t c = 0; c < chunks; ++c) {
        a *= pp[c * inner + i];
        n += pc[c * inner + i];
      }
      prod[o * inner + i] = a;
      count[o * inner + i] = n;
    }
  }
}

template <GradMode M, typename T>
void reduce_grad_loop(const ReducePlan& p, const T* dy, const T* x, const T* y, T* dx) {
  const int64_t n_out = p.out_numel, outer = p.outer_count(), inner = p.inner, positions = p.reduce_numel;
  // coef[o]: the per-output factor of the local derivative, dY folded in.
  std::vector<T> coef_buffer;
  const T* coef = dy;
  std::vector<int64_t> zeros;
  if constexpr (M != GradMode::Sum && M != GradMode::L1 && M != GradMode::LogSumExp) {
    coef_buffer.resize(static_cast<size_t>(n_out));
    T* c = coef_buffer.data();
    coef = c;
    if constexpr (M == GradMode::Max || M == GradMode::Min || M == GradMode::Prod) {
      std::vector<double> prod(static_cast<size_t>(n_out));
      std::vector<int64_t> count(static_cast<size_t>(n_out));
      grad_aux<M, T>(p, x, y, prod.data(), count.data());
      for (int64_t o = 0; o < n_out; ++o) {
        if constexpr (M == GradMode::Prod) c[o] = count[o] >= 2 ? T{0} : static_cast<T>(dy[o] * prod[o]);
        else c[o] = count[o] == 0 ? T{0} : static_cast<T>(dy[o] / static_cast<double>(count[o]));
      }
      if constexpr (M == GradMode::Prod) zeros = std::move(count);
    } else {
      for (int64_t o = 0; o < n_out; ++o) {
        if constexpr (M == GradMode::Mean) c[o] = static_cast<T>(dy[o] / static_cast<double>(positions));
        else if constexpr (M == GradMode::SumSquare) c[o] = T{2} * dy[o];
        else if constexpr (M == GradMode::L2) c[o] = y[o] == T{0} ? T{0} : dy[o] / y[o];
        else if constexpr (M == GradMode::LogSum) c[o] = dy[o] * std::exp(-y[o]);
      }
    }
  }
  const int64_t* zc = zeros.data();
  auto derivative = [&](T v, int64_t o) -> T {
    if constexpr (M == GradMode::Sum || M == GradMode::Mean || M == GradMode::LogSum) return coef[o];
    else if constexpr (M == GradMode::SumSquare || M == GradMode::L2) return coef[o] * v;
    else if constexpr (M == GradMode::L1) return v > T{0} ? coef[o] : v < T{0} ? -coef[o] : T{0};
    else if constexpr (M == GradMode::LogSumExp) return coef[o] * std::exp(v - y[o]);
    else if constexpr (M == GradMode::Max || M == GradMode::Min) return v == y[o] ? coef[o] : T{0};
    else return zc[o] == 0 ? coef[o] / v : (v == T{0} ? coef[o] : T{0});  // Prod (coef = 0 for >= 2 zeros)
  };
  // Tasks: (output row, chunk of its positions), enough of them to keep every thread busy.
  const int max_threads = omp_get_max_threads();
  const int64_t total = outer * positions * inner;
  int64_t chunks = 1;
  if (total >= kGrain && outer < max_threads) chunks = std::min<int64_t>(positions, (max_threads + outer - 1) / outer);
  const int64_t tasks = outer * chunks;
#pragma omp parallel for schedule(static) if (total >= kGrain && tasks > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t o = t / chunks, c = t % chunks;
    const int64_t ob = o * inner;
    walk_positions(p, p.base_offset(o), positions * c / chunks, positions * (c + 1) / chunks,
                   [&](int64_t off, int64_t len) {
                     for (int64_t k = 0; k < len; ++k) {
                       const T* xs = x + off + k * inner;
                       T* ds = dx + off + k * inner;
                       for (int64_t i = 0; i < inner; ++i) ds[i] = derivative(xs[i], ob + i);
                     }
                   });
  }
}

template <GradMode M>
void reduce_grad_typed(const ReducePlan& p, const Tensor& dy, const Tensor& x, const Tensor* y, Tensor& dx,
                       const Node& node) {
  dispatch_float(x.dtype(), node, [&](auto tag) {
    using T = decltype(tag);
    reduce_grad_loop<M, T>(p, dy.data<T>(), x.data<T>(), y ? y->data<T>() : nullptr, dx.data<T>());
  });
}

class ReduceGradKernel final : public Kernel {
 public:
  ReduceGradKernel(GradMode mode, Shape shape, bool keepdims, bool noop)
      : mode_(mode), shape_(std::move(shape)), keepdims_(keepdims), noop_(noop) {}

  void prepare(const Node& node, const std::vector<int64_t>& axes) {
    axes_ = axes;
    plan_ = make_plan(node, shape_, axes, keepdims_, noop_);
  }
  void set_dynamic_axes() { dynamic_ = true; }

  void run(KernelContext& ctx) override {
    const Tensor& dy = ctx.input(0);
    const Tensor& x = ctx.input(1);
    if (dynamic_) {
      std::vector<int64_t> axes = int_values(ctx.input(3));
      if (!plan_ || axes != axes_) prepare(ctx.node(), axes);
    }
    const ReducePlan& p = *plan_;
    if (dy.numel() != shape_numel(p.out_shape))
      fail_shape(ctx.node(), "dY has shape " + shape_str(dy.shape()) + ", the reduction's output is " +
                                 shape_str(p.out_shape));
    if (dy.dtype() != x.dtype()) fail(ctx.node(), "dY and X must have the same element type");
    if (p.identity) {
      ctx.set_output(0, dy.reshaped(shape_));
      return;
    }
    Tensor& dx = ctx.output(0, x.dtype(), shape_);
    if (x.numel() == 0) return;
    const Tensor* y = nullptr;
    if (grad_mode_needs_y(mode_)) {
      if (!ctx.has_input(2)) fail(ctx.node(), "needs the forward output Y for this mode");
      y = &ctx.input(2);
      if (y->numel() != p.out_numel) fail_shape(ctx.node(), "Y has shape " + shape_str(y->shape()));
    }
    const Node& n = ctx.node();
    switch (mode_) {
      case GradMode::Sum: return reduce_grad_typed<GradMode::Sum>(p, dy, x, y, dx, n);
      case GradMode::Mean: return reduce_grad_typed<GradMode::Mean>(p, dy, x, y, dx, n);
      case GradMode::SumSquare: return reduce_grad_typed<GradMode::SumSquare>(p, dy, x, y, dx, n);
      case GradMode::L1: return reduce_grad_typed<GradMode::L1>(p, dy, x, y, dx, n);
      case GradMode::L2: return reduce_grad_typed<GradMode::L2>(p, dy, x, y, dx, n);
      case GradMode::LogSum: return reduce_grad_typed<GradMode::LogSum>(p, dy, x, y, dx, n);
      case GradMode::LogSumExp: return reduce_grad_typed<GradMode::LogSumExp>(p, dy, x, y, dx, n);
      case GradMode::Max: return reduce_grad_typed<GradMode::Max>(p, dy, x, y, dx, n);
      case GradMode::Min: return reduce_grad_typed<GradMode::Min>(p, dy, x, y, dx, n);
      case GradMode::Prod: return reduce_grad_typed<GradMode::Prod>(p, dy, x, y, dx, n);
    }
  }

 private:
  GradMode mode_;
  Shape shape_;
  bool keepdims_, noop_;
  bool dynamic_ = false;
  std::vector<int64_t> axes_;
  std::optional<ReducePlan> plan_;
};

// Inputs dY, X, optional Y, optional axes; attributes mode, keepdims, noop_with_empty_axes
// and axes (when the forward had them as an attribute).
std::unique_ptr<Kernel> make_reduce_grad(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() < 2 || !in[0].present || !in[1].present) fail(node, "needs the inputs dY and X");
  const GradMode mode = parse_grad_mode(node);
  dispatch_float(in[1].dtype, node, [](auto) {});
  const bool keepdims = node.attr_int("keepdims", 1) != 0;
  const bool noop = node.attr_int("noop_with_empty_axes", 0) != 0;
  auto kernel = std::make_unique<ReduceGradKernel>(mode, in[1].shape, keepdims, noop);
  if (in.size() > 3 && in[3].present) {
    if (in[3].constant) kernel->prepare(node, int_values(*in[3].constant));
    else kernel->set_dynamic_axes();
  } else {
    kernel->prepare(node, node.attr_ints("axes"));
  }
  return kernel;
}

GradientRule reduce_gradient(const char* mode, int axes_input_since) {
  return [mode, axes_input_since](GradientBuilder& b) {
    const Node& n = b.node();
    Attributes attrs{{"mode", std::string(mode)}, {"keepdims", n.attr_int("keepdims", 1)}};
    std::vector<Value*> ins{b.GO(0), b.I(0)};
    Value* y = nullptr;
    Value* axes = nullptr;
    if (n.opset >= axes_input_since) {
      attrs["noop_with_empty_axes"] = n.attr_int("noop_with_empty_axes", 0);
      if (n.has_input(1)) axes = n.inputs[1];
    } else {
      attrs["axes"] = n.attr_ints("axes");
    }
    if (std::string_view(mode) == "l2" || std::string_view(mode) == "log_sum" ||
        std::string_view(mode) == "log_sum_exp" || std::string_view(mode) == "max" || std::string_view(mode) == "min")
      y = b.O(0);
    if (y || axes) ins.push_back(y);
    if (axes) ins.push_back(axes);
    b.GI(0, b.train_op("ReduceGrad", ins, attrs));
  };
}

// CumSum: each x_j feeds the outputs at and after j (before j when reversed), so dX is the
// cumulative sum of dY in the opposite direction, with the same exclusivity.
void cumsum_gradient(GradientBuilder& b) {
  const Node& n = b.node();
  b.GI(0, b.op("CumSum", {b.GO(0), b.I(1)},
               {{"exclusive", n.attr_int("exclusive", 0)}, {"reverse", int64_t{n.attr_int("reverse", 0) != 0 ? 0 : 1}}}));
}

// ai.onnxtrain.TopKGrad(dValues, Indices, X) -> dX: dValues scattered into zeros at the
// indices along `axis` (X gives the shape only).
std::unique_ptr<Kernel> make_topk_grad(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() < 3 || !in[0].present || !in[1].present || !in[2].present)
    fail(node, "needs the inputs dValues, Indices and X");
  dispatch_float(in[0].dtype, node, [](auto) {});
  const Shape shape = in[2].shape;
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (rank == 0) fail_shape(node, "needs an input of rank >= 1");
  const int64_t axis = normalize_axis(node.attr_int("axis", -1), rank, node);
  const AxisSplit s = split_at(shape, axis);
  return make_function_kernel([s, shape, axis](KernelContext& ctx) {
    const Tensor& dv = ctx.input(0);
    const Tensor& idx = ctx.input(1);
    if (idx.dtype() != DType::Int64 || idx.shape() != dv.shape() || dv.shape().size() != shape.size())
      fail_shape(ctx.node(), "dValues " + shape_str(dv.shape()) + " and Indices " + shape_str(idx.shape()) +
                                 " must have the same shape (and Indices int64)");
    const int64_t k = dv.shape()[axis];
    Tensor& dx = ctx.output(0, dv.dtype(), shape);
    const int64_t* ip = idx.data<int64_t>();
    for (int64_t i = 0; i < idx.numel(); ++i)
      if (ip[i] < 0 || ip[i] >= s.size) fail(ctx.node(), "index " + std::to_string(ip[i]) + " is out of range");
    dispatch_float(dv.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const T* g = dv.data<T>();
      T* out = dx.data<T>();
      parallel_for(s.outer, [&](int64_t o) {
        T* block = out + o * s.size * s.inner;
        std::fill(block, block + s.size * s.inner, T{0});
        const int64_t src = o * k * s.inner;
        for (int64_t r = 0; r < k; ++r)
          for (int64_t i = 0; i < s.inner; ++i) block[ip[src + r * s.inner + i] * s.inner + i] += g[src + r * s.inner + i];
      }, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, s.size * s.inner)));
    });
  });
}

void topk_gradient(GradientBuilder& b) {
  Value* indices = b.saved_output(1, DType::Int64);
  b.GI(0, b.train_op("TopKGrad", {b.GO(0), indices, b.I(0)}, {{"axis", b.node().attr_int("axis", -1)}}));
}

}  // namespace

void register_reduction_ops(Registry& r) {
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
  r.add({"", "ArgMax", 1, INT_MAX,
         [](const Node& n, const std::vector<InputInfo>& in) { return make_arg_reduce(n, in, true); }, "own", {}, {},
         /*not_differentiable*/ true});
  r.add({"", "ArgMin", 1, INT_MAX,
         [](const Node& n, const std::vector<InputInfo>& in) { return make_arg_reduce(n, in, false); }, "own", {}, {},
         /*not_differentiable*/ true});
  r.add({"", "TopK", 1, INT_MAX, make_topk, "own", topk_gradient, /*non_differentiable_inputs*/ {1}});
  r.add({"", "CumSum", 11, INT_MAX, make_cumsum, "own", cumsum_gradient, /*non_differentiable_inputs*/ {1}});

  const char* d = graph::kTrainingDomain;
  r.add({d, "ReduceGrad", 1, INT_MAX, make_reduce_grad, "own"});
  r.add({d, "TopKGrad", 1, INT_MAX, make_topk_grad, "own"});
}

}  // namespace onnxtrain::ops
