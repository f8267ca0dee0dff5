#pragma once
// What the reduction files share (reduction.cpp, reduce_grad.cpp, arg_topk_cumsum.cpp):
// the threading helper and the canonical form of a reduction (ReducePlan).
#include <omp.h>

#include <algorithm>
#include <vector>

#include "ops/gradient.h"
#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

// arg_topk_cumsum.cpp, called from register_reduction_ops.
void register_arg_topk_cumsum_ops(Registry& r);

namespace reduction_impl {

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
                     bool noop_with_empty_axes);

// reduce_grad.cpp: the ai.onnxtrain.ReduceGrad kernel and the gradient rule of Reduce*.
std::unique_ptr<Kernel> make_reduce_grad(const Node& node, const std::vector<InputInfo>& in);
GradientRule reduce_gradient(const char* mode, int axes_input_since);

}  // namespace reduction_impl

}  // namespace onnxtrain::ops
