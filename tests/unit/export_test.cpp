#include <gtest/gtest.h>
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <filesystem>
#include <fstream>

#include "graph/exporter.h"
#include "graph/importer.h"
#include "onnxtrain/onnxtrain.h"
#include "src/model_file.h"

using namespace onnxtrain;

namespace {

const char* kModel = R"(
  <ir_version: 8, opset_import: ["" : 17], producer_name: "unit-test">
  g (float[N, 3] X) => (float[N, 3] Y)
  <float[3] bias = {0.5, -0.5, 1.0}>
  {
    C = Constant <value = float[3] {1, 2, 3}> ()
    A = Add(X, bias)
    M = Mul(A, C)
    Y = Relu(M)
  }
)";

std::string describe_graph(const graph::Graph& g) {
  std::string s;
  for (const auto* v : g.inputs) s += "in " + v->name + " " + dtype_name(v->dtype) + "\n";
  for (const auto* v : g.outputs) s += "out " + v->name + "\n";
  for (const auto& n : g.nodes()) {
    s += n->op_type + "(";
    for (const auto* in : n->inputs) s += (in ? in->name : "") + ",";
    s += ")->";
    for (const auto* out : n->outputs) s += (out ? out->name : "") + ",";
    s += " attrs " + std::to_string(n->attributes.size()) + "\n";
  }
  return s;
}

}  // namespace

TEST(Export, GraphRoundTripIsIdenticalAndPassesChecker) {
  onnx::ModelProto proto;
  graph::load_model_text(kModel, proto);
  auto g1 = graph::import_graph(proto, {});
  onnx::ModelProto exported;
  graph::export_graph(*g1, exported);
  EXPECT_NO_THROW(onnx::checker::check_model(exported));
  auto g2 = graph::import_graph(exported, {});
  EXPECT_EQ(describe_graph(*g1), describe_graph(*g2));
  // Folded Constant nodes are written as initializers; values survive.
  EXPECT_EQ(g2->value("C").data->to_vector<float>(), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(g2->value("bias").data->to_vector<float>(), (std::vector<float>{0.5, -0.5, 1.0}));
}

TEST(Export, SavedModelKeepsEverythingButNewInitializerValues) {
  Model model = Model::from_text(kModel);
  model.set_initializer("bias", Tensor::from_vector<float>({3}, {1, 2, 3}));
  auto path = (std::filesystem::temp_directory_path() / "onnxtrain_export_test.onnx").string();
  model.save(path);
  Model reloaded = Model::load(path);
  EXPECT_EQ(reloaded.initializer("bias").to_vector<float>(), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(reloaded.info().producer, "unit-test");
  onnx::ModelProto original, saved;
  graph::load_model_text(kModel, original);
  graph::load_model_file(path, saved);
  ASSERT_EQ(saved.graph().node_size(), original.graph().node_size());
  for (int i = 0; i < saved.graph().node_size(); ++i)
    EXPECT_EQ(saved.graph().node(i).SerializeAsString(), original.graph().node(i).SerializeAsString());
  std::filesystem::remove(path);
}

TEST(Export, MetadataSetOnTheModelIsSavedAndReplacedNotDuplicated) {
  Model model = Model::from_text(kModel);
  model.set_metadata("names", "[\"cat\"]");
  model.set_metadata("names", "[\"cat\", \"dog\"]");
  model.set_metadata("stride", "[8]");
  auto path = (std::filesystem::temp_directory_path() / "onnxtrain_metadata_test.onnx").string();
  model.save_inference(path);
  const auto metadata = Model::load(path).metadata();
  EXPECT_EQ(metadata.at("names"), "[\"cat\", \"dog\"]");
  EXPECT_EQ(metadata.at("stride"), "[8]");
  onnx::ModelProto saved;
  graph::load_model_file(path, saved);
  EXPECT_EQ(saved.metadata_props_size(), static_cast<int>(metadata.size()));
  std::filesystem::remove(path);
}

TEST(Export, RejectsInitializerOfWrongShape) {
  Model model = Model::from_text(kModel);
  EXPECT_THROW(model.set_initializer("bias", Tensor(DType::Float, {4})), ShapeError);
  EXPECT_THROW(model.set_initializer("nope", Tensor(DType::Float, {3})), ModelError);
}

TEST(Import, ReadsExternalData) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / "onnxtrain_external_test";
  fs::create_directories(dir);
  onnx::ModelProto proto;
  graph::load_model_text(kModel, proto);
  auto* init = proto.mutable_graph()->mutable_initializer(0);
  std::vector<float> values{4, 5, 6};
  {
    std::ofstream out(dir / "weights.bin", std::ios::binary);
    out.write("padding!", 8);
    out.write(reinterpret_cast<const char*>(values.data()), 12);
  }
  init->clear_float_data();
  init->clear_raw_data();
  init->set_data_location(onnx::TensorProto::EXTERNAL);
  auto add = [&](const char* k, const std::string& v) {
    auto* e = init->add_external_data();
    e->set_key(k);
    e->set_value(v);
  };
  add("location", "weights.bin");
  add("offset", "8");
  add("length", "12");
  save_model_file(proto, (dir / "model.onnx").string());
  Model model = Model::load((dir / "model.onnx").string());
  EXPECT_EQ(model.initializer("bias").to_vector<float>(), values);
  fs::remove_all(dir);
}

TEST(Import, MalformedFileNamesTheFile) {
  auto path = (std::filesystem::temp_directory_path() / "onnxtrain_garbage.onnx").string();
  {
    std::ofstream out(path, std::ios::binary);
    out << "this is not a protobuf \xff\xff\xff";
  }
  try {
    Model::load(path);
    FAIL();
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}
