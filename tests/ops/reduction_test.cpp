// Reductions (Reduce*, ArgMax/ArgMin, TopK, CumSum): behaviour the ONNX backend data does not
// cover (empty sets, dynamic axes, oneDNN vs own-loop agreement, ties, errors).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/node_case.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;
using test::as_float;
using test::graph_model;
using test::random_values;
using test::run_model;

namespace {

// Straightforward reference: visits every input element and accumulates into its output.
std::vector<double> reference_reduce(const std::string& op, const Shape& shape, const std::vector<double>& x,
                                     const std::vector<int64_t>& axes) {
  const size_t rank = shape.size();
  std::vector<bool> reduced(rank, axes.empty());
  for (int64_t a : axes) reduced[a < 0 ? a + rank : a] = true;
  Shape out_shape;
  for (size_t d = 0; d < rank; ++d) out_shape.push_back(reduced[d] ? 1 : shape[d]);
  const int64_t out_n = shape_numel(out_shape);
  const double init = op == "ReduceMax" ? -INFINITY : op == "ReduceMin" ? INFINITY : op == "ReduceProd" ? 1.0 : 0.0;
  std::vector<double> acc(out_n, init);
  std::vector<int64_t> count(out_n, 0);
  for (int64_t flat = 0; flat < static_cast<int64_t>(x.size()); ++flat) {
    int64_t rest = flat, o = 0, scale = 1;
    for (size_t d = rank; d-- > 0;) {
      const int64_t idx = rest % shape[d];
      rest /= shape[d];
      if (!reduced[d]) o += idx * scale;
      scale *= out_shape[d];
    }
    const double v = x[flat];
    double& a = acc[o];
    ++count[o];
    if (op == "ReduceSum" || op == "ReduceMean" || op == "ReduceLogSum") a += v;
    else if (op == "ReduceMax") a = std::max(a, v);
    else if (op == "ReduceMin") a = std::min(a, v);
    else if (op == "ReduceProd") a *= v;
    else if (op == "ReduceL1") a += std::abs(v);
    else if (op == "ReduceL2" || op == "ReduceSumSquare") a += v * v;
    else if (op == "ReduceLogSumExp") a += std::exp(v);
  }
  for (int64_t o = 0; o < out_n; ++o) {
    if (op == "ReduceMean") acc[o] /= count[o];
    if (op == "ReduceL2") acc[o] = std::sqrt(acc[o]);
    if (op == "ReduceLogSum" || op == "ReduceLogSumExp") acc[o] = std::log(acc[o]);
  }
  return acc;
}

// ONNX text declares "float Y" as a rank-0 tensor, so outputs spell out their shapes.
std::string typed(const std::string& type, const Shape& shape) {
  std::string s = type + "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string axes_text(const std::vector<int64_t>& axes) {
  std::string s = "[";
  for (size_t i = 0; i < axes.size(); ++i) s += (i ? ", " : "") + std::to_string(axes[i]);
  return s + "]";
}

}  // namespace

// Both the float32 path (oneDNN reduction, own loop for log-sum-exp) and the double path
// (own loops) against the reference, over axis sets that exercise every canonical form.
TEST(Reduce, FloatAndDoubleMatchReferenceForAllOpsAndAxes) {
  const Shape shape = {3, 4, 5, 2};
  const std::vector<std::vector<int64_t>> axis_sets = {{1}, {0, 2}, {1, 3}, {3}, {0}, {0, 1, 2, 3}, {}, {-1, 1}, {0, 3}};
  for (const std::string op : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                               "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"}) {
    const bool positive = op == "ReduceLogSum" || op == "ReduceProd";
    const auto x = random_values(shape_numel(shape), positive ? 0.5 : -1.5, 1.5, 7);
    for (const auto& axes : axis_sets) {
      const auto expected = reference_reduce(op, shape, x, axes);
      Shape out_shape = shape;
      for (int64_t a : axes) out_shape[a < 0 ? a + 4 : a] = 1;
      if (axes.empty()) out_shape = {1, 1, 1, 1};
      for (const std::string type : {"float", "double"}) {
        // Opset 11 keeps the axes attribute for every op, ReduceSum included.
        std::string attrs = "keepdims = 1";
        if (!axes.empty()) attrs += ", axes = " + axes_text(axes);
        auto out = run_model(graph_model("Y = " + op + " <" + attrs + "> (X)", type + "[3, 4, 5, 2] X", typed(type, out_shape) + " Y", 11),
                       {{"X", type == "float" ? as_float(shape, x) : Tensor::from_vector<double>(shape, x)}});
        const Tensor& y = out.at("Y");
        ASSERT_EQ(y.numel(), static_cast<int64_t>(expected.size())) << op << " " << axes_text(axes);
        const std::vector<double> got = y.as_double();
        for (size_t i = 0; i < expected.size(); ++i)
          ASSERT_NEAR(got[i], expected[i], 1e-5 * (1 + std::abs(expected[i])))
              << op << " " << type << " axes " << axes_text(axes) << " at " << i;
      }
    }
  }
}

TEST(Reduce, EmptySetGivesTheIdentityOfEachOp) {
  const Tensor x(DType::Float, {2, 0, 3});
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<std::pair<std::string, double>> cases = {
      {"ReduceSum", 0.0},  {"ReduceProd", 1.0},       {"ReduceMax", -inf},   {"ReduceMin", inf},
      {"ReduceL1", 0.0},   {"ReduceL2", 0.0},         {"ReduceSumSquare", 0.0}, {"ReduceLogSum", -inf},
      {"ReduceLogSumExp", -inf}};
  for (const auto& [op, value] : cases) {
    auto out = run_model(graph_model("Y = " + op + " <axes = [1], keepdims = 0> (X)", "float[2, 0, 3] X", "float[2, 3] Y", 11), {{"X", x}});
    const Tensor& y = out.at("Y");
    EXPECT_EQ(y.shape(), (Shape{2, 3})) << op;
    for (double v : y.as_double()) EXPECT_EQ(v, value) << op;
  }
  auto mean = run_model(graph_model("Y = ReduceMean <axes = [1]> (X)", "double[2, 0, 3] X", "double[2, 1, 3] Y", 11),
                  {{"X", Tensor(DType::Double, {2, 0, 3})}});
  for (double v : mean.at("Y").as_double()) EXPECT_TRUE(std::isnan(v));
  auto ints = run_model(graph_model("Y = ReduceMax <axes = [1]> (X)", "int32[2, 0] X", "int32[2, 1] Y", 11), {{"X", Tensor(DType::Int32, {2, 0})}});
  EXPECT_EQ(ints.at("Y").to_vector<int32_t>(), (std::vector<int32_t>{std::numeric_limits<int32_t>::lowest(),
                                                                      std::numeric_limits<int32_t>::lowest()}));
}

TEST(Reduce, ReduceSumAxesInputDynamicAndNoop) {
  const std::string text = graph_model("Y = ReduceSum <keepdims = 0> (X, A)", "float[2, 3] X, int64[K] A", "float[M] Y", 13);
  Model m = Model::from_text(text);
  InferenceSession session(m);
  const Tensor x = Tensor::from_vector<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(session.run({{"X", x}, {"A", Tensor::from_vector<int64_t>({1}, {1})}}).at("Y").to_vector<float>(),
            (std::vector<float>{6, 15}));
  EXPECT_EQ(session.run({{"X", x}, {"A", Tensor::from_vector<int64_t>({1}, {0})}}).at("Y").to_vector<float>(),
            (std::vector<float>{5, 7, 9}));
  EXPECT_EQ(session.run({{"X", x}, {"A", Tensor(DType::Int64, {0})}}).at("Y").to_vector<float>(), (std::vector<float>{21}));

  auto noop = run_model(graph_model("Y = ReduceSum <noop_with_empty_axes = 1> (X)", "float[2, 3] X", "float[2, 3] Y", 13), {{"X", x}});
  EXPECT_EQ(noop.at("Y").to_vector<float>(), x.to_vector<float>());
}

TEST(Reduce, LargeReductionsSplitAcrossThreadsStayAccurate) {
  const int64_t n = 1 << 18;
  std::vector<double> x(n, 0.1);
  x[12345] = 700.0;  // exp overflows float without max subtraction
  auto out = run_model(graph_model("S = ReduceSum <keepdims = 0> (X) L = ReduceLogSumExp <keepdims = 0> (X)", "double[N] X",
                       "double S, double L", 11),
                 {{"X", Tensor::from_vector<double>({n}, x)}});
  EXPECT_NEAR(out.at("S").as_double()[0], 0.1 * (n - 1) + 700.0, 1e-6);
  EXPECT_NEAR(out.at("L").as_double()[0], 700.0 + std::log1p((n - 1) * std::exp(0.1 - 700.0)), 1e-9);
  auto f = run_model(graph_model("L = ReduceLogSumExp <keepdims = 0> (X)", "float[2] X", "float L", 11),
               {{"X", Tensor::from_vector<float>({2}, {1000.f, 1000.f})}});
  EXPECT_NEAR(f.at("L").as_double()[0], 1000.0 + std::log(2.0), 1e-3);
}

TEST(Reduce, IntegerSumsAndRejectsRepeatedAxes) {
  auto out = run_model(graph_model("Y = ReduceSum <keepdims = 0> (X)", "int64[3] X", "int64 Y", 11),
                 {{"X", Tensor::from_vector<int64_t>({3}, {1, -5, 7})}});
  EXPECT_EQ(out.at("Y").to_vector<int64_t>(), (std::vector<int64_t>{3}));
  EXPECT_THROW(run_model(graph_model("Y = ReduceMax <axes = [0, -2]> (X)", "float[2, 3] X", "float[1, 3] Y", 11),
                   {{"X", Tensor(DType::Float, {2, 3})}}),
               Error);
}

TEST(ArgMax, SelectLastIndexAndEmptyAxis) {
  const Tensor x = Tensor::from_vector<float>({2, 3}, {1, 3, 3, 2, 2, 0});
  auto first = run_model(graph_model("Y = ArgMax <axis = 1> (X) Z = ArgMin <axis = 1, keepdims = 0> (X)", "float[2, 3] X", "int64[2, 1] Y, int64[2] Z"),
                   {{"X", x}});
  EXPECT_EQ(first.at("Y").to_vector<int64_t>(), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(first.at("Z").to_vector<int64_t>(), (std::vector<int64_t>{0, 2}));
  auto last = run_model(graph_model("Y = ArgMax <axis = 1, select_last_index = 1> (X)", "float[2, 3] X", "int64[2, 1] Y"), {{"X", x}});
  EXPECT_EQ(last.at("Y").to_vector<int64_t>(), (std::vector<int64_t>{2, 1}));
  EXPECT_THROW(run_model(graph_model("Y = ArgMax <axis = 1> (X)", "float[2, 0] X", "int64[2, 1] Y"), {{"X", Tensor(DType::Float, {2, 0})}}),
               Error);
}

TEST(TopK, TiesPreferLowerIndexAndAttributeForm) {
  const Tensor x = Tensor::from_vector<float>({1, 5}, {2, 5, 2, 5, 1});
  auto largest = run_model(graph_model("V, I = TopK <axis = 1> (X, K)", "float[1, 5] X, int64[1] K", "float[1, 3] V, int64[1, 3] I"),
                     {{"X", x}, {"K", Tensor::from_vector<int64_t>({1}, {3})}});
  EXPECT_EQ(largest.at("V").to_vector<float>(), (std::vector<float>{5, 5, 2}));
  EXPECT_EQ(largest.at("I").to_vector<int64_t>(), (std::vector<int64_t>{1, 3, 0}));
  auto smallest = run_model(graph_model("V, I = TopK <largest = 0> (X, K)", "float[1, 5] X, int64[1] K", "float[1, 2] V, int64[1, 2] I"),
                      {{"X", x}, {"K", Tensor::from_vector<int64_t>({1}, {2})}});
  EXPECT_EQ(smallest.at("I").to_vector<int64_t>(), (std::vector<int64_t>{4, 0}));
  auto v1 = run_model(graph_model("V, I = TopK <k = 2, axis = 0> (X)", "int32[3] X", "int32[2] V, int64[2] I", 9),
                {{"X", Tensor::from_vector<int32_t>({3}, {4, 9, 4})}});
  EXPECT_EQ(v1.at("V").to_vector<int32_t>(), (std::vector<int32_t>{9, 4}));
  EXPECT_EQ(v1.at("I").to_vector<int64_t>(), (std::vector<int64_t>{1, 0}));
  EXPECT_THROW(run_model(graph_model("V, I = TopK (X, K)", "float[1, 5] X, int64[1] K", "float[1, 6] V, int64[1, 6] I"),
                   {{"X", x}, {"K", Tensor::from_vector<int64_t>({1}, {6})}}),
               Error);
}

TEST(CumSum, ExclusiveReverseOnInnerAxis) {
  const Tensor x = Tensor::from_vector<double>({2, 3}, {1, 2, 3, 4, 5, 6});
  auto out = run_model(graph_model("Y = CumSum <exclusive = 1, reverse = 1> (X, A)", "double[2, 3] X, int32 A", "double[2, 3] Y"),
                 {{"X", x}, {"A", Tensor::scalar<int32_t>(0)}});
  EXPECT_EQ(out.at("Y").to_vector<double>(), (std::vector<double>{4, 5, 6, 0, 0, 0}));
  auto inner = run_model(graph_model("Y = CumSum (X, A)", "double[2, 3] X, int64 A", "double[2, 3] Y"),
                   {{"X", x}, {"A", Tensor::scalar<int64_t>(-1)}});
  EXPECT_EQ(inner.at("Y").to_vector<double>(), (std::vector<double>{1, 3, 6, 4, 9, 15}));
}
