#pragma once
// Log-softmax shared by LogSoftmax and SoftmaxCrossEntropyLoss. Own loop for float32 too:
// oneDNN 2.6's softmax_log is 3e-6 off in relative terms (60 times float32 rounding; its
// log approximation), which showed as loss and classifier-gradient errors several times
// PyTorch float32's in the family parity tests. Sums of exponentials are taken in double.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace onnxtrain::ops {

// y = x - max - log(sum(exp(x - max))) over `size` of an [outer, size, inner] tensor; the
// `inner` rows of one outer index are done together so the innermost loop is contiguous.
template <typename T>
void log_softmax_rows(const T* x, T* y, int64_t outer, int64_t size, int64_t inner) {
  if (size == 0 || inner == 0) return;
  const int64_t block = size * inner;
#pragma omp parallel if (outer > 1 && outer * block >= 16384)
  {
    std::vector<T> best(static_cast<size_t>(inner));
    std::vector<double> sum(static_cast<size_t>(inner));
#pragma omp for schedule(static)
    for (int64_t o = 0; o < outer; ++o) {
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
  }
}

}  // namespace onnxtrain::ops
