#include <gtest/gtest.h>

#include "tests/support/gradcheck.h"

using namespace onnxtrain;
using onnxtrain::test::GradCase;

namespace {

std::string matmul_model(const std::string& a, const std::string& b, const std::string& y) {
  return "<ir_version: 8, opset_import: [\"\" : 17]> g (double" + a + " A, double" + b + " B) => (double" + y +
         " Y) { Y = MatMul(A, B) }";
}

struct MatMulShapes {
  Shape a, b;
  std::string a_text, b_text, y_text;
};

void PrintTo(const MatMulShapes& s, std::ostream* os) { *os << s.a_text << "x" << s.b_text; }

class MatMulGrad : public ::testing::TestWithParam<MatMulShapes> {};

TEST_P(MatMulGrad, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  GradCase c;
  c.model_text = matmul_model(p.a_text, p.b_text, p.y_text);
  c.inputs = {{"A", test::random_tensor(DType::Double, p.a, 1)}, {"B", test::random_tensor(DType::Double, p.b, 2)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, MatMulGrad,
    ::testing::Values(MatMulShapes{{3, 4}, {4, 5}, "[3,4]", "[4,5]", "[3,5]"},
                      MatMulShapes{{2, 3, 4}, {4, 5}, "[2,3,4]", "[4,5]", "[2,3,5]"},          // broadcast B
                      MatMulShapes{{2, 1, 3, 4}, {3, 4, 2}, "[2,1,3,4]", "[3,4,2]", "[2,3,3,2]"},  // both broadcast
                      MatMulShapes{{4}, {4, 5}, "[4]", "[4,5]", "[5]"},                         // 1-D left
                      MatMulShapes{{2, 3, 4}, {4}, "[2,3,4]", "[4]", "[2,3]"},                  // 1-D right
                      MatMulShapes{{4}, {4}, "[4]", "[4]", ""}));                               // dot product

}  // namespace
