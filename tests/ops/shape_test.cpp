// Shape family behaviour the ONNX backend data does not cover: old opset forms, runtime
// (non-constant) operands, the parallel/tiled copy paths, views, dtypes and error messages.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <numeric>
#include <string>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/node_case.h"

using namespace onnxtrain;
using test::expect_error;

namespace {

Tensor run1(const std::string& text, const std::map<std::string, Tensor>& feeds, const std::string& out = "Y") {
  return test::run_model(text, feeds).at(out);
}

std::string model(int opset, const std::string& signature, const std::string& body) {
  return test::model_header(opset) + "g " + signature + " {\n" + body + "\n}";
}

template <typename T>
Tensor iota_tensor(Shape shape) {
  std::vector<T> v(shape_numel(shape));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<T>(i);
  return Tensor::from_vector<T>(shape, v);
}

// Reference transpose by index arithmetic.
std::vector<float> transpose_ref(const Tensor& x, const std::vector<int64_t>& perm) {
  const Shape& s = x.shape();
  Shape out_shape;
  for (int64_t p : perm) out_shape.push_back(s[p]);
  std::vector<int64_t> in_strides(s.size(), 1);
  for (int d = static_cast<int>(s.size()) - 2; d >= 0; --d) in_strides[d] = in_strides[d + 1] * s[d + 1];
  std::vector<float> out(x.numel());
  std::vector<int64_t> idx(s.size(), 0);
  const float* src = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t off = 0;
    for (size_t d = 0; d < perm.size(); ++d) off += idx[d] * in_strides[perm[d]];
    out[i] = src[off];
    for (int d = static_cast<int>(perm.size()) - 1; d >= 0; --d) {
      if (++idx[d] < out_shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

}  // namespace

TEST(ShapeOps, ReshapeIsAViewAndOldAttributeFormWorks) {
  Tensor x = iota_tensor<float>({2, 3, 4});
  Tensor y = run1(model(17, "(float[2,3,4] X) => (float[4,6] Y)", "s = Constant<value = int64[2] {4, -1}>() Y = Reshape(X, s)"),
                  {{"X", x}});
  EXPECT_EQ(y.shape(), (Shape{4, 6}));
  EXPECT_EQ(y.raw(), x.raw());  // no copy
  Tensor y4 = run1(model(4, "(float[2,3,4] X) => (float[2,12] Y)", "Y = Reshape<shape = [0, -1]>(X)"), {{"X", x}});
  EXPECT_EQ(y4.shape(), (Shape{2, 12}));
}

TEST(ShapeOps, ReshapeWithRuntimeShapeInput) {
  const std::string text = model(14, "(float[2,3,4] X, int64[3] S) => (float[A,B,C] Y)", "Y = Reshape(X, S)");
  Model m = Model::from_text(text);
  InferenceSession session(m);
  Tensor x = iota_tensor<float>({2, 3, 4});
  // Same input signature, different shape values: the kernel must not bake the first one in.
  EXPECT_EQ(session.run({{"X", x}, {"S", Tensor::from_vector<int64_t>({3}, {4, 3, 2})}}).at("Y").shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(session.run({{"X", x}, {"S", Tensor::from_vector<int64_t>({3}, {0, -1, 2})}}).at("Y").shape(), (Shape{2, 6, 2}));
}

TEST(ShapeOps, ReshapeErrorsAreClear) {
  const std::string text = model(14, "(float[2,3] X, int64[2] S) => (float[A,B] Y)", "Y = Reshape(X, S)");
  Tensor x = iota_tensor<float>({2, 3});
  expect_error(text, {{"X", x}, {"S", Tensor::from_vector<int64_t>({2}, {4, 2})}}, "cannot reshape [2,3] to [4,2]");
  expect_error(text, {{"X", x}, {"S", Tensor::from_vector<int64_t>({2}, {-1, -1})}}, "more than one -1");
  expect_error(text, {{"X", x}, {"S", Tensor::from_vector<int64_t>({2}, {-1, 4})}}, "cannot infer the -1");
}

TEST(ShapeOps, SqueezeUnsqueezeAttributeForms) {
  Tensor x = iota_tensor<int32_t>({1, 3, 1});
  EXPECT_EQ(run1(model(11, "(int32[1,3,1] X) => (int32[3] Y)", "Y = Squeeze(X)"), {{"X", x}}).shape(), (Shape{3}));
  EXPECT_EQ(run1(model(11, "(int32[1,3,1] X) => (int32[1,3] Y)", "Y = Squeeze<axes = [-1]>(X)"), {{"X", x}}).shape(),
            (Shape{1, 3}));
  EXPECT_EQ(run1(model(11, "(int32[1,3,1] X) => (int32[1,1,3,1,1] Y)", "Y = Unsqueeze<axes = [0, -1]>(X)"), {{"X", x}}).shape(),
            (Shape{1, 1, 3, 1, 1}));
  expect_error(model(13, "(int32[1,3,1] X) => (int32[1,1] Y)", "a = Constant<value = int64[1] {1}>() Y = Squeeze(X, a)"),
               {{"X", x}}, "cannot squeeze axis 1");
}

TEST(ShapeOps, TransposeLargeMatchesReference) {
  // Sizes exercise the tiled path with ragged tiles, the single-axis moves and the
  // identity permutation; large enough to go parallel.
  Tensor x = iota_tensor<float>({3, 67, 129, 5});
  for (std::vector<int64_t> perm : {std::vector<int64_t>{0, 2, 1, 3}, {0, 3, 1, 2}, {0, 2, 3, 1}, {3, 2, 1, 0},
                                    {0, 1, 2, 3}, {1, 0, 3, 2}}) {
    std::string p;
    for (int64_t a : perm) p += (p.empty() ? "" : ", ") + std::to_string(a);
    Tensor y = run1(model(13, "(float[3,67,129,5] X) => (float[A,B,C,D] Y)", "Y = Transpose<perm = [" + p + "]>(X)"),
                    {{"X", x}});
    EXPECT_EQ(y.to_vector<float>(), transpose_ref(x, perm)) << p;
  }
}

TEST(ShapeOps, TransposeOtherElementSizes) {
  Tensor x = Tensor::from_vector<int8_t>({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(run1(model(13, "(int8[2,3] X) => (int8[3,2] Y)", "Y = Transpose(X)"), {{"X", x}}).to_vector<int8_t>(),
            (std::vector<int8_t>{1, 4, 2, 5, 3, 6}));
  Tensor b = Tensor::from_vector<bool>({2, 2}, {true, false, false, false});
  EXPECT_EQ(run1(model(13, "(bool[2,2] X) => (bool[2,2] Y)", "Y = Transpose(X)"), {{"X", b}}).to_vector<bool>(),
            (std::vector<bool>{true, false, false, false}));
  Tensor d = Tensor::from_vector<double>({1, 2}, {1.5, 2.5});
  EXPECT_EQ(run1(model(13, "(double[1,2] X) => (double[2,1] Y)", "Y = Transpose(X)"), {{"X", d}}).to_vector<double>(),
            (std::vector<double>{1.5, 2.5}));
  expect_error(model(13, "(int8[2,3] X) => (int8[3,2] Y)", "Y = Transpose<perm = [0, 0]>(X)"), {{"X", x}},
               "not a permutation");
}

TEST(ShapeOps, ConcatWithEmptyInputAndOpset1DefaultAxis) {
  Tensor a = iota_tensor<int64_t>({2, 2});
  Tensor e(DType::Int64, {2, 0});
  Tensor y = run1(model(13, "(int64[2,2] A, int64[2,0] E) => (int64[2,4] Y)", "Y = Concat<axis = 1>(A, E, A)"),
                  {{"A", a}, {"E", e}});
  EXPECT_EQ(y.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 0, 1, 2, 3, 2, 3}));
  Tensor y1 = run1(model(1, "(int64[2,2] A, int64[2,0] E) => (int64[2,4] Y)", "Y = Concat(A, E, A)"), {{"A", a}, {"E", e}});
  EXPECT_EQ(y1.to_vector<int64_t>(), y.to_vector<int64_t>());
}

TEST(ShapeOps, SplitAttributeAndEqualForms) {
  Tensor x = iota_tensor<float>({2, 6});
  Model m = Model::from_text(model(11, "(float[2,6] X) => (float[2,1] A, float[2,5] B)", "A, B = Split<axis = -1, split = [1, 5]>(X)"));
  auto out = InferenceSession(m).run({{"X", x}});
  EXPECT_EQ(out.at("A").to_vector<float>(), (std::vector<float>{0, 6}));
  EXPECT_EQ(out.at("B").shape(), (Shape{2, 5}));
  expect_error(model(13, "(float[2,6] X) => (float[2,2] Y, float[2,2] Z, float[2,2] W, float[2,2] V)", "Y, Z, W, V = Split<axis = 1>(X)"),
               {{"X", x}}, "equal parts");
}

TEST(ShapeOps, SliceNegativeStepsAndExtremeEnds) {
  Tensor x = iota_tensor<int32_t>({10});
  auto slice = [&](int64_t start, int64_t end, int64_t step) {
    std::string body = "s = Constant<value = int64[1] {" + std::to_string(start) + "}>() e = Constant<value = int64[1] {" +
                       std::to_string(end) + "}>() a = Constant<value = int64[1] {0}>() t = Constant<value = int64[1] {" +
                       std::to_string(step) + "}>() Y = Slice(X, s, e, a, t)";
    return run1(model(13, "(int32[10] X) => (int32[N] Y)", body), {{"X", x}}).to_vector<int32_t>();
  };
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max(), kMin = std::numeric_limits<int64_t>::min();
  EXPECT_EQ(slice(kMax, kMin, -1), (std::vector<int32_t>{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}));
  EXPECT_EQ(slice(-2, kMin, -3), (std::vector<int32_t>{8, 5, 2}));
  EXPECT_EQ(slice(kMin, kMax, 4), (std::vector<int32_t>{0, 4, 8}));
  EXPECT_EQ(slice(5, 2, 1), (std::vector<int32_t>{}));
  EXPECT_EQ(slice(9, 0, kMin), (std::vector<int32_t>{9}));
  EXPECT_EQ(slice(1, 100, kMax), (std::vector<int32_t>{1}));
}

TEST(ShapeOps, SliceOpset1Attributes) {
  Tensor x = iota_tensor<float>({2, 4});
  Tensor y = run1(model(9, "(float[2,4] X) => (float[1,3] Y)", "Y = Slice<starts = [1, 0], ends = [2, -1], axes = [0, -1]>(X)"),
                  {{"X", x}});
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{4, 5, 6}));
}

TEST(ShapeOps, ExpandIsBidirectionalAndTileOpset1) {
  Tensor x = Tensor::from_vector<uint8_t>({3, 1}, {1, 2, 3});
  Tensor y = run1(model(13, "(uint8[3,1] X) => (uint8[3,2] Y)", "s = Constant<value = int64[2] {1, 2}>() Y = Expand(X, s)"),
                  {{"X", x}});
  EXPECT_EQ(y.to_vector<uint8_t>(), (std::vector<uint8_t>{1, 1, 2, 2, 3, 3}));
  Tensor t = run1(model(1, "(uint8[3,1] X) => (uint8[3,3] Y)",
                        "r = Constant<value = int64 {3}>() a = Constant<value = int64 {1}>() Y = Tile(X, r, a)"),
                  {{"X", x}});
  EXPECT_EQ(t.to_vector<uint8_t>(), (std::vector<uint8_t>{1, 1, 1, 2, 2, 2, 3, 3, 3}));
}

TEST(ShapeOps, PadModesCropAndOldAttributes) {
  Tensor x = iota_tensor<float>({2, 3});  // [[0,1,2],[3,4,5]]
  // Negative pads crop: drop the first column, add one row of 7 at the end.
  Tensor c = run1(model(2, "(float[2,3] X) => (float[3,2] Y)", "Y = Pad<pads = [0, -1, 1, 0], value = 7.0>(X)"), {{"X", x}});
  EXPECT_EQ(c.to_vector<float>(), (std::vector<float>{1, 2, 4, 5, 7, 7}));
  Tensor p1 = run1(model(1, "(float[2,3] X) => (float[2,4] Y)", "Y = Pad<paddings = [0, 1, 0, 0], value = 1.0>(X)"), {{"X", x}});
  EXPECT_EQ(p1.to_vector<float>(), (std::vector<float>{1, 0, 1, 2, 1, 3, 4, 5}));
  // Reflect pads wider than the axis reflect again (numpy.pad semantics).
  Tensor r = run1(model(13, "(float[2,3] X) => (float[2,9] Y)",
                        "p = Constant<value = int64[4] {0, 3, 0, 3}>() Y = Pad<mode = \"reflect\">(X, p)"),
                  {{"X", x}});
  EXPECT_EQ(r.to_vector<float>(), (std::vector<float>{1, 2, 1, 0, 1, 2, 1, 0, 1, 4, 5, 4, 3, 4, 5, 4, 3, 4}));
  Tensor i = Tensor::from_vector<int64_t>({2}, {5, 6});
  Tensor e = run1(model(13, "(int64[2] X) => (int64[5] Y)",
                        "p = Constant<value = int64[2] {1, 2}>() Y = Pad<mode = \"edge\">(X, p)"),
                  {{"X", i}});
  EXPECT_EQ(e.to_vector<int64_t>(), (std::vector<int64_t>{5, 5, 6, 6, 6}));
  Tensor v = run1(model(13, "(int64[2] X) => (int64[3] Y)",
                        "p = Constant<value = int64[2] {1, 0}>() c = Constant<value = int64 {-9}>() Y = Pad(X, p, c)"),
                  {{"X", i}});
  EXPECT_EQ(v.to_vector<int64_t>(), (std::vector<int64_t>{-9, 5, 6}));
  expect_error(model(13, "(int64[2] X) => (int64[N] Y)", "p = Constant<value = int64[2] {-3, 0}>() Y = Pad(X, p)"),
               {{"X", i}}, "crop more than");
}

TEST(ShapeOps, ShapeSizeAndSpaceToDepthRoundTrip) {
  Tensor x = iota_tensor<float>({1, 2, 4, 6});
  Tensor s = run1(model(15, "(float[1,2,4,6] X) => (int64[2] Y)", "Y = Shape<start = -3, end = -1>(X)"), {{"X", x}});
  EXPECT_EQ(s.to_vector<int64_t>(), (std::vector<int64_t>{2, 4}));
  Tensor n = run1(model(13, "(float[1,2,4,6] X) => (int64 Y)", "Y = Size(X)"), {{"X", x}});
  EXPECT_EQ(n.to_vector<int64_t>(), (std::vector<int64_t>{48}));
  for (const char* mode : {"DCR", "CRD"}) {
    Tensor y = run1(model(13, "(float[1,2,4,6] X) => (float[1,2,4,6] Y)",
                          std::string("d = SpaceToDepth<blocksize = 2>(X) Y = DepthToSpace<blocksize = 2, mode = \"") + mode +
                              "\">(d)"),
                    {{"X", x}});
    if (std::string(mode) == "DCR") EXPECT_EQ(y.to_vector<float>(), x.to_vector<float>());
    else EXPECT_EQ(y.shape(), x.shape());
  }
}
