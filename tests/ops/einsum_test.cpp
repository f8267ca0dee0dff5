// Einsum against brute-force sums written out per equation.
#include <gtest/gtest.h>

#include <functional>
#include <random>

#include "onnxtrain/onnxtrain.h"
#include "ops/reference/array.h"
#include "tests/reference/reference_support.h"

using namespace onnxtrain;
using test::random_float_tensor;
using test::run_node;

TEST(Einsum, EinsumMatchesBruteForce) {
  std::mt19937 rng(5);
  struct Case {
    std::string eq;
    std::vector<Shape> shapes;
    Shape out;
    std::function<double(const std::vector<Tensor>&, const std::vector<int64_t>&)> expected;  // at output index
  };
  auto at = [](const Tensor& t, std::vector<int64_t> idx) {
    const Shape s = reference::strides_of(t.shape());
    int64_t off = 0;
    for (size_t i = 0; i < idx.size(); ++i) off += idx[i] * s[i];
    return double(t.data<float>()[off]);
  };
  const std::vector<Case> cases = {
      {"ij,jk,kl->il", {{2, 3}, {3, 4}, {4, 5}}, {2, 5}, [&](auto& t, auto& o) {
         double s = 0;
         for (int64_t j = 0; j < 3; ++j)
           for (int64_t k = 0; k < 4; ++k) s += at(t[0], {o[0], j}) * at(t[1], {j, k}) * at(t[2], {k, o[1]});
         return s;
       }},
      {"bii->bi", {{2, 3, 3}}, {2, 3}, [&](auto& t, auto& o) { return at(t[0], {o[0], o[1], o[1]}); }},
      {"ii", {{4, 4}}, {}, [&](auto& t, auto&) {
         double s = 0;
         for (int64_t i = 0; i < 4; ++i) s += at(t[0], {i, i});
         return s;
       }},
      {"...ij,...jk->...ik", {{2, 1, 3, 4}, {5, 4, 2}}, {2, 5, 3, 2}, [&](auto& t, auto& o) {
         double s = 0;
         for (int64_t j = 0; j < 4; ++j) s += at(t[0], {o[0], 0, o[2], j}) * at(t[1], {o[1], j, o[3]});
         return s;
       }},
      {"ijk,ikj", {{2, 3, 4}, {2, 4, 3}}, {}, [&](auto& t, auto&) {
         double s = 0;
         for (int64_t i = 0; i < 2; ++i)
           for (int64_t j = 0; j < 3; ++j)
             for (int64_t k = 0; k < 4; ++k) s += at(t[0], {i, j, k}) * at(t[1], {i, k, j});
         return s;
       }},
      {"ba,ca", {{3, 2}, {4, 2}}, {3, 4}, [&](auto& t, auto& o) {  // implicit output "bc"
         return at(t[0], {o[0], 0}) * at(t[1], {o[1], 0}) + at(t[0], {o[0], 1}) * at(t[1], {o[1], 1});
       }},
      {"i,j->ji", {{3}, {2}}, {2, 3}, [&](auto& t, auto& o) { return at(t[0], {o[1]}) * at(t[1], {o[0]}); }},
  };
  for (const auto& c : cases) {
    std::vector<std::pair<std::string, Tensor>> in;
    std::vector<Tensor> ts;
    for (size_t i = 0; i < c.shapes.size(); ++i) {
      ts.push_back(random_float_tensor(c.shapes[i], rng));
      in.emplace_back("I" + std::to_string(i), ts.back());
    }
    Tensor y = run_node("Einsum", "equation = \"" + c.eq + "\"", in, c.out.size())["Y"];
    ASSERT_EQ(y.shape(), c.out) << c.eq;
    const Shape ys = reference::strides_of(c.out);
    for (int64_t f = 0; f < y.numel(); ++f) {
      std::vector<int64_t> idx(c.out.size());
      int64_t rest = f;
      for (size_t d = 0; d < idx.size(); ++d) {
        idx[d] = rest / ys[d];
        rest %= ys[d];
      }
      EXPECT_NEAR(y.data<float>()[f], c.expected(ts, idx), 1e-5) << c.eq << " at " << f;
    }
  }
}
