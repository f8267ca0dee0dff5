// The session calls that mirror ONNX Runtime's training API: learning rate get/set,
// parameters by name (copies and views), the contiguous parameter buffer, inference export
// with chosen outputs, typed Tensor views and the version.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

const char* const kModel = test::kLinearModel;

std::map<std::string, Tensor> batch() { return test::linear_batch(); }

TrainingOptions sgd(double lr = 0.01) {
  TrainingOptions o;
  o.loss.kind = "mse";
  o.optimizer.lr = lr;
  return o;
}

TEST(SessionApi, SetLrReplacesTheSchedule) {
  Model model = Model::from_text(kModel);
  TrainingOptions o = sgd(0.1);
  o.schedule = parse_schedule("step:1:0.5");
  TrainingSession session(model, o);
  EXPECT_DOUBLE_EQ(session.current_lr(), 0.1);
  EXPECT_DOUBLE_EQ(session.train_step(batch()).lr, 0.1);
  EXPECT_DOUBLE_EQ(session.current_lr(), 0.05);
  session.set_lr(0.02);
  EXPECT_DOUBLE_EQ(session.current_lr(), 0.02);
  EXPECT_DOUBLE_EQ(session.train_step(batch()).lr, 0.02);
  EXPECT_DOUBLE_EQ(session.current_lr(), 0.02);
  session.set_schedule(parse_schedule("exponential:0.5"), 0);
  EXPECT_DOUBLE_EQ(session.current_lr(), 0.02 * 0.25);  // step 2 of the new schedule
  EXPECT_THROW(session.set_lr(-1), DataError);
}

TEST(SessionApi, SetLrMatchesASessionCreatedWithThatLr) {
  Model a = Model::from_text(kModel), b = Model::from_text(kModel);
  TrainingSession sa(a, sgd(0.5));
  sa.set_lr(0.01);
  TrainingSession sb(b, sgd(0.01));
  sa.train_step(batch());
  sb.train_step(batch());
  EXPECT_EQ(test::compare_tensors(a.initializer("W"), b.initializer("W"), 0, 0), "");
}

TEST(SessionApi, ParametersByNameCopiesAndViews) {
  Model model = Model::from_text(kModel);
  TrainingSession session(model, sgd());
  Tensor copy = session.parameter("W");
  Tensor view = session.parameter_view("W");
  session.train_step(batch());
  // The view follows the update; the copy does not.
  EXPECT_NE(copy.to_vector<float>(), view.to_vector<float>());
  EXPECT_EQ(view.to_vector<float>(), model.initializer("W").to_vector<float>());
  // Writing through the view changes what the session trains and what the model saves.
  view.data<float>()[0] = 42;
  EXPECT_EQ(session.parameter("W").data<float>()[0], 42);
  session.set_parameter("b", Tensor::from_vector<float>({3}, {7, 8, 9}));
  EXPECT_EQ(model.initializer("b").to_vector<float>(), (std::vector<float>{7, 8, 9}));
  EXPECT_THROW(session.set_parameter("b", Tensor::from_vector<float>({2}, {1, 2})), ShapeError);
  EXPECT_THROW(session.parameter("nope"), DataError);
}

TEST(SessionApi, ContiguousBufferRoundTrips) {
  Model model = Model::from_text(kModel);
  TrainingSession session(model, sgd());
  Tensor buffer = session.copy_parameters_to_buffer();
  ASSERT_EQ(buffer.shape(), (Shape{15}));
  EXPECT_FLOAT_EQ(buffer.data<float>()[0], 0.1f);   // W first (trainable() order) ...
  EXPECT_FLOAT_EQ(buffer.data<float>()[12], 0.1f);  // ... then b
  const std::vector<float> before = buffer.to_vector<float>();
  session.train_step(batch());
  // Caller memory, through a typed view.
  std::vector<float> mine(15);
  Tensor into = Tensor::view(std::span(mine), {15});
  session.copy_parameters_to_buffer(into);
  EXPECT_NE(mine, before);
  session.copy_buffer_to_parameters(buffer);
  EXPECT_EQ(session.copy_parameters_to_buffer().to_vector<float>(), before);
  Tensor wrong(DType::Float, {14});
  EXPECT_THROW(session.copy_buffer_to_parameters(wrong), ShapeError);
  Tensor wrong_type(DType::Double, {15});
  EXPECT_THROW(session.copy_parameters_to_buffer(wrong_type), ShapeError);
}

TEST(SessionApi, ExportInferenceModelWithChosenOutputs) {
  Model model = Model::from_text(kModel);
  TrainingSession session(model, sgd());
  session.train_step(batch());
  const auto path = (std::filesystem::temp_directory_path() / "onnxtrain_select_outputs.onnx").string();
  session.export_inference_model(path, {"H"});
  Model exported = Model::load(path);
  ASSERT_EQ(exported.outputs().size(), 1u);
  EXPECT_EQ(exported.outputs()[0].name, "H");
  EXPECT_EQ(exported.initializer_names(), (std::vector<std::string>{"W"}));  // b is not needed
  auto h = InferenceSession(exported).run({{"X", batch().at("X")}}).at("H");
  auto expected = InferenceSession(model).run({{"X", batch().at("X")}}, {"H"}).at("H");
  EXPECT_EQ(test::compare_tensors(h, expected, 0, 0), "");
  EXPECT_THROW(session.export_inference_model(path, {"nope"}), ModelError);
  std::filesystem::remove(path);
}

TEST(TensorView, TypedViewsShareMemoryAndCheckShapes) {
  std::vector<double> d(6, 1.0);
  Tensor t = Tensor::view(std::span(d), {2, 3});
  EXPECT_EQ(t.dtype(), DType::Double);
  t.data<double>()[4] = 5;
  EXPECT_EQ(d[4], 5);
  std::vector<int64_t> i64(4);
  EXPECT_EQ(Tensor::view(std::span(i64), {4}).dtype(), DType::Int64);
  std::vector<int32_t> i32(4);
  EXPECT_EQ(Tensor::view(std::span(i32), {2, 2}).dtype(), DType::Int32);
  uint8_t u8[3] = {};
  EXPECT_EQ(Tensor::view(std::span(u8), {3}).dtype(), DType::UInt8);
  bool flags[2] = {};
  EXPECT_EQ(Tensor::view(std::span(flags), {2}).dtype(), DType::Bool);
  std::vector<float> f(6);
  EXPECT_THROW(Tensor::view(std::span(f), {4}), ShapeError);
  EXPECT_THROW(Tensor::view(std::span(f), {-2, -3}), ShapeError);
}

TEST(Version, MacrosMatchTheLibrary) {
  EXPECT_STREQ(version(), ONNXTRAIN_VERSION_STRING);
  EXPECT_EQ(ONNXTRAIN_VERSION, ONNXTRAIN_VERSION_MAJOR * 10000 + ONNXTRAIN_VERSION_MINOR * 100 + ONNXTRAIN_VERSION_PATCH);
}

}  // namespace
