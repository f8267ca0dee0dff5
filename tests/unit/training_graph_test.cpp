#include <gtest/gtest.h>

#include <filesystem>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

const char* const kModel = test::kLinearModel;

TEST(TrainingSession, FindsTrainableParametersAndReportsTheLoss) {
  Model model = Model::from_text(kModel);
  TrainingOptions options;
  options.loss.kind = "mse";
  TrainingSession session(model, options);
  EXPECT_EQ(session.trainable(), (std::vector<std::string>{"W", "b"}));
  EXPECT_EQ(session.trainable_elements(), 15);
  Tensor x = Tensor::from_vector<float>({2, 4}, {1, 2, 3, 4, -1, 0, 1, 2});
  Tensor target(DType::Float, {2, 3});
  auto step = session.compute_gradients({{"X", x}, {"label", target}});
  EXPECT_GT(step.loss, 0);
  ASSERT_EQ(step.gradients.at("W").shape(), (Shape{4, 3}));
  // d mean((XW + b)^2) / db = 2 * mean over rows of (XW + b) / 3 outputs... checked exactly:
  auto y = InferenceSession(model).run({{"X", x}}).at("Y").to_vector<float>();
  for (int j = 0; j < 3; ++j)
    EXPECT_NEAR(step.gradients.at("b").data<float>()[j], 2.0 * (y[j] + y[3 + j]) / 6.0, 1e-6);
}

TEST(TrainingSession, FreezeAndTrainablePatterns) {
  Model model = Model::from_text(kModel);
  TrainingOptions options;
  options.loss.kind = "mse";
  options.freeze = "^W$";
  TrainingSession session(model, options);
  EXPECT_EQ(session.trainable(), (std::vector<std::string>{"b"}));
  options.freeze.clear();
  options.trainable = "nothing-matches";
  EXPECT_THROW(TrainingSession(model, options), DataError);
}

TEST(TrainingSession, ExportedTrainingGraphReloadsAndGivesIdenticalValues) {
  Model model = Model::from_text(kModel);
  TrainingOptions options;
  options.loss.kind = "mse";
  TrainingSession session(model, options);
  Tensor x = Tensor::from_vector<float>({2, 4}, {1, 2, 3, 4, -1, 0, 1, 2});
  Tensor target = Tensor::from_vector<float>({2, 3}, {1, 0, 1, 0, 1, 0});
  auto step = session.compute_gradients({{"X", x}, {"label", target}});

  auto path = (std::filesystem::temp_directory_path() / "onnxtrain_training_graph.onnx").string();
  session.export_training_graph(path);
  Model training_graph = Model::load(path);
  InferenceSession replay(training_graph);
  auto out = replay.run({{"X", x}, {"label", target}}, {session.loss_name(), "W_grad", "b_grad"});
  EXPECT_EQ(out.at(session.loss_name()).as_double()[0], step.loss);
  EXPECT_EQ(test::compare_tensors(out.at("W_grad"), step.gradients.at("W"), 0, 0), "");
  EXPECT_EQ(test::compare_tensors(out.at("b_grad"), step.gradients.at("b"), 0, 0), "");
  std::filesystem::remove(path);
}

TEST(TrainingSession, UnknownLossIsAClearError) {
  Model model = Model::from_text(kModel);
  TrainingOptions options;
  options.loss.kind = "hinge";
  EXPECT_THROW(TrainingSession(model, options), ModelError);
}

}  // namespace
