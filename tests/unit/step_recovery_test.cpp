// A failed step leaves the session usable: a batch of the wrong shape, a batch whose loss
// is NaN, a missing input; each throws its documented exception, changes nothing, and the
// next good step gives exactly what it gives on a session that never failed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

const char* const kModel = test::kLinearModel;

std::map<std::string, Tensor> good() { return test::linear_batch(); }

TrainingOptions adam() {
  TrainingOptions o;
  o.loss.kind = "mse";
  o.optimizer.kind = "adam";
  o.optimizer.lr = 0.1;
  return o;
}

bool same(const Tensor& a, const Tensor& b) { return std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0; }

TEST(StepRecovery, BadShapeNanLossAndMissingInputLeaveTheSessionUsable) {
  Model reference_model = Model::from_text(kModel);
  TrainingSession reference(reference_model, adam());
  reference.train_step(good());
  reference.train_step(good());

  Model model = Model::from_text(kModel);
  TrainingSession session(model, adam());
  session.train_step(good());
  const Tensor w = session.parameter("W");

  auto bad_shape = good();
  bad_shape["X"] = Tensor(DType::Float, {2, 5});
  EXPECT_THROW(session.train_step(bad_shape), DataError);  // not the model input's shape
  auto bad_label = good();
  bad_label["label"] = Tensor(DType::Float, {3, 3});
  // 3 targets for 2 rows: the loss node cannot broadcast them.
  EXPECT_NE(test::error_of<ShapeError>([&] { session.train_step(bad_label); }).find("loss"), std::string::npos);
  auto nan = good();
  nan["X"].data<float>()[0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(session.train_step(nan), NonFiniteLoss);
  EXPECT_THROW(session.train_step({{"X", good().at("X")}}), Error);  // no label
  EXPECT_THROW(session.eval_step(bad_shape), DataError);
  // Every failure is an onnxtrain::Error carrying context.
  EXPECT_NE(test::error_of([&] { session.train_step(bad_shape); }).find("X"), std::string::npos);

  EXPECT_EQ(session.step(), 1);
  EXPECT_EQ(session.pending_micro_batches(), 0);
  EXPECT_TRUE(same(session.parameter("W"), w));
  session.train_step(good());
  EXPECT_EQ(session.step(), 2);
  for (const auto& name : {"W", "b"})
    EXPECT_TRUE(same(model.initializer(name), reference_model.initializer(name))) << name;
  EXPECT_TRUE(std::isfinite(session.eval_step(good()).loss));
}

TEST(StepRecovery, FailedAccumulationKeepsEarlierMicroBatches) {
  TrainingOptions o = adam();
  o.accumulate = 2;
  Model model = Model::from_text(kModel);
  TrainingSession session(model, o);
  session.train_step(good());
  auto bad_shape = good();
  bad_shape["X"] = Tensor(DType::Float, {2, 5});
  EXPECT_THROW(session.train_step(bad_shape), DataError);  // not the model input's shape
  EXPECT_EQ(session.pending_micro_batches(), 1);
  EXPECT_TRUE(session.train_step(good()).updated);
  EXPECT_EQ(session.step(), 1);
}

}  // namespace
