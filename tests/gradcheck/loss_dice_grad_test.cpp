// The Dice loss kinds differentiated by our autodiff (the training graph's backward of
// Softmax, OneHot-masked products, ReduceSum, Div) against central finite differences of
// the loss value, in float64.
#include <gtest/gtest.h>

#include <cmath>

#include "tests/support/gradcheck.h"
#include "tests/support/loss_goldens.h"

using namespace onnxtrain;

namespace {

struct DiceCase {
  std::string kind;
  Shape shape;
  std::vector<double> class_weights;
  double smooth = 1.0;
};
void PrintTo(const DiceCase& c, std::ostream* os) { *os << c.kind << shape_str(c.shape) << c.class_weights.size(); }

class DiceGrad : public ::testing::TestWithParam<DiceCase> {};

TEST_P(DiceGrad, MatchesFiniteDifferences) {
  const DiceCase& p = GetParam();
  Tensor x = test::random_tensor(DType::Double, p.shape, 21, -2.0, 2.0);
  Shape t_shape{p.shape[0]};
  t_shape.insert(t_shape.end(), p.shape.begin() + 2, p.shape.end());
  Tensor t(DType::Int64, t_shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<int64_t>()[i] = i % 7 == 3 ? 255 : (i * 5 + i / 3) % p.shape[1];
  LossOptions o;
  o.kind = p.kind;
  o.ignore_index = 255;
  o.class_weights = p.class_weights;
  o.dice_smooth = p.smooth;
  const auto step = test::loss_probe(x, t, o);
  const Tensor& grad = step.gradients.at("B");
  constexpr double kEps = 1e-6;
  double worst = 0, scale = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double keep = x.data<double>()[i];
    x.data<double>()[i] = keep + kEps;
    const double up = test::loss_probe(x, t, o).loss;
    x.data<double>()[i] = keep - kEps;
    const double down = test::loss_probe(x, t, o).loss;
    x.data<double>()[i] = keep;
    const double numeric = (up - down) / (2 * kEps);
    worst = std::max(worst, std::abs(numeric - grad.data<double>()[i]));
    scale = std::max(scale, std::abs(numeric));
  }
  EXPECT_GT(scale, 1e-4);  // the loss depends on the logits at all
  EXPECT_LE(worst, 1e-6 * scale + 1e-9);
}

INSTANTIATE_TEST_SUITE_P(Loss, DiceGrad,
                         ::testing::Values(DiceCase{"dice", {2, 3, 2, 3}}, DiceCase{"dice", {2, 4, 5}, {1, 2, 0.5, 1}, 0.5},
                                           DiceCase{"cross_entropy_dice", {1, 3, 3, 3}, {}, 2.0},
                                           DiceCase{"cross_entropy_dice", {2, 3, 4}, {0.5, 1, 2}, 1.0}));

}  // namespace
