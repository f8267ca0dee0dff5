#include <gtest/gtest.h>

#include "tests/support/gradcheck.h"

using namespace onnxtrain;
using onnxtrain::test::GradCase;

namespace {

struct BinaryCase {
  std::string op;
  Shape a, b;
  std::string a_text, b_text, y_text;
};

void PrintTo(const BinaryCase& c, std::ostream* os) { *os << c.op << c.a_text << c.b_text; }

class BinaryGrad : public ::testing::TestWithParam<BinaryCase> {};

TEST_P(BinaryGrad, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  GradCase c;
  c.model_text = "<ir_version: 8, opset_import: [\"\" : 17]> g (double" + p.a_text + " A, double" + p.b_text +
                 " B) => (double" + p.y_text + " Y) { Y = " + p.op + "(A, B) }";
  // Divisors kept away from zero.
  c.inputs = {{"A", test::random_tensor(DType::Double, p.a, 1)},
              {"B", test::random_away_from(DType::Double, p.b, 2, {0.0}, 0.3)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

std::vector<BinaryCase> cases() {
  std::vector<BinaryCase> out;
  for (const char* op : {"Add", "Sub", "Mul", "Div"}) {
    out.push_back({op, {2, 3}, {2, 3}, "[2,3]", "[2,3]", "[2,3]"});
    out.push_back({op, {2, 3, 4}, {4}, "[2,3,4]", "[4]", "[2,3,4]"});           // trailing broadcast
    out.push_back({op, {2, 1, 4}, {3, 1}, "[2,1,4]", "[3,1]", "[2,3,4]"});      // both broadcast
    out.push_back({op, {1}, {2, 3}, "[1]", "[2,3]", "[2,3]"});                  // scalar-like left
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Ops, BinaryGrad, ::testing::ValuesIn(cases()));

TEST(BinaryGrad, FanOutIsSummed) {
  // A feeds two nodes: its gradient is the sum of both contributions.
  GradCase c;
  c.model_text = R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (double[3] A, double[3] B) => (double[3] Y) { C = Add(A, B) Y = Mul(C, A) })";
  c.inputs = {{"A", test::random_tensor(DType::Double, {3}, 3)}, {"B", test::random_tensor(DType::Double, {3}, 4)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

}  // namespace
