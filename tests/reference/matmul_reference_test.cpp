// MatMul (oneDNN matmul forward and the MatMulGrad backward) and Gemm against the naive
// reference on random odd shapes: 1-D operands, batch dims of different ranks that
// broadcast, batch 1, sizes that are not multiples of 8.
#include <gtest/gtest.h>

#include "ops/reference/matmul.h"
#include "tests/reference/reference_support.h"

using namespace onnxtrain;
using namespace onnxtrain::test;

namespace {

// Random batch dims of rank 0..2 that broadcast against each other.
void draw_batches(std::mt19937& rng, Dims& a, Dims& b) {
  const int64_t rank = pick(rng, {0, 1, 2});
  for (int64_t i = 0; i < rank; ++i) {
    const int64_t d = pick(rng, {1, 2, 3, 5});
    a.push_back(pick(rng, {0, 1}) ? d : 1);
    b.push_back(pick(rng, {0, 1}) ? d : 1);
  }
  // one side may have fewer batch dims
  if (!a.empty() && pick(rng, {0, 1})) a.erase(a.begin());
  else if (!b.empty() && pick(rng, {0, 1})) b.erase(b.begin());
}

void check_matmul(std::mt19937& rng) {
  Dims a, b;
  draw_batches(rng, a, b);
  const int64_t m = pick(rng, {1, 3, 7, 13, 17}), k = pick(rng, {1, 3, 5, 31, 67}), n = pick(rng, {1, 2, 5, 9, 19});
  const bool a_vec = pick(rng, {0, 0, 0, 1}) != 0, b_vec = pick(rng, {0, 0, 0, 1}) != 0;
  if (a_vec) a = {k};
  else a.insert(a.end(), {m, k});
  if (b_vec) b = {k};
  else b.insert(b.end(), {k, n});
  SCOPED_TRACE("MatMul A " + ints(a) + " B " + ints(b));
  const Array aa = random_array(a, rng), ba = random_array(b, rng);
  const Array y = reference::matmul(aa, ba);
  const Tensor got = run_node("MatMul", "", {{"A", aa}, {"B", ba}}, {{"Y", y.shape.size()}})["Y"];
  EXPECT_EQ(compare(got, y, accumulation_tolerance(k)), "") << "forward";
  const Array dy = random_array(y.shape, rng);
  const reference::MatMulGrads g = reference::matmul_backward(dy, aa, ba);
  auto grads = run_node("ai.onnxtrain.MatMulGrad", "", {{"dY", dy}, {"A", aa}, {"B", ba}}, {{"dA", a.size()}, {"dB", b.size()}});
  // dA sums n products per broadcast copy of A, dB m products per copy of B.
  const int64_t copies = std::max<int64_t>(1, y.numel() / std::max<int64_t>(1, (a_vec ? 1 : m) * (b_vec ? 1 : n)));
  EXPECT_EQ(compare(grads["dA"], g.da, accumulation_tolerance(n * copies)), "") << "dA";
  EXPECT_EQ(compare(grads["dB"], g.db, accumulation_tolerance(m * copies)), "") << "dB";
}

void check_gemm(std::mt19937& rng) {
  const int64_t m = pick(rng, {1, 3, 7, 13}), k = pick(rng, {1, 5, 31, 67}), n = pick(rng, {1, 2, 9, 19});
  const bool ta = pick(rng, {0, 1}) != 0, tb = pick(rng, {0, 1}) != 0;
  const std::vector<Dims> c_shapes{{m, n}, {1, n}, {n}, {m, 1}, {}, {1, 1}};
  const Dims cs = c_shapes[std::uniform_int_distribution<size_t>(0, c_shapes.size() - 1)(rng)];
  const bool with_c = pick(rng, {0, 1, 1}) != 0;
  const double alpha = pick(rng, {1, 2, -3}) / 2.0, beta = pick(rng, {1, 2, 0}) / 2.0;
  const std::string attrs = "transA = " + std::to_string(ta) + ", transB = " + std::to_string(tb) +
                            ", alpha = " + std::to_string(alpha) + ", beta = " + std::to_string(beta);
  SCOPED_TRACE("Gemm M " + std::to_string(m) + " K " + std::to_string(k) + " N " + std::to_string(n) + " C " +
               (with_c ? ints(cs) : "none") + " <" + attrs + ">");
  const Array a = random_array(ta ? Dims{k, m} : Dims{m, k}, rng), b = random_array(tb ? Dims{n, k} : Dims{k, n}, rng);
  const Array c = random_array(cs, rng);
  std::vector<NodeInput> in{{"A", a}, {"B", b}};
  if (with_c) in.push_back({"C", c});
  const Tensor got = run_node("Gemm", attrs, in, {{"Y", 2}})["Y"];
  EXPECT_EQ(compare(got, reference::gemm(a, b, with_c ? &c : nullptr, ta, tb, alpha, beta), accumulation_tolerance(k + 1, 1.5)),
            "");
}

}  // namespace

TEST(MatMulReference, MatMulForwardAndGradMatchOnRandomOddShapes) {
  std::mt19937 rng(13);
  for (int i = 0; i < 120; ++i) check_matmul(rng);
}

TEST(MatMulReference, GemmMatchesOnRandomOddShapes) {
  std::mt19937 rng(14);
  for (int i = 0; i < 80; ++i) check_gemm(rng);
}
