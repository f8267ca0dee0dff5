// The segmentation losses against PyTorch goldens (tests/data/loss/make_dice_goldens.py):
// dice, cross_entropy_dice, and cross_entropy on [N, C, H, W] with weights and ignore 255;
// value and gradient w.r.t. the logits; and their option checks.
#include <gtest/gtest.h>

#include <cmath>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/loss_goldens.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

const std::map<std::string, Tensor>& goldens() {
  static const auto arrays = read_npz(test::source_dir() + "/tests/data/loss/dice_goldens.npz");
  return arrays;
}

int check_goldens(const std::string& kind) { return test::check_loss_goldens(goldens(), kind); }

TEST(LossDiceGolden, Dice) { EXPECT_EQ(check_goldens("dice"), 5); }
TEST(LossDiceGolden, CrossEntropyDice) { EXPECT_EQ(check_goldens("cross_entropy_dice"), 2); }
TEST(LossDiceGolden, CrossEntropyOnNchwWithIgnore255) { EXPECT_EQ(check_goldens("cross_entropy"), 1); }

Tensor logits() { return Tensor::from_vector<float>({1, 2, 1, 2}, {1, -1, 0, 2}); }
Tensor labels() { return Tensor::from_vector<int64_t>({1, 1, 2}, {0, 1}); }

TEST(LossDiceOptions, PerfectPredictionGivesZeroDice) {
  LossOptions o;
  o.kind = "dice";
  o.dice_smooth = 0;
  // Logits of +-40 make the softmax one-hot to float precision.
  const auto step = test::loss_probe(Tensor::from_vector<float>({1, 2, 1, 2}, {40, -40, -40, 40}), labels(), o);
  EXPECT_NEAR(step.loss, 0, 1e-6);
}

TEST(LossDiceOptions, MisusedOptionsAreRefused) {
  LossOptions o;
  o.kind = "mse";
  o.dice_weight = 2;
  EXPECT_NE(test::error_of([&] { test::loss_probe(logits(), labels(), o); }).find("'dice_weight' does not apply"),
            std::string::npos);
  o.kind = "dice";  // dice_weight weighs dice against cross-entropy: meaningless alone
  EXPECT_NE(test::error_of([&] { test::loss_probe(logits(), labels(), o); }).find("only to cross_entropy_dice"),
            std::string::npos);
  o = {};
  o.kind = "cross_entropy_dice";
  o.dice_smooth = -1;
  EXPECT_NE(test::error_of([&] { test::loss_probe(logits(), labels(), o); }).find("'dice_smooth' must be"),
            std::string::npos);
  o.dice_smooth = 1;
  o.reduction = "sum";
  EXPECT_NE(test::error_of([&] { test::loss_probe(logits(), labels(), o); }).find("must be mean"), std::string::npos);
  o.reduction = "mean";
  o.class_weights = {1, 2, 3};
  EXPECT_NE(test::error_of([&] { test::loss_probe(logits(), labels(), o); }).find("has 3 values"), std::string::npos);
}

}  // namespace
