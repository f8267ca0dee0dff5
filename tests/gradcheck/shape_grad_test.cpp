// Gradient rules of the shape family (ops/shape.cpp) against finite differences, in float64
// (every kernel of the family moves bytes, so double works everywhere), over the opset forms
// (attribute vs input operands, constant vs run-time operands) and attribute variants.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include <onnx/onnx_pb.h>

#include "graph/importer.h"
#include "graph/passes/expand_gradient.h"
#include "src/executor.h"
#include "tests/support/gradcheck.h"
#include "tests/support/node_case.h"

using namespace onnxtrain;
using onnxtrain::test::GradCase;

namespace {

struct ShapeCase {
  std::string name;
  int opset;
  std::string params;  // graph inputs, e.g. "double[2,3] X, int64[2] S"
  std::string body;    // nodes; the checked output is Y
  std::map<std::string, Tensor> inputs;
  std::vector<std::string> wrt = {};
  DType dtype = DType::Double;
  int y_rank = -1;  // default: the rank of input X (or A)
};

void PrintTo(const ShapeCase& c, std::ostream* os) { *os << c.name; }

Tensor D(const Shape& shape, uint64_t seed = 1) { return test::random_tensor(DType::Double, shape, seed); }
Tensor F(const Shape& shape, uint64_t seed = 1) { return test::random_tensor(DType::Float, shape, seed); }
Tensor I(std::vector<int64_t> v) { return Tensor::from_vector<int64_t>({static_cast<int64_t>(v.size())}, v); }

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

class ShapeGrad : public ::testing::TestWithParam<ShapeCase> {};

TEST_P(ShapeGrad, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  GradCase c;
  int rank = p.y_rank;
  if (rank < 0) rank = static_cast<int>((p.inputs.count("X") ? p.inputs.at("X") : p.inputs.at("A")).rank());
  std::string y_type = p.dtype == DType::Double ? "double" : "float";
  if (rank > 0) {
    y_type += "[?";
    for (int d = 1; d < rank; ++d) y_type += ",?";
    y_type += "]";
  }
  c.model_text = test::model_header(p.opset) + "g (" + p.params + ") => (" +
                 y_type + " Y) { " + p.body + " }";
  c.inputs = p.inputs;
  c.wrt = p.wrt;
  EXPECT_EQ(test::check_gradients(c), "") << c.model_text;
}

std::vector<ShapeCase> view_cases() {
  return {
      {"Identity", 13, "double[2,3] X", "Y = Identity(X)", {{"X", D({2, 3})}}},
      {"Reshape13Const", 13, "double[2,3,4] X", "S = Constant <value = int64[2] {4, -1}> () Y = Reshape(X, S)",
       {{"X", D({2, 3, 4})}},
       {}, DType::Double, 2},
      {"Reshape13CopyDim", 13, "double[2,3,4] X", "S = Constant <value = int64[3] {0, 4, 3}> () Y = Reshape(X, S)",
       {{"X", D({2, 3, 4})}},
       {}, DType::Double, 3},
      {"Reshape13Runtime", 13, "double[2,3,4] X, int64[2] S", "Y = Reshape(X, S)", {{"X", D({2, 3, 4})}, {"S", I({6, 4})}},
       {}, DType::Double, 2},
      {"Reshape14AllowZero", 14, "double[2,3,4] X",
       "S = Constant <value = int64[2] {12, 2}> () Y = Reshape <allowzero = 1> (X, S)", {{"X", D({2, 3, 4})}},
       {}, DType::Double, 2},
      {"FlattenAxis0", 13, "double[2,3,4] X", "Y = Flatten <axis = 0> (X)", {{"X", D({2, 3, 4})}},
       {}, DType::Double, 2},
      {"FlattenAxis2", 13, "double[2,3,4] X", "Y = Flatten <axis = 2> (X)", {{"X", D({2, 3, 4})}},
       {}, DType::Double, 2},
      {"FlattenNegative", 13, "double[2,3,4] X", "Y = Flatten <axis = -1> (X)", {{"X", D({2, 3, 4})}},
       {}, DType::Double, 2},
      {"Flatten8Default", 8, "double[2,3,4] X", "Y = Flatten(X)", {{"X", D({2, 3, 4})}},
       {}, DType::Double, 2},
      {"Squeeze11Attr", 11, "double[2,1,3,1] X", "Y = Squeeze <axes = [1, -1]> (X)", {{"X", D({2, 1, 3, 1})}},
       {}, DType::Double, 2},
      {"Squeeze11All", 11, "double[2,1,3,1] X", "Y = Squeeze(X)", {{"X", D({2, 1, 3, 1})}},
       {}, DType::Double, 2},
      {"Squeeze13Const", 13, "double[2,1,3,1] X", "A = Constant <value = int64[1] {1}> () Y = Squeeze(X, A)",
       {{"X", D({2, 1, 3, 1})}},
       {}, DType::Double, 3},
      {"Squeeze13Runtime", 13, "double[2,1,3,1] X, int64[2] A", "Y = Squeeze(X, A)",
       {{"X", D({2, 1, 3, 1})}, {"A", I({3, 1})}},
       {}, DType::Double, 2},
      {"Squeeze13All", 13, "double[1,3,1] X", "Y = Squeeze(X)", {{"X", D({1, 3, 1})}},
       {}, DType::Double, 1},
      {"Unsqueeze11Attr", 11, "double[2,3] X", "Y = Unsqueeze <axes = [0, -1]> (X)", {{"X", D({2, 3})}},
       {}, DType::Double, 4},
      {"Unsqueeze13Const", 13, "double[2,3] X", "A = Constant <value = int64[2] {1, 3}> () Y = Unsqueeze(X, A)",
       {{"X", D({2, 3})}},
       {}, DType::Double, 4},
      {"Unsqueeze13Runtime", 13, "double[2,3] X, int64[1] A", "Y = Unsqueeze(X, A)", {{"X", D({2, 3})}, {"A", I({-1})}},
       {}, DType::Double, 3},
      {"UnsqueezeScalar", 13, "double X", "A = Constant <value = int64[1] {0}> () Y = Unsqueeze(X, A)",
       {{"X", D({})}},
       {}, DType::Double, 1},
      // Shape and Size are not differentiable: the gradient flows through Mul only.
      {"SizeNotDifferentiable", 13, "double[2,3] X", "S = Size(X) C = Cast <to = 11> (S) Y = Mul(X, C)",
       {{"X", D({2, 3})}}},
      {"ShapeNotDifferentiable", 13, "double[2,3] X", "S = Shape(X) Z = Reshape(X, S) Y = Mul(Z, X)",
       {{"X", D({2, 3})}}},
  };
}

std::vector<ShapeCase> transpose_cases() {
  return {
      {"TransposeDefault", 13, "double[2,3,4] X", "Y = Transpose(X)", {{"X", D({2, 3, 4})}}},
      {"TransposeCycle", 13, "double[2,3,4] X", "Y = Transpose <perm = [1, 2, 0]> (X)", {{"X", D({2, 3, 4})}}},
      {"TransposeCycleBack", 13, "double[2,3,4] X", "Y = Transpose <perm = [2, 0, 1]> (X)", {{"X", D({2, 3, 4})}}},
      {"Transpose4d", 13, "double[2,3,4,5] X", "Y = Transpose <perm = [0, 2, 3, 1]> (X)", {{"X", D({2, 3, 4, 5})}}},
      {"Transpose8", 8, "double[3,4] X", "Y = Transpose(X)", {{"X", D({3, 4})}}},
      {"DepthToSpaceDCR", 13, "double[2,8,2,3] X", "Y = DepthToSpace <blocksize = 2, mode = \"DCR\"> (X)",
       {{"X", D({2, 8, 2, 3})}}},
      {"DepthToSpaceCRD", 13, "double[2,8,2,3] X", "Y = DepthToSpace <blocksize = 2, mode = \"CRD\"> (X)",
       {{"X", D({2, 8, 2, 3})}}},
      {"DepthToSpaceCRD3", 11, "double[1,18,2,2] X", "Y = DepthToSpace <blocksize = 3, mode = \"CRD\"> (X)",
       {{"X", D({1, 18, 2, 2})}}},
      {"DepthToSpace8", 8, "double[1,12,2,3] X", "Y = DepthToSpace <blocksize = 2> (X)", {{"X", D({1, 12, 2, 3})}}},
      {"SpaceToDepth", 13, "double[2,3,4,6] X", "Y = SpaceToDepth <blocksize = 2> (X)", {{"X", D({2, 3, 4, 6})}}},
      {"SpaceToDepth3", 8, "double[1,2,3,6] X", "Y = SpaceToDepth <blocksize = 3> (X)", {{"X", D({1, 2, 3, 6})}}},
  };
}

std::vector<ShapeCase> concat_split_cases() {
  const std::string three = "double[2,1,3] A, double[2,4,3] B, double[2,2,3] C";
  auto abc = [] { return std::map<std::string, Tensor>{{"A", D({2, 1, 3}, 1)}, {"B", D({2, 4, 3}, 2)}, {"C", D({2, 2, 3}, 3)}}; };
  return {
      {"Concat3All", 13, three, "Y = Concat <axis = 1> (A, B, C)", abc()},
      {"Concat3OnlyFirst", 13, three, "Y = Concat <axis = 1> (A, B, C)", abc(), {"A"}},
      {"Concat3OnlyMiddle", 13, three, "Y = Concat <axis = 1> (A, B, C)", abc(), {"B"}},
      {"Concat3OnlyLast", 13, three, "Y = Concat <axis = -2> (A, B, C)", abc(), {"C"}},
      {"Concat3Outer", 8, "double[1,3] A, double[4,3] B, double[2,3] C", "Y = Concat <axis = 0> (A, B, C)",
       {{"A", D({1, 3}, 1)}, {"B", D({4, 3}, 2)}, {"C", D({2, 3}, 3)}}},
      {"ConcatInner", 11, "double[2,3,1] A, double[2,3,2] B", "Y = Concat <axis = -1> (A, B)",
       {{"A", D({2, 3, 1}, 1)}, {"B", D({2, 3, 2}, 2)}}},
      {"ConcatSameInputTwice", 13, "double[2,3] A", "Y = Concat <axis = 0> (A, A)", {{"A", D({2, 3})}}},
      {"Split13Uneven", 13, "double[2,6,3] X",
       "S = Constant <value = int64[3] {1, 3, 2}> () P, Q, R = Split <axis = 1> (X, S) Y = Concat <axis = 1> (R, P, Q)",
       {{"X", D({2, 6, 3})}}},
      {"Split18NumOutputsUneven", 18, "double[2,7,3] X",
       "P, Q, R = Split <axis = 1, num_outputs = 3> (X) Y = Concat <axis = 1> (R, P, Q)", {{"X", D({2, 7, 3})}}},
      {"Split13OneOutputUsed", 13, "double[2,6,3] X",
       "S = Constant <value = int64[3] {1, 3, 2}> () P, Q, R = Split <axis = 1> (X, S) Y = Identity(Q)",
       {{"X", D({2, 6, 3})}}},
      {"Split13TwoOfThree", 13, "double[2,6,3] X",
       "S = Constant <value = int64[3] {4, 1, 1}> () P, Q, R = Split <axis = 1> (X, S) Y = Concat <axis = 1> (R, P)",
       {{"X", D({2, 6, 3})}}},
      {"Split13Runtime", 13, "double[6,3] X, int64[2] S", "P, Q = Split(X, S) Y = Mul(P, Q)",
       {{"X", D({6, 3})}, {"S", I({3, 3})}}},
      {"Split11AttrNegativeAxis", 11, "double[2,3,5] X",
       "P, Q = Split <axis = -1, split = [2, 3]> (X) Y = Concat <axis = -1> (Q, P)", {{"X", D({2, 3, 5})}}},
      {"Split8Equal", 8, "double[4,6] X", "P, Q, R = Split <axis = 1> (X) S = Add(P, Q) Y = Mul(S, R)", {{"X", D({4, 6})}}},
      {"Split8NegativeAxisOneUsed", 8, "double[4,6] X", "P, Q = Split <axis = -1> (X) Y = Identity(Q)",
       {{"X", D({4, 6})}}},
  };
}

std::vector<ShapeCase> slice_cases() {
  return {
      {"Slice13Steps", 13, "double[5,6] X",
       "S = Constant <value = int64[2] {1, -4}> () E = Constant <value = int64[2] {4, 100}> () "
       "A = Constant <value = int64[2] {0, 1}> () T = Constant <value = int64[2] {1, 2}> () Y = Slice(X, S, E, A, T)",
       {{"X", D({5, 6})}}},
      {"Slice13NegativeSteps", 13, "double[5,6] X",
       "S = Constant <value = int64[2] {-1, 4}> () E = Constant <value = int64[2] {-100, 0}> () "
       "A = Constant <value = int64[2] {0, 1}> () T = Constant <value = int64[2] {-2, -1}> () Y = Slice(X, S, E, A, T)",
       {{"X", D({5, 6})}}},
      {"Slice13ReverseAll", 13, "double[5,6] X",
       "S = Constant <value = int64[1] {" + std::to_string(kMax) + "}> () E = Constant <value = int64[1] {" +
           std::to_string(kMin) + "}> () A = Constant <value = int64[1] {-1}> () T = Constant <value = int64[1] {-1}> () "
           "Y = Slice(X, S, E, A, T)",
       {{"X", D({5, 6})}}},
      {"Slice13OutOfRange", 13, "double[4,7] X",
       "S = Constant <value = int64[1] {-100}> () E = Constant <value = int64[1] {" + std::to_string(kMax) +
           "}> () A = Constant <value = int64[1] {1}> () T = Constant <value = int64[1] {3}> () Y = Slice(X, S, E, A, T)",
       {{"X", D({4, 7})}}},
      {"Slice13StepBeyondDim", 13, "double[4,7] X",
       "S = Constant <value = int64[1] {-1}> () E = Constant <value = int64[1] {-100}> () "
       "A = Constant <value = int64[1] {0}> () T = Constant <value = int64[1] {-10}> () Y = Slice(X, S, E, A, T)",
       {{"X", D({4, 7})}}},
      {"Slice13NoAxesNoSteps", 13, "double[4,5,3] X",
       "S = Constant <value = int64[2] {1, 1}> () E = Constant <value = int64[2] {-1, 4}> () Y = Slice(X, S, E)",
       {{"X", D({4, 5, 3})}}},
      // An empty slice: the gradient is all zeros.
      {"Slice13Empty", 13, "double[4,5] X",
       "S = Constant <value = int64[1] {3}> () E = Constant <value = int64[1] {1}> () "
       "A = Constant <value = int64[1] {0}> () Y = Slice(X, S, E, A)",
       {{"X", D({4, 5})}}},
      {"Slice13Runtime", 13, "double[5,6,2] X, int64[2] S, int64[2] E, int64[2] A, int64[2] T", "Y = Slice(X, S, E, A, T)",
       {{"X", D({5, 6, 2})}, {"S", I({-2, 0})}, {"E", I({0, 5})}, {"A", I({-3, 1})}, {"T", I({-1, 2})}}},
      {"Slice10StartsEnds", 10, "double[5,6] X",
       "S = Constant <value = int64[2] {1, 2}> () E = Constant <value = int64[2] {3, 1000}> () Y = Slice(X, S, E)",
       {{"X", D({5, 6})}}},
      {"Slice9Attributes", 9, "double[5,6,3] X", "Y = Slice <starts = [1, -2], ends = [1000, -1], axes = [2, 0]> (X)",
       {{"X", D({5, 6, 3})}}},
      {"Slice8NoAxes", 8, "double[5,6] X", "Y = Slice <starts = [-3, 0], ends = [4, 2]> (X)", {{"X", D({5, 6})}}},
  };
}

std::vector<ShapeCase> expand_tile_cases() {
  return {
      {"ExpandBoth", 13, "double[3,1] X", "S = Constant <value = int64[3] {2, 3, 4}> () Y = Expand(X, S)",
       {{"X", D({3, 1})}},
       {}, DType::Double, 3},
      {"ExpandOneInShape", 13, "double[2,3] X", "S = Constant <value = int64[2] {1, 3}> () Y = Expand(X, S)",
       {{"X", D({2, 3})}}},
      {"ExpandScalarLike", 8, "double[1] X", "S = Constant <value = int64[2] {2, 3}> () Y = Expand(X, S)",
       {{"X", D({1})}}, {}, DType::Double, 2},
      {"ExpandRuntime", 13, "double[2,1,4] X, int64[4] S", "Y = Expand(X, S)", {{"X", D({2, 1, 4})}, {"S", I({3, 2, 5, 1})}},
       {}, DType::Double, 4},
      {"Tile13", 13, "double[2,3] X", "R = Constant <value = int64[2] {2, 3}> () Y = Tile(X, R)", {{"X", D({2, 3})}}},
      {"Tile13Ones", 13, "double[2,1,3] X", "R = Constant <value = int64[3] {1, 4, 1}> () Y = Tile(X, R)",
       {{"X", D({2, 1, 3})}}},
      {"Tile13InnerRepeat", 13, "double[2,3,2] X", "R = Constant <value = int64[3] {3, 1, 2}> () Y = Tile(X, R)",
       {{"X", D({2, 3, 2})}}},
      {"Tile13Runtime", 13, "double[3,2] X, int64[2] R", "Y = Tile(X, R)", {{"X", D({3, 2})}, {"R", I({2, 2})}}},
      {"Tile13ZeroRepeats", 13, "double[3,2] X", "R = Constant <value = int64[2] {0, 2}> () Y = Tile(X, R)",
       {{"X", D({3, 2})}}},
      {"Tile8Float", 8, "float[2,3] X", "R = Constant <value = int64[2] {3, 2}> () Y = Tile(X, R)", {{"X", F({2, 3})}},
       {}, DType::Float},
  };
}

std::vector<ShapeCase> pad_cases() {
  std::vector<ShapeCase> out;
  for (const char* mode : {"constant", "reflect", "edge"}) {
    const std::string m = mode, attr = std::string("mode = \"") + mode + "\"";
    out.push_back({"Pad13" + m, 13, "double[3,4] X",
                   "P = Constant <value = int64[4] {1, 2, 2, 3}> () Y = Pad <" + attr + "> (X, P)", {{"X", D({3, 4})}}});
    // Negative pads crop: axis 0 loses one row in front, axis 1 two columns at the end.
    out.push_back({"Pad13NegativePads" + m, 13, "double[4,5] X",
                   "P = Constant <value = int64[4] {-1, 2, 1, -2}> () Y = Pad <" + attr + "> (X, P)", {{"X", D({4, 5})}}});
    out.push_back({"Pad13Rank3" + m, 13, "double[2,3,4] X",
                   "P = Constant <value = int64[6] {0, 2, 1, 1, 1, 3}> () Y = Pad <" + attr + "> (X, P)",
                   {{"X", D({2, 3, 4})}}});
    out.push_back({"Pad11Runtime" + m, 11, "double[3,4] X, int64[4] P", "Y = Pad <" + attr + "> (X, P)",
                   {{"X", D({3, 4})}, {"P", I({2, -1, 0, 3})}}});
    out.push_back({"Pad8Attribute" + m, 8, "double[3,4] X", "Y = Pad <" + attr + ", pads = [0, 3, 2, 1]> (X)",
                   {{"X", D({3, 4})}}});
    out.push_back({"Pad1D" + m, 13, "double[5] X", "P = Constant <value = int64[2] {3, 4}> () Y = Pad <" + attr + "> (X, P)",
                   {{"X", D({5})}}});
    // Opset 18: pads for the listed axes only.
    out.push_back({"Pad18Axes" + m, 18, "double[2,3,4] X",
                   "P = Constant <value = int64[2] {1, 2}> () V = Constant <value = double {0.0}> () "
                   "A = Constant <value = int64[1] {-1}> () Y = Pad <" + attr + "> (X, P, V, A)",
                   {{"X", D({2, 3, 4})}}});
    out.push_back({"Pad13Float" + m, 13, "float[3,4] X",
                   "P = Constant <value = int64[4] {1, 2, 2, 1}> () Y = Pad <" + attr + "> (X, P)", {{"X", F({3, 4})}},
                   {}, DType::Float});
  }
  // Reflect pads wider than the axis wrap around (more than one mirrored contribution).
  out.push_back({"Pad13ReflectWide", 13, "double[2,3] X",
                 "P = Constant <value = int64[4] {1, 5, 2, 6}> () Y = Pad <mode = \"reflect\"> (X, P)", {{"X", D({2, 3})}}});
  out.push_back({"Pad19Wrap", 19, "double[3,4] X",
                 "P = Constant <value = int64[4] {1, 2, 2, 3}> () Y = Pad <mode = \"wrap\"> (X, P)", {{"X", D({3, 4})}}});
  out.push_back({"Pad19WrapWide", 19, "double[2,3] X",
                 "P = Constant <value = int64[4] {2, 5, 1, 6}> () Y = Pad <mode = \"wrap\"> (X, P)", {{"X", D({2, 3})}}});
  out.push_back({"Pad13EdgeWide", 13, "double[2,3] X",
                 "P = Constant <value = int64[4] {4, 5, 3, 6}> () Y = Pad <mode = \"edge\"> (X, P)", {{"X", D({2, 3})}}});
  // The fill value is differentiable: it receives every element of dY not read from X.
  out.push_back({"Pad13ConstantValue", 13, "double[3,4] X, double V",
                 "P = Constant <value = int64[4] {1, -1, 2, 3}> () Y = Pad(X, P, V)", {{"X", D({3, 4}, 1)}, {"V", D({}, 2)}}});
  out.push_back({"Pad13ConstantValueOnly", 13, "double[3,4] X, double V",
                 "P = Constant <value = int64[4] {1, 0, 0, 2}> () Y = Pad(X, P, V)", {{"X", D({3, 4}, 1)}, {"V", D({}, 2)}},
                 {"V"}});
  out.push_back({"Pad13ReflectValueIgnored", 13, "double[3,4] X, double V",
                 "P = Constant <value = int64[4] {1, 1, 1, 1}> () Y = Pad <mode = \"reflect\"> (X, P, V)",
                 {{"X", D({3, 4}, 1)}, {"V", D({}, 2)}}});
  return out;
}

// Sizes above the kernels' parallel threshold (64 KiB), so their threaded paths are checked.
std::vector<ShapeCase> large_cases() {
  return {
      {"LargeSliceNegativeStep", 13, "double[64,300] X",
       "S = Constant <value = int64[2] {-1, 1}> () E = Constant <value = int64[2] {-1000, 299}> () "
       "A = Constant <value = int64[2] {0, 1}> () T = Constant <value = int64[2] {-2, 1}> () Y = Slice(X, S, E, A, T)",
       {{"X", D({64, 300})}}},
      {"LargeTile", 13, "double[48,100] X", "R = Constant <value = int64[2] {3, 2}> () Y = Tile(X, R)",
       {{"X", D({48, 100})}}},
      {"LargePadReflect", 13, "double[64,300] X",
       "P = Constant <value = int64[4] {3, 5, 2, 7}> () Y = Pad <mode = \"reflect\"> (X, P)", {{"X", D({64, 300})}}},
      {"LargePadConstantCrop", 13, "double[64,300] X",
       "P = Constant <value = int64[4] {-3, 5, 2, -7}> () Y = Pad(X, P)", {{"X", D({64, 300})}}},
      {"LargeConcat", 13, "double[64,100] A, double[64,200] B", "Y = Concat <axis = 1> (A, B)",
       {{"A", D({64, 100}, 1)}, {"B", D({64, 200}, 2)}}, {"B"}},
      {"LargeDepthToSpaceCRD", 13, "double[2,64,16,16] X", "Y = DepthToSpace <blocksize = 2, mode = \"CRD\"> (X)",
       {{"X", D({2, 64, 16, 16})}}},
  };
}

template <typename Case>
std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return info.param.name;
}

INSTANTIATE_TEST_SUITE_P(Views, ShapeGrad, ::testing::ValuesIn(view_cases()), case_name<ShapeCase>);
INSTANTIATE_TEST_SUITE_P(Transposes, ShapeGrad, ::testing::ValuesIn(transpose_cases()), case_name<ShapeCase>);
INSTANTIATE_TEST_SUITE_P(ConcatSplit, ShapeGrad, ::testing::ValuesIn(concat_split_cases()), case_name<ShapeCase>);
INSTANTIATE_TEST_SUITE_P(Slice, ShapeGrad, ::testing::ValuesIn(slice_cases()), case_name<ShapeCase>);
INSTANTIATE_TEST_SUITE_P(ExpandTile, ShapeGrad, ::testing::ValuesIn(expand_tile_cases()), case_name<ShapeCase>);
INSTANTIATE_TEST_SUITE_P(Pad, ShapeGrad, ::testing::ValuesIn(pad_cases()), case_name<ShapeCase>);
INSTANTIATE_TEST_SUITE_P(Large, ShapeGrad, ::testing::ValuesIn(large_cases()), case_name<ShapeCase>);

// Forms that exist only below opset 8 cannot go through test::check_gradients: its loss
// (ai.onnxtrain.ReduceSumTo) has a gradient rule that emits Expand, which opsets < 8 lack.
// These cases state the loss sum(Y * R) in the model and differentiate it with the
// ai.onnx.preview.training Gradient op, whose seed is OnesLike (no Expand), then compare
// with central differences as check_gradients does.
struct LegacyCase {
  std::string name;
  int opset;
  std::string params;  // graph inputs (the checked double inputs and any others)
  std::string body;    // produces Y
  Shape y_shape;
  std::map<std::string, Tensor> inputs;
  std::vector<std::string> wrt;
  // Old schemas (Concat-1, Split-1, Pad-1, Reshape-1) have no type inference: their outputs
  // are declared as graph outputs, or autodiff would see values of unknown dtype.
  std::string declared = "";
};

void PrintTo(const LegacyCase& c, std::ostream* os) { *os << c.name; }

class ShapeGradLegacy : public ::testing::TestWithParam<LegacyCase> {};

TEST_P(ShapeGradLegacy, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  std::string ys = shape_str(p.y_shape), xs, gs;
  for (size_t i = 0; i < p.wrt.size(); ++i) {
    xs += std::string(i ? ", " : "") + "\"" + p.wrt[i] + "\"";
    gs += std::string(i ? ", " : "") + "G_" + p.wrt[i];
  }
  std::string outputs;
  for (const auto& w : p.wrt) outputs += ", double" + shape_str(p.inputs.at(w).shape()) + " G_" + w;
  const std::string text = test::model_header(p.opset, {{"ai.onnx.preview.training", 1}}) + "g (" + p.params + ", double" + ys +
                           " R) => (double" + ys + " Z" + outputs +
                           ", double" + ys + " Y" + p.declared + ") { " + p.body + " Z = Mul(Y, R) " + gs +
                           " = ai.onnx.preview.training.Gradient <xs = [" + xs + "], y = \"Z\"> (" +
                           [&] {
                             std::string a;
                             for (size_t i = 0; i < p.wrt.size(); ++i) a += (i ? ", " : "") + p.wrt[i];
                             return a;
                           }() +
                           ") }";
  onnx::ModelProto proto;
  graph::load_model_text(text, proto);
  auto g = graph::import_graph(proto, {});
  graph::expand_gradient_ops(*g);
  std::vector<std::string> fetch{"Z"};
  for (const auto& w : p.wrt) fetch.push_back("G_" + w);
  std::unordered_map<std::string, Tensor> feeds;
  for (const auto& [name, t] : p.inputs) feeds[name] = t.clone();
  feeds["R"] = test::random_tensor(DType::Double, p.y_shape, 99, 0.5, 1.5);
  Executor ex(*g, fetch);
  auto analytic = ex.run(feeds);
  auto loss = [&] {
    Tensor z = ex.run(feeds)[0];
    double sum = 0;
    for (int64_t i = 0; i < z.numel(); ++i) sum += z.data<double>()[i];
    return sum;
  };
  for (size_t w = 0; w < p.wrt.size(); ++w) {
    Tensor& x = feeds[p.wrt[w]];
    const Tensor& ga = analytic[w + 1];
    ASSERT_EQ(ga.shape(), x.shape()) << p.wrt[w];
    for (int64_t i = 0; i < x.numel(); ++i) {
      double& v = x.data<double>()[i];
      const double x0 = v, eps = 1e-6;
      v = x0 + eps;
      const double up = loss();
      v = x0 - eps;
      const double down = loss();
      v = x0;
      const double numeric = (up - down) / (2 * eps);
      EXPECT_NEAR(ga.data<double>()[i], numeric, 1e-7 + 1e-5 * std::abs(numeric)) << p.wrt[w] << " element " << i;
    }
  }
}

std::vector<LegacyCase> legacy_cases() {
  return {
      {"Reshape4Attribute", 4, "double[2,3,4] X", "Y = Reshape <shape = [4, 6]> (X)", {4, 6}, {{"X", D({2, 3, 4})}}, {"X"}},
      {"Concat1DefaultAxis", 1, "double[2,1] A, double[2,2] B", "Y = Concat(A, B)", {2, 3},
       {{"A", D({2, 1}, 1)}, {"B", D({2, 2}, 2)}}, {"A", "B"}},
      {"Concat1DefaultAxisOnlySecond", 3, "double[2,1] A, double[2,2] B", "Y = Concat(A, B)", {2, 3},
       {{"A", D({2, 1}, 1)}, {"B", D({2, 2}, 2)}}, {"B"}},
      {"Tile1TilesAxis", 1, "double[2,3] X",
       "T = Constant <value = int64[1] {3}> () A = Constant <value = int64[1] {1}> () Y = Tile(X, T, A)", {2, 9},
       {{"X", D({2, 3})}}, {"X"}},
      {"Tile5TilesAxis0", 5, "double[2,3] X",
       "T = Constant <value = int64[1] {2}> () A = Constant <value = int64[1] {0}> () Y = Tile(X, T, A)", {4, 3},
       {{"X", D({2, 3})}}, {"X"}},
      {"Pad1PaddingsEdge", 1, "double[3,4] X", "Y = Pad <mode = \"edge\", paddings = [1, 0, 2, 1]> (X)", {6, 5},
       {{"X", D({3, 4})}}, {"X"}},
      {"Pad1PaddingsReflect", 1, "double[3,4] X", "Y = Pad <mode = \"reflect\", paddings = [2, 1, 0, 2]> (X)", {5, 7},
       {{"X", D({3, 4})}}, {"X"}},
      {"Split1InputSplit", 1, "double[5,2] X",
       "S = Constant <value = int64[2] {2, 3}> () P, Q = Split <axis = 0> (X, S) Y = Concat <axis = 0> (Q, P)", {5, 2},
       {{"X", D({5, 2})}}, {"X"}, ", double[2,2] P, double[3,2] Q"},
      {"Slice1Attributes", 1, "double[4,5] X", "Y = Slice <starts = [1, -2], ends = [100, -1], axes = [0, 1]> (X)", {3, 1},
       {{"X", D({4, 5})}}, {"X"}},
  };
}

INSTANTIATE_TEST_SUITE_P(Legacy, ShapeGradLegacy, ::testing::ValuesIn(legacy_cases()), case_name<LegacyCase>);

}  // namespace
