// Exported training models: ONNX TrainingInfoProto with the algorithm, optimizer state and
// step in initializers; loading one continues training bit-identically; bad training info
// is rejected on import.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;
namespace fs = std::filesystem;

namespace {

struct Sample {
  std::string path;
  std::map<std::string, Tensor> batch;
  explicit Sample(const std::string& m) {
    const std::string dir = test::source_dir() + "/models/" + m + "/";
    path = dir + m + "_op17_train.onnx";
    batch = {{"input", read_npz(dir + "golden.npz").at("input.input")}, {"label", read_npz(dir + "grads.npz").at("target")}};
  }
};

bool bit_identical(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

onnx::ModelProto read_proto(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  onnx::ModelProto proto;
  EXPECT_TRUE(proto.ParseFromIstream(&in));
  return proto;
}

class TrainingModel : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainingModel, ContinuesTrainingBitIdentically) {
  Sample s(GetParam());
  TrainingOptions options;
  options.optimizer = {.kind = "adamw", .lr = 1e-2, .weight_decay = 0.01};
  options.optimizer.groups = {{.pattern = "bias", .lr = 5e-3}};
  options.schedule = parse_schedule("cosine");
  options.total_steps = 6;
  options.bn_running_var = "pytorch";
  options.clip_grad_norm = 0.5;
  const std::string file = (fs::temp_directory_path() / ("onnxtrain_training_" + GetParam() + ".onnx")).string();

  Model straight = Model::load(s.path);
  TrainingSession a(straight, options);
  for (int i = 0; i < 3; ++i) a.train_step(s.batch);
  a.export_training_model(file);
  for (int i = 0; i < 3; ++i) a.train_step(s.batch);

  Model exported = Model::load(file);  // validates the TrainingInfoProto
  auto restored = training_options_of(exported);
  ASSERT_TRUE(restored.has_value());
  EXPECT_EQ(restored->optimizer.kind, "adamw");
  EXPECT_EQ(restored->total_steps, 6);
  TrainingSession b(exported, *restored);
  EXPECT_EQ(b.step(), 3);
  for (int i = 0; i < 3; ++i) b.train_step(s.batch);
  for (const auto& name : straight.initializer_names())
    EXPECT_TRUE(bit_identical(straight.initializer(name), exported.initializer(name))) << name;

  onnx::ModelProto proto = read_proto(file);
  ASSERT_EQ(proto.training_info_size(), 1);
  const auto& info = proto.training_info(0);
  std::set<std::string> bound;
  for (const auto& b : info.update_binding()) bound.insert(b.key());
  for (const auto& name : a.trainable()) {
    EXPECT_TRUE(bound.count(name)) << name;
    EXPECT_TRUE(bound.count(name + ".exp_avg")) << name;
  }
  EXPECT_TRUE(bound.count("onnxtrain.step"));
  // The algorithm is the session's one training graph: clipping and the update are nodes.
  std::set<std::string> ops;
  for (const auto& n : info.algorithm().node()) ops.insert(n.op_type());
  EXPECT_TRUE(ops.count("ClipGradNorm"));
  EXPECT_TRUE(ops.count("AdamW"));
  // The algorithm reads parameters from the main graph instead of carrying copies.
  for (const auto& t : info.algorithm().initializer()) EXPECT_FALSE(bound.count(t.name())) << t.name();
  fs::remove(file);
}

INSTANTIATE_TEST_SUITE_P(Samples, TrainingModel, ::testing::Values("mlp", "resnet"));

TEST(TrainingModel, InvalidTrainingInfoIsRejectedOnImport) {
  Sample s("mlp");
  Model model = Model::load(s.path);
  TrainingSession session(model, TrainingOptions{.optimizer = {.kind = "sgd", .lr = 0.1, .momentum = 0.9}});
  session.train_step(s.batch);
  const std::string file = (fs::temp_directory_path() / "onnxtrain_training_bad.onnx").string();
  session.export_training_model(file);
  const onnx::ModelProto good = read_proto(file);
  auto expect_rejected = [&](const onnx::ModelProto& bad, const std::string& needle) {
    std::string bytes;
    bad.SerializeToString(&bytes);
    try {
      Model::from_bytes(bytes.data(), bytes.size());
      ADD_FAILURE() << "accepted; expected an error mentioning " << needle;
    } catch (const ModelError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  onnx::ModelProto bad = good;
  bad.mutable_training_info(0)->mutable_update_binding(0)->set_key("no_such_weight");
  expect_rejected(bad, "'no_such_weight' is not an initializer");
  bad = good;
  bad.mutable_training_info(0)->mutable_update_binding(0)->set_value("no_such_output");
  expect_rejected(bad, "no_such_output");
  bad = good;
  *bad.mutable_training_info(0)->add_update_binding() = good.training_info(0).update_binding(0);
  expect_rejected(bad, "bound twice");
  bad = good;
  bad.mutable_training_info(0)->mutable_algorithm()->mutable_node(0)->set_op_type("NoSuchOp");
  expect_rejected(bad, "training_info[0].algorithm");
  fs::remove(file);
}

}  // namespace
