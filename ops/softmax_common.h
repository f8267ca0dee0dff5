#pragma once
// Log-softmax shared by LogSoftmax and SoftmaxCrossEntropyLoss. Own loop for float32 too:
// oneDNN 2.6's softmax_log is 3e-6 off in relative terms (60 times float32 rounding; its
// log approximation), which showed as loss and classifier-gradient errors several times
// PyTorch float32's in the family parity tests. Sums of exponentials are taken in double.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <omp.h>

#include "ops/op_utils.h"

namespace onnxtrain::ops {

// y = x - max - log(sum(exp(x - max))) over `size` of an [outer, size, inner] tensor; the
// `inner` rows of one outer index are done together so the innermost loop is contiguous.
template <typename T>
void log_softmax_rows(const T* x, T* y, int64_t outer, int64_t size, int64_t inner) {
  if (size == 0 || inner == 0) return;
  const int64_t block = size * inner;
  auto rows = [&](int64_t o_begin, int64_t o_end) {
    // Each thread's own scratch, kept: a training step's loss allocates nothing here.
    thread_local std::vector<T> best;
    thread_local std::vector<double> sum;
    best.resize(static_cast<size_t>(inner));
    sum.resize(static_cast<size_t>(inner));
    for (int64_t o = o_begin; o < o_end; ++o) {
      const T* xs = x + o * block;
      T* ys = y + o * block;
      std::copy(xs, xs + inner, best.begin());
      for (int64_t r = 1; r < size; ++r)
        for (int64_t i = 0; i < inner; ++i) best[i] = std::max(best[i], xs[r * inner + i]);
      std::fill(sum.begin(), sum.end(), 0.0);
      for (int64_t r = 0; r < size; ++r)
        for (int64_t i = 0; i < inner; ++i) sum[i] += std::exp(xs[r * inner + i] - best[i]);
      for (int64_t i = 0; i < inner; ++i) sum[i] = std::log(sum[i]);
      for (int64_t r = 0; r < size; ++r)
        for (int64_t i = 0; i < inner; ++i) ys[r * inner + i] = static_cast<T>((xs[r * inner + i] - best[i]) - sum[i]);
    }
  };
  if (outer <= 1 || !worth_parallel(outer * block)) return rows(0, outer);
#pragma omp parallel
  {
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    rows(outer * t / threads, outer * (t + 1) / threads);
  }
}

}  // namespace onnxtrain::ops
