// Tensors whose stored data does not match their dims are refused by name before any ONNX
// code reads them: onnx 1.12's shape inference copies an int64 raw_data whose length is not
// a multiple of 8 past the end of its buffer (found by the model_import fuzz target).
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include "onnxtrain/onnxtrain.h"

using namespace onnxtrain;

namespace {

// Reshape of x by the int64 initializer 'target_shape' = {3, 2}.
onnx::ModelProto reshape_model() {
  onnx::ModelProto proto;
  proto.ParseFromString(Model::from_text(R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[2, 3] x) => (float[3, 2] y) <int64[2] target_shape = {3, 2}> {
  y = Reshape(x, target_shape)
})").serialize());
  return proto;
}

onnx::TensorProto& target_shape(onnx::ModelProto& proto) {
  for (auto& t : *proto.mutable_graph()->mutable_initializer())
    if (t.name() == "target_shape") return t;
  throw std::logic_error("no target_shape");
}

// Loads `proto` from memory and returns the message of the ModelError it must throw.
std::string refusal(const onnx::ModelProto& proto) {
  const std::string bytes = proto.SerializeAsString();
  try {
    (void)Model::from_bytes(bytes.data(), bytes.size());
  } catch (const ModelError& e) {
    return e.what();
  }
  ADD_FAILURE() << "the model loaded";
  return "";
}

TEST(StoredTensors, TheWellFormedModelLoads) {
  const onnx::ModelProto proto = reshape_model();
  const std::string bytes = proto.SerializeAsString();
  Model m = Model::from_bytes(bytes.data(), bytes.size());
  EXPECT_EQ(m.info().outputs.at(0).dims, (std::vector<std::string>{"3", "2"}));
}

TEST(StoredTensors, RawDataThatIsNotAWholeNumberOfElementsIsRefused) {
  onnx::ModelProto proto = reshape_model();
  onnx::TensorProto& t = target_shape(proto);
  t.clear_int64_data();
  t.set_raw_data(std::string(15, '\1'));
  const std::string msg = refusal(proto);
  EXPECT_NE(msg.find("'target_shape'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("16 bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("stores 15 bytes"), std::string::npos) << msg;
}

TEST(StoredTensors, TypedDataShorterThanTheDimsIsRefused) {
  onnx::ModelProto proto = reshape_model();
  onnx::TensorProto& t = target_shape(proto);
  t.clear_raw_data();
  t.clear_int64_data();
  t.add_int64_data(3);
  const std::string msg = refusal(proto);
  EXPECT_NE(msg.find("'target_shape'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("stores 8 bytes"), std::string::npos) << msg;
}

TEST(StoredTensors, DataInTheWrongTypedFieldIsRefused) {
  onnx::ModelProto proto = reshape_model();
  onnx::TensorProto& t = target_shape(proto);
  t.clear_raw_data();
  t.clear_int64_data();
  t.add_float_data(3);
  t.add_float_data(2);
  const std::string msg = refusal(proto);
  EXPECT_NE(msg.find("'target_shape'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("stores 0 bytes"), std::string::npos) << msg;
}

TEST(StoredTensors, AConstantInsideASubgraphIsChecked) {
  onnx::ModelProto proto = reshape_model();
  auto* node = proto.mutable_graph()->add_node();
  node->set_op_type("If");
  node->add_input("cond");
  node->add_output("branch_out");
  auto* branch = node->add_attribute();
  branch->set_name("then_branch");
  branch->set_type(onnx::AttributeProto::GRAPH);
  auto* constant = branch->mutable_g()->add_node();
  constant->set_op_type("Constant");
  constant->add_output("c");
  auto* value = constant->add_attribute();
  value->set_name("value");
  value->set_type(onnx::AttributeProto::TENSOR);
  onnx::TensorProto* t = value->mutable_t();
  t->set_name("branch_constant");
  t->set_data_type(onnx::TensorProto::INT64);
  t->add_dims(1);
  t->set_raw_data(std::string(12, '\0'));
  const std::string msg = refusal(proto);
  EXPECT_NE(msg.find("'branch_constant'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("stores 12 bytes"), std::string::npos) << msg;
}

TEST(StoredTensors, AnImpossibleShapeIsRefused) {
  onnx::ModelProto proto = reshape_model();
  onnx::TensorProto& t = target_shape(proto);
  t.set_dims(0, -2);
  const std::string msg = refusal(proto);
  EXPECT_NE(msg.find("'target_shape'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("invalid shape"), std::string::npos) << msg;
}

}  // namespace
