#include <gtest/gtest.h>

#include "graph/ir.h"
#include "onnxtrain/onnxtrain.h"

using namespace onnxtrain;

TEST(Model, LoadsOnnxTextAndRunsRelu) {
  Model model = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[N, 3] X) => (float[N, 3] Y) { Y = Relu(X) }
  )");
  InferenceSession session(model);
  Tensor x = Tensor::from_vector<float>({2, 3}, {-1, 2, -3, 4, -5, 6});
  auto out = session.run({{"X", x}});
  EXPECT_EQ(out["Y"].to_vector<float>(), (std::vector<float>{0, 2, 0, 4, 0, 6}));
}

TEST(Model, RejectsWrongInputShapeWithClearMessage) {
  Model model = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[N, 3] X) => (float[N, 3] Y) { Y = Relu(X) }
  )");
  InferenceSession session(model);
  try {
    session.run({{"X", Tensor(DType::Float, {2, 4})}});
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("input 'X': expected float32[N,3], got float32[2,4]"), std::string::npos)
        << e.what();
  }
}

TEST(Model, ListsEveryUnsupportedOpBeforeRunning) {
  Model model = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 17, "custom" : 1]>
    g (float[N, 3] X) => (float[N, 3] Y) { A = custom.Foo(X) B = custom.Foo(A) Y = custom.Bar(B) }
  )");
  try {
    InferenceSession session(model);
    session.run({{"X", Tensor(DType::Float, {2, 3})}});
    FAIL() << "expected UnsupportedOp";
  } catch (const UnsupportedOp& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("3 node(s)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("custom.Foo"), std::string::npos) << msg;
    EXPECT_NE(msg.find("custom.Bar"), std::string::npos) << msg;
  }
}
