#pragma once
// What the shape-manipulation files share (reshape.cpp, transpose.cpp, concat_split.cpp,
// slice_tile.cpp, pad.cpp): the strided N-d copy, threading helpers and integer operands.
// Defined in shape.cpp, which also registers the family.
#include <omp.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ops/gradient.h"
#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

// One per file, called from register_shape_ops.
void register_reshape_ops(Registry& r);
void register_transpose_ops(Registry& r);
void register_concat_split_ops(Registry& r);
void register_slice_tile_ops(Registry& r);
void register_pad_ops(Registry& r);

namespace shape_impl {

// Below this many bytes a copy stays on one thread.
constexpr int64_t kParallelBytes = 1 << 16;

inline std::string ints_str(const std::vector<int64_t>& v) { return shape_str(v); }

int64_t checked_numel(const Shape& shape, const Node& node);

template <typename F>
void by_element_size(size_t size, F&& f) {
  switch (size) {
    case 1: return f(uint8_t{});
    case 2: return f(uint16_t{});
    case 4: return f(uint32_t{});
    case 8: return f(uint64_t{});
  }
  throw DataError("unsupported element size " + std::to_string(size));
}

// Splits [0, items) over the OpenMP threads when the work is worth it.
template <typename F>
void parallel_ranges(int64_t items, int64_t bytes_per_item, F&& f) {
  if (items <= 1 || items * bytes_per_item < kParallelBytes) {
    f(int64_t{0}, items);
    return;
  }
#pragma omp parallel
  {
    int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    int64_t begin = items * t / nt, end = items * (t + 1) / nt;
    if (begin < end) f(begin, end);
  }
}

// dst[i * dst_strides] = src[i * src_strides] over `shape` (strides in elements, source
// strides may be negative or 0). The pointers address element 0 of the index space.
void copy_nd(size_t esize, const Shape& shape, void* dst, const Shape& dst_strides, const void* src,
             const Shape& src_strides);

// ---- integer operands ---------------------------------------------------------------

// Integer operands by input index; nullopt when the input is omitted.
using IntArgs = std::vector<std::optional<std::vector<int64_t>>>;

// Builds a kernel from make(args) -> plan and run(ctx, plan). The plan is computed once
// when every operand input in `operands` is constant (or absent), else on every run
// (a kernel serves one input signature, not one set of values).
// Whether input i of the run holds the integers `kept` (absent inputs match no value).
inline bool same_operand(const KernelContext& ctx, size_t i, const std::optional<std::vector<int64_t>>& kept) {
  if (!ctx.has_input(i)) return !kept;
  if (!kept) return false;
  const Tensor& t = ctx.input(i);
  if (t.dtype() != DType::Int64) return t.as_int64() == *kept;
  if (static_cast<size_t>(t.numel()) != kept->size()) return false;
  return std::equal(kept->begin(), kept->end(), t.data<int64_t>());
}

template <typename Make, typename Run>
std::unique_ptr<Kernel> planned(const std::vector<InputInfo>& in, std::vector<size_t> operands, Make make, Run run) {
  bool fixed = true;
  size_t count = in.size();
  for (size_t i : operands) count = std::max(count, i + 1);
  IntArgs args(count);
  for (size_t i : operands) {
    if (i >= in.size() || !in[i].present) continue;
    if (!in[i].constant) fixed = false;
    else args[i] = in[i].constant->as_int64();
  }
  if (fixed) {
    return make_function_kernel([plan = make(args), run](KernelContext& ctx) { run(ctx, plan); });
  }
  // The last operands and their plan are kept: a run whose operands are unchanged (the
  // steady state of a training step) allocates nothing.
  using Plan = decltype(make(std::declval<const IntArgs&>()));
  return make_function_kernel([operands, make, run, args = IntArgs(count),
                               plan = std::optional<Plan>()](KernelContext& ctx) mutable {
    bool same = plan.has_value();
    for (size_t i : operands) same = same && same_operand(ctx, i, args[i]);
    if (!same) {
      for (size_t i : operands) {
        args[i].reset();
        if (ctx.has_input(i)) args[i] = ctx.input(i).as_int64();
      }
      plan = make(args);
    }
    run(ctx, *plan);
  });
}

// The operand from input `index` for opsets >= `since`, else from attribute `attr`.
std::optional<std::vector<int64_t>> operand(const Node& node, const IntArgs& args, int since, size_t index,
                                            const char* attr);

std::vector<int64_t> unique_axes(std::vector<int64_t> axes, int64_t rank, const Node& node);

// The integer operand `v` of a backward op; fails naming the node when it is missing.
const std::vector<int64_t>& shape_operand(const Node& node, const std::optional<std::vector<int64_t>>& v,
                                          const char* what);

Value* int_constant(GradientBuilder& b, const std::vector<int64_t>& v);

}  // namespace shape_impl

}  // namespace onnxtrain::ops
