#pragma once
// What the normalization files share (batch_norm.cpp, layer_norm.cpp, lrn_mvn.cpp): the
// grouped-moments layout and loops, oneDNN descriptor helpers, input checks and the
// kernel factory. Defined in normalization.cpp, which also registers the family.
#include <algorithm>
#include <vector>

#include "ops/dnnl_utils.h"
#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

// One per file, called from register_normalization_ops.
void register_batch_norm_ops(Registry& r);
void register_layer_norm_ops(Registry& r);
void register_group_norm_ops(Registry& r);
void register_lrn_mvn_ops(Registry& r);

namespace norm_impl {

using dnnl::normalization_flags;
using dnnl::prop_kind;

// The index space of a tensor split into groups (the kept dims, row-major order) that each
// reduce over the other dims. A group is a set of contiguous runs of `inner` elements, so
// the common "reduce the trailing dims" case is one run per group.
struct GroupLayout {
  int64_t groups = 0;
  int64_t inner = 1;
  std::vector<int64_t> group_offset;
  std::vector<int64_t> run_offset;
  int64_t group_size() const { return inner * static_cast<int64_t>(run_offset.size()); }
};

GroupLayout make_layout(const Shape& shape, const std::vector<bool>& reduced);

inline int64_t group_grain(const GroupLayout& g) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, g.group_size())); }

// Sum of a group's values, and of their squared deviations from m: in double, with simd
// partial sums (vectorised and more accurate than one running sum). float32 batch
// normalization uses these rather than oneDNN's single-precision sums, which over large
// volumes (e.g. 32768 values a channel) were 4-5x farther from float64 than PyTorch's.
template <typename T>
double group_sum(const T* base, const GroupLayout& g) {
  double s = 0;
  for (int64_t r : g.run_offset) {
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < g.inner; ++i) s += base[r + i];
  }
  return s;
}

template <typename T>
double group_squared_deviation(const T* base, const GroupLayout& g, double m) {
  double q = 0;
  for (int64_t r : g.run_offset) {
#pragma omp simd reduction(+ : q)
    for (int64_t i = 0; i < g.inner; ++i) {
      const double d = base[r + i] - m;
      q += d * d;
    }
  }
  return q;
}

// Mean and population variance of every group (two passes). With a collective the groups
// span every process's batch: the sums (and counts) are added across processes before the
// mean, and again before the variance.
template <typename T>
void group_moments(const T* x, const GroupLayout& g, double* mean, double* var, Collective* collective = nullptr) {
  if (!collective) {
    const double n = static_cast<double>(g.group_size());
    parallel_for(
        g.groups,
        [&](int64_t k) {
          const T* base = x + g.group_offset[k];
          const double m = n > 0 ? group_sum(base, g) / n : 0.0;
          mean[k] = m;
          var[k] = n > 0 ? group_squared_deviation(base, g, m) / n : 0.0;
        },
        group_grain(g));
    return;
  }
  const auto groups = static_cast<size_t>(g.groups);
  std::vector<double> sums(groups + 1);
  parallel_for(g.groups, [&](int64_t k) { sums[k] = group_sum(x + g.group_offset[k], g); }, group_grain(g));
  sums[groups] = static_cast<double>(g.group_size());
  collective->allreduce_sum(sums.data(), static_cast<int64_t>(sums.size()));
  const double n = sums[groups];
  parallel_for(
      g.groups,
      [&](int64_t k) {
        mean[k] = n > 0 ? sums[k] / n : 0.0;
        var[k] = group_squared_deviation(x + g.group_offset[k], g, mean[k]);
      },
      group_grain(g));
  collective->allreduce_sum(var, g.groups);
  for (size_t k = 0; k < groups; ++k) var[k] = n > 0 ? var[k] / n : 0.0;
}

// y = x * a[group] + b[group].
template <typename T>
void group_affine(const T* x, T* y, const GroupLayout& g, const double* a, const double* b) {
  parallel_for(
      g.groups,
      [&](int64_t k) {
        const int64_t base = g.group_offset[k];
        const T ak = static_cast<T>(a[k]), bk = static_cast<T>(b[k]);
        for (int64_t r : g.run_offset) {
#pragma omp simd
          for (int64_t i = 0; i < g.inner; ++i) y[base + r + i] = x[base + r + i] * ak + bk;
        }
      },
      group_grain(g));
}

// A float view of a parameter tensor of any float type (oneDNN wants f32 parameters).
const float* float_params(const Tensor& t, std::vector<float>& scratch);

void store_any(Tensor& t, const std::vector<double>& values, const Node& node);

dnnl::memory::desc f32_vector(int64_t n);

// oneDNN 2.6 has jit batch normalization for 4-D/5-D (ncsp) data only: a 3-D
// [N, C, S] view falls back to its reference kernel (~50x slower backward), so views get
// a trailing unit dimension.
dnnl::memory::desc ncsp_desc(int64_t n, int64_t c, int64_t spatial);
dnnl::memory bind_ptr(const dnnl::memory::desc& md, const void* p);

void check_same(const Node& node, const std::vector<InputInfo>& in, size_t a, size_t b, const char* what);

void require_inputs(const Node& node, const std::vector<InputInfo>& in, size_t n, const char* names);

template <typename K>
KernelFactory factory() {
  return [](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    if (in.empty() || !in[0].present) fail(node, "requires input 0");
    return std::make_unique<K>(node, in);
  };
}

}  // namespace norm_impl

}  // namespace onnxtrain::ops
