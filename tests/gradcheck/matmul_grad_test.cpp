// Gradient checks for the matmul family: MatMul (matmul.cpp), Gemm (gemm.cpp), Einsum
// (einsum.cpp) and Det (det.cpp). float64 cases exercise the own backward loops with tight
// tolerances; float32 cases the oneDNN backward primitives (four-point differences, eps 1e-2).
#include <gtest/gtest.h>

#include "onnxtrain/errors.h"

#include "tests/support/node_case.h"
#include "tests/support/node_grad.h"

using namespace onnxtrain;
using onnxtrain::test::GradCase;
using namespace onnxtrain::test::node_grad;

namespace {

std::string matmul_model(const std::string& a, const std::string& b, const std::string& y) {
  return test::NodeCase{"MatMul", "", {"double" + a + " A", "double" + b + " B"}, {"double" + y + " Y"}}.text();
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

// ---------------------------------------------------------------------------------------------
// Gemm

TEST(DenseGrad, Gemm) {
  for (DType dt : kBoth)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        const Shape a = ta ? Shape{4, 3} : Shape{3, 4}, b = tb ? Shape{5, 4} : Shape{4, 5};
        const std::string attrs =
            "<transA = " + std::to_string(ta) + ", transB = " + std::to_string(tb) + ", alpha = 0.5, beta = 2.0>";
        for (const Shape& c : std::vector<Shape>{{3, 5}, {5}, {1, 5}, {3, 1}, {}}) {
          SCOPED_TRACE(type_name(dt) + " transA " + std::to_string(ta) + " transB " + std::to_string(tb) + " C " +
                       dims_text(c));
          EXPECT_EQ(check(dt, "Gemm " + attrs + " (A, B, C)", {{"A", a}, {"B", b}, {"C", c}}, 2), "");
        }
        SCOPED_TRACE(type_name(dt) + " no C, transA " + std::to_string(ta) + " transB " + std::to_string(tb));
        EXPECT_EQ(check(dt, "Gemm <transA = " + std::to_string(ta) + ", transB = " + std::to_string(tb) + "> (A, B)",
                        {{"A", a}, {"B", b}}, 2),
                  "");
        // Opset 9: C is required, and the gradient Gemms must supply one.
        EXPECT_EQ(check(dt, "Gemm " + attrs + " (A, B, C)", {{"A", a}, {"B", b}, {"C", {5}}}, 2, {}, 9), "");
      }
  // Only one operand's gradient.
  EXPECT_EQ(check(DType::Double, "Gemm <transB = 1> (A, B, C)", {{"A", {3, 4}}, {"B", {5, 4}}, {"C", {5}}}, 2, {"B"}),
            "");
}

// ---------------------------------------------------------------------------------------------
// Einsum / Det

struct EinsumCase {
  std::string eq;
  std::vector<Shape> shapes;
  size_t y_rank;
};

TEST(DenseGrad, Einsum) {
  const std::vector<EinsumCase> cases{
      {"ij,jk->ik", {{3, 4}, {4, 5}}, 2},
      {"bij,bkj->bik", {{2, 3, 4}, {2, 5, 4}}, 3},
      {"ij->ji", {{3, 4}}, 2},
      {"ij->i", {{3, 4}}, 1},             // j summed out: Expand back
      {"ijk->", {{2, 3, 2}}, 0},
      {"i,i->", {{5}, {5}}, 0},
      {"i,j->ij", {{3}, {4}}, 2},
      {"ij,jk,kl->il", {{2, 3}, {3, 4}, {4, 2}}, 2},
      {"ij,jk", {{3, 4}, {4, 2}}, 2},     // implicit output
      {"ba,ac", {{3, 4}, {4, 2}}, 2},     // implicit output, sorted labels
      {"ij,ij->ij", {{3, 1}, {3, 4}}, 2}, // size-1 label broadcast
      {"ij,j->i", {{3, 4}, {1}}, 1},      // the other side broadcast
      {"...ij,...jk->...ik", {{2, 3, 4}, {4, 5}}, 3},
      {"...i,...i->...", {{2, 3, 4}, {3, 4}}, 2},
      {"...i->i", {{2, 3, 4}}, 1},        // ellipsis summed out
      {"bn,anm,bm->ba", {{2, 3}, {4, 3, 5}, {2, 5}}, 2},
  };
  for (DType dt : kBoth)
    for (const auto& c : cases) {
      SCOPED_TRACE(type_name(dt) + " " + c.eq);
      std::vector<In> ins;
      std::string args;
      for (size_t i = 0; i < c.shapes.size(); ++i) {
        const std::string name = std::string(1, static_cast<char>('A' + i));
        ins.push_back({name, c.shapes[i]});
        args += (i ? ", " : "") + name;
      }
      EXPECT_EQ(check(dt, "Einsum <equation = \"" + c.eq + "\"> (" + args + ")", ins, c.y_rank), "");
    }
  // A diagonal in another operand is fine; in the differentiated one it is refused.
  EXPECT_EQ(check(DType::Double, "Einsum <equation = \"ii,j->j\"> (A, B)", {{"A", {3, 3}}, {"B", {4}}}, 1, {"B"}), "");
  EXPECT_THROW(check(DType::Double, "Einsum <equation = \"ii,j->j\"> (A, B)", {{"A", {3, 3}}, {"B", {4}}}, 1, {"A"}),
               UnsupportedOp);
}

TEST(DenseGrad, Det) {
  const Tensor singular = Tensor::from_vector<double>({3, 3}, {1, 2, 3, 2, 4, 6, 1, 0, 1});  // rank 2
  for (DType dt : kBoth) {
    SCOPED_TRACE(type_name(dt));
    EXPECT_EQ(check(dt, "Det (A)", {{"A", {3, 3}}}, 0, {}, 11), "");
    EXPECT_EQ(check(dt, "Det (A)", {{"A", {2, 4, 4}}}, 1), "");
    EXPECT_EQ(check(dt, "Det (A)", {{"A", {1, 1}}}, 0), "");
    EXPECT_EQ(check(dt, "Det (A)", {{"A", {}, singular}}, 0), "");
  }
}

}  // namespace
