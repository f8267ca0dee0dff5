#include "ops/reference/matmul.h"

#include <algorithm>
#include <functional>
#include <stdexcept>

namespace onnxtrain::reference {
namespace {

struct Plan {
  Dims a, b;      // operands as matrices with batch dims padded to the output batch rank
  Dims batch;     // broadcast batch dims
  int64_t m, k, n;
  Dims y;         // the output shape (vector operands' dims dropped)
};

Plan plan(const Dims& as, const Dims& bs) {
  Plan p;
  p.a = as.size() == 1 ? Dims{1, as[0]} : as;
  p.b = bs.size() == 1 ? Dims{bs[0], 1} : bs;
  const size_t rank = std::max(p.a.size(), p.b.size());
  p.a.insert(p.a.begin(), rank - p.a.size(), 1);
  p.b.insert(p.b.begin(), rank - p.b.size(), 1);
  for (size_t i = 0; i + 2 < rank; ++i) {
    if (p.a[i] != p.b[i] && p.a[i] != 1 && p.b[i] != 1) throw std::invalid_argument("matmul: batch dims do not broadcast");
    p.batch.push_back(std::max(p.a[i], p.b[i]));
  }
  p.m = p.a[rank - 2];
  p.k = p.a[rank - 1];
  p.n = p.b[rank - 1];
  p.y = p.batch;
  if (as.size() > 1) p.y.push_back(p.m);
  if (bs.size() > 1) p.y.push_back(p.n);
  return p;
}

// Offset of batch index `bi` in an operand whose padded batch dims are `dims` (size-1 dims
// broadcast).
int64_t batch_offset(const Dims& bi, const Dims& dims) {
  int64_t off = 0;
  for (size_t i = 0; i < bi.size(); ++i) off = off * dims[i] + (dims[i] == 1 ? 0 : bi[i]);
  return off;
}

// f(a_offset, b_offset, y_offset) for every product a * b summed into y.
void for_each_product(const Plan& p, const std::function<void(int64_t, int64_t, int64_t)>& f) {
  const int64_t batches = numel_of(p.batch);
  for (int64_t bt = 0; bt < batches; ++bt) {
    const Dims bi = unravel(bt, p.batch);
    const int64_t ab = batch_offset(bi, p.a) * p.m * p.k, bb = batch_offset(bi, p.b) * p.k * p.n;
    for (int64_t i = 0; i < p.m; ++i)
      for (int64_t j = 0; j < p.n; ++j)
        for (int64_t l = 0; l < p.k; ++l) f(ab + i * p.k + l, bb + l * p.n + j, (bt * p.m + i) * p.n + j);
  }
}

}  // namespace

Array matmul(const Array& a, const Array& b) {
  const Plan p = plan(a.shape, b.shape);
  Array y(p.y);
  for_each_product(p, [&](int64_t ao, int64_t bo, int64_t yo) { y[yo] += a[ao] * b[bo]; });
  return y;
}

MatMulGrads matmul_backward(const Array& dy, const Array& a, const Array& b) {
  const Plan p = plan(a.shape, b.shape);
  MatMulGrads g{Array(a.shape), Array(b.shape)};
  for_each_product(p, [&](int64_t ao, int64_t bo, int64_t yo) {
    g.da[ao] += dy[yo] * b[bo];
    g.db[bo] += dy[yo] * a[ao];
  });
  return g;
}

Array gemm(const Array& a, const Array& b, const Array* c, bool trans_a, bool trans_b, double alpha, double beta) {
  const int64_t m = trans_a ? a.shape[1] : a.shape[0], k = trans_a ? a.shape[0] : a.shape[1];
  const int64_t n = trans_b ? b.shape[0] : b.shape[1];
  Array y({m, n});
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t l = 0; l < k; ++l) acc += a[trans_a ? l * m + i : i * k + l] * b[trans_b ? j * k + l : l * n + j];
      double cv = 0;
      if (c) {
        // Unidirectional broadcast of C to [M, N]: size-1 (or missing) dims repeat.
        const Dims cs = c->shape;
        const int64_t rows = cs.size() == 2 ? cs[0] : 1, cols = cs.empty() ? 1 : cs.back();
        cv = (*c)[(rows == 1 ? 0 : i) * cols + (cols == 1 ? 0 : j)];
      }
      y[i * n + j] = alpha * acc + beta * cv;
    }
  return y;
}

}  // namespace onnxtrain::reference
