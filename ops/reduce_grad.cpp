// ai.onnxtrain.ReduceGrad, the backward kernel of every Reduce* op (reduction.cpp), and
// their gradient rule.
#include <algorithm>
#include <cmath>
#include <limits>
#include <omp.h>
#include <optional>
#include <string_view>
#include <utility>

#include "ops/reduction_common.h"

namespace onnxtrain::ops::reduction_impl {

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
  // coef[o]: the per-output factor of the local derivative, dY folded in (the calling
  // thread's buffer, kept: a training step allocates nothing here).
  thread_local std::vector<T> coef_scratch;
  std::vector<T>& coef_buffer = coef_scratch;
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
  auto run_task = [&](int64_t t) {
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
  };
  // A branch, not an `if` clause: a region on one thread still allocates a libgomp team.
  if (tasks > 1 && worth_parallel(total, kGrain)) {
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) run_task(t);
  } else {
    for (int64_t t = 0; t < tasks; ++t) run_task(t);
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
      ctx.set_output_view(0, dy, shape_);
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

}  // namespace onnxtrain::ops::reduction_impl
