// Reductions, softmax and losses: behaviour the ONNX backend data does not cover (empty
// sets, dynamic axes, oneDNN vs own-loop agreement, ties, errors).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

std::map<std::string, Tensor> run(const std::string& text, const std::map<std::string, Tensor>& feeds) {
  Model model = Model::from_text(text);
  InferenceSession session(model);
  return session.run(feeds);
}

std::string model(const std::string& body, const std::string& inputs, const std::string& outputs, int opset = 17) {
  return "<ir_version: 8, opset_import: [\"\" : " + std::to_string(opset) + "]>\ng (" + inputs + ") => (" + outputs +
         ") { " + body + " }";
}

std::vector<double> random_values(size_t n, double lo, double hi, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

Tensor as_float(const Shape& shape, const std::vector<double>& v) {
  return Tensor::from_vector<float>(shape, std::vector<float>(v.begin(), v.end()));
}

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
        auto out = run(model("Y = " + op + " <" + attrs + "> (X)", type + "[3, 4, 5, 2] X", typed(type, out_shape) + " Y", 11),
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
    auto out = run(model("Y = " + op + " <axes = [1], keepdims = 0> (X)", "float[2, 0, 3] X", "float[2, 3] Y", 11), {{"X", x}});
    const Tensor& y = out.at("Y");
    EXPECT_EQ(y.shape(), (Shape{2, 3})) << op;
    for (double v : y.as_double()) EXPECT_EQ(v, value) << op;
  }
  auto mean = run(model("Y = ReduceMean <axes = [1]> (X)", "double[2, 0, 3] X", "double[2, 1, 3] Y", 11),
                  {{"X", Tensor(DType::Double, {2, 0, 3})}});
  for (double v : mean.at("Y").as_double()) EXPECT_TRUE(std::isnan(v));
  auto ints = run(model("Y = ReduceMax <axes = [1]> (X)", "int32[2, 0] X", "int32[2, 1] Y", 11), {{"X", Tensor(DType::Int32, {2, 0})}});
  EXPECT_EQ(ints.at("Y").to_vector<int32_t>(), (std::vector<int32_t>{std::numeric_limits<int32_t>::lowest(),
                                                                      std::numeric_limits<int32_t>::lowest()}));
}

TEST(Reduce, ReduceSumAxesInputDynamicAndNoop) {
  const std::string text = model("Y = ReduceSum <keepdims = 0> (X, A)", "float[2, 3] X, int64[K] A", "float[M] Y", 13);
  Model m = Model::from_text(text);
  InferenceSession session(m);
  const Tensor x = Tensor::from_vector<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(session.run({{"X", x}, {"A", Tensor::from_vector<int64_t>({1}, {1})}}).at("Y").to_vector<float>(),
            (std::vector<float>{6, 15}));
  EXPECT_EQ(session.run({{"X", x}, {"A", Tensor::from_vector<int64_t>({1}, {0})}}).at("Y").to_vector<float>(),
            (std::vector<float>{5, 7, 9}));
  EXPECT_EQ(session.run({{"X", x}, {"A", Tensor(DType::Int64, {0})}}).at("Y").to_vector<float>(), (std::vector<float>{21}));

  auto noop = run(model("Y = ReduceSum <noop_with_empty_axes = 1> (X)", "float[2, 3] X", "float[2, 3] Y", 13), {{"X", x}});
  EXPECT_EQ(noop.at("Y").to_vector<float>(), x.to_vector<float>());
}

TEST(Reduce, LargeReductionsSplitAcrossThreadsStayAccurate) {
  const int64_t n = 1 << 18;
  std::vector<double> x(n, 0.1);
  x[12345] = 700.0;  // exp overflows float without max subtraction
  auto out = run(model("S = ReduceSum <keepdims = 0> (X) L = ReduceLogSumExp <keepdims = 0> (X)", "double[N] X",
                       "double S, double L", 11),
                 {{"X", Tensor::from_vector<double>({n}, x)}});
  EXPECT_NEAR(out.at("S").as_double()[0], 0.1 * (n - 1) + 700.0, 1e-6);
  EXPECT_NEAR(out.at("L").as_double()[0], 700.0 + std::log1p((n - 1) * std::exp(0.1 - 700.0)), 1e-9);
  auto f = run(model("L = ReduceLogSumExp <keepdims = 0> (X)", "float[2] X", "float L", 11),
               {{"X", Tensor::from_vector<float>({2}, {1000.f, 1000.f})}});
  EXPECT_NEAR(f.at("L").as_double()[0], 1000.0 + std::log(2.0), 1e-3);
}

TEST(Reduce, IntegerSumsAndRejectsRepeatedAxes) {
  auto out = run(model("Y = ReduceSum <keepdims = 0> (X)", "int64[3] X", "int64 Y", 11),
                 {{"X", Tensor::from_vector<int64_t>({3}, {1, -5, 7})}});
  EXPECT_EQ(out.at("Y").to_vector<int64_t>(), (std::vector<int64_t>{3}));
  EXPECT_THROW(run(model("Y = ReduceMax <axes = [0, -2]> (X)", "float[2, 3] X", "float[1, 3] Y", 11),
                   {{"X", Tensor(DType::Float, {2, 3})}}),
               Error);
}

TEST(ArgMax, SelectLastIndexAndEmptyAxis) {
  const Tensor x = Tensor::from_vector<float>({2, 3}, {1, 3, 3, 2, 2, 0});
  auto first = run(model("Y = ArgMax <axis = 1> (X) Z = ArgMin <axis = 1, keepdims = 0> (X)", "float[2, 3] X", "int64[2, 1] Y, int64[2] Z"),
                   {{"X", x}});
  EXPECT_EQ(first.at("Y").to_vector<int64_t>(), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(first.at("Z").to_vector<int64_t>(), (std::vector<int64_t>{0, 2}));
  auto last = run(model("Y = ArgMax <axis = 1, select_last_index = 1> (X)", "float[2, 3] X", "int64[2, 1] Y"), {{"X", x}});
  EXPECT_EQ(last.at("Y").to_vector<int64_t>(), (std::vector<int64_t>{2, 1}));
  EXPECT_THROW(run(model("Y = ArgMax <axis = 1> (X)", "float[2, 0] X", "int64[2, 1] Y"), {{"X", Tensor(DType::Float, {2, 0})}}),
               Error);
}

TEST(TopK, TiesPreferLowerIndexAndAttributeForm) {
  const Tensor x = Tensor::from_vector<float>({1, 5}, {2, 5, 2, 5, 1});
  auto largest = run(model("V, I = TopK <axis = 1> (X, K)", "float[1, 5] X, int64[1] K", "float[1, 3] V, int64[1, 3] I"),
                     {{"X", x}, {"K", Tensor::from_vector<int64_t>({1}, {3})}});
  EXPECT_EQ(largest.at("V").to_vector<float>(), (std::vector<float>{5, 5, 2}));
  EXPECT_EQ(largest.at("I").to_vector<int64_t>(), (std::vector<int64_t>{1, 3, 0}));
  auto smallest = run(model("V, I = TopK <largest = 0> (X, K)", "float[1, 5] X, int64[1] K", "float[1, 2] V, int64[1, 2] I"),
                      {{"X", x}, {"K", Tensor::from_vector<int64_t>({1}, {2})}});
  EXPECT_EQ(smallest.at("I").to_vector<int64_t>(), (std::vector<int64_t>{4, 0}));
  auto v1 = run(model("V, I = TopK <k = 2, axis = 0> (X)", "int32[3] X", "int32[2] V, int64[2] I", 9),
                {{"X", Tensor::from_vector<int32_t>({3}, {4, 9, 4})}});
  EXPECT_EQ(v1.at("V").to_vector<int32_t>(), (std::vector<int32_t>{9, 4}));
  EXPECT_EQ(v1.at("I").to_vector<int64_t>(), (std::vector<int64_t>{1, 0}));
  EXPECT_THROW(run(model("V, I = TopK (X, K)", "float[1, 5] X, int64[1] K", "float[1, 6] V, int64[1, 6] I"),
                   {{"X", x}, {"K", Tensor::from_vector<int64_t>({1}, {6})}}),
               Error);
}

TEST(CumSum, ExclusiveReverseOnInnerAxis) {
  const Tensor x = Tensor::from_vector<double>({2, 3}, {1, 2, 3, 4, 5, 6});
  auto out = run(model("Y = CumSum <exclusive = 1, reverse = 1> (X, A)", "double[2, 3] X, int32 A", "double[2, 3] Y"),
                 {{"X", x}, {"A", Tensor::scalar<int32_t>(0)}});
  EXPECT_EQ(out.at("Y").to_vector<double>(), (std::vector<double>{4, 5, 6, 0, 0, 0}));
  auto inner = run(model("Y = CumSum (X, A)", "double[2, 3] X, int64 A", "double[2, 3] Y"),
                   {{"X", x}, {"A", Tensor::scalar<int64_t>(-1)}});
  EXPECT_EQ(inner.at("Y").to_vector<double>(), (std::vector<double>{1, 3, 6, 4, 9, 15}));
}

// Opset 11 flattens everything from `axis` on; opset 13 normalises one axis. The float
// (oneDNN) and double (own loop) paths must agree.
TEST(Softmax, CoercionBeforeOpset13AndFloatMatchesDouble) {
  const Shape shape = {2, 3, 4};
  const auto x = random_values(24, -3, 3, 3);
  for (int opset : {11, 13}) {
    for (const std::string op : {"Softmax", "LogSoftmax", "Hardmax"}) {
      const auto f = run(model("Y = " + op + " <axis = 1> (X)", "float[2, 3, 4] X", "float[2, 3, 4] Y", opset), {{"X", as_float(shape, x)}});
      const auto d = run(model("Y = " + op + " <axis = 1> (X)", "double[2, 3, 4] X", "double[2, 3, 4] Y", opset),
                         {{"X", Tensor::from_vector<double>(shape, x)}});
      EXPECT_EQ(test::compare_tensors(f.at("Y"), as_float(shape, d.at("Y").as_double()), 1e-5, 1e-6), "") << op << opset;
      if (op != "Softmax") continue;
      // Sums to one over the normalised group: 12 values (opset 11) or 3 strided values (13).
      const auto y = d.at("Y").as_double();
      double group = 0;
      if (opset == 11) for (int i = 0; i < 12; ++i) group += y[i];
      else for (int i = 0; i < 3; ++i) group += y[i * 4];
      EXPECT_NEAR(group, 1.0, 1e-12) << opset;
    }
  }
}

TEST(Loss, MeanOverNonIgnoredWeightsAndEdgeCases) {
  // log-probabilities [N=3, C=2]; target 1 is ignored.
  const Tensor logp = Tensor::from_vector<double>({3, 2}, {-1, -2, -3, -4, -5, -6});
  const Tensor target = Tensor::from_vector<int64_t>({3}, {0, -1, 1});
  const Tensor weight = Tensor::from_vector<double>({2}, {2, 3});
  auto out = run(model("L = NegativeLogLikelihoodLoss <ignore_index = -1> (X, T, W)", "double[3, 2] X, int64[3] T, double[2] W",
                       "double L"),
                 {{"X", logp}, {"T", target}, {"W", weight}});
  EXPECT_DOUBLE_EQ(out.at("L").as_double()[0], (1 * 2 + 6 * 3) / 5.0);
  auto all_ignored = run(model("L = NegativeLogLikelihoodLoss <ignore_index = 0> (X, T)", "double[1, 2] X, int64[1] T", "double L"),
                         {{"X", Tensor::from_vector<double>({1, 2}, {-1, -2})}, {"T", Tensor::from_vector<int64_t>({1}, {0})}});
  EXPECT_TRUE(std::isnan(all_ignored.at("L").as_double()[0]));
  EXPECT_THROW(run(model("L = NegativeLogLikelihoodLoss (X, T)", "double[1, 2] X, int64[1] T", "double L"),
                   {{"X", Tensor::from_vector<double>({1, 2}, {-1, -2})}, {"T", Tensor::from_vector<int64_t>({1}, {2})}}),
               Error);
  EXPECT_THROW(run(model("L = NegativeLogLikelihoodLoss <reduction = \"avg\"> (X, T)", "double[1, 2] X, int64[1] T", "double L"),
                   {{"X", Tensor::from_vector<double>({1, 2}, {-1, -2})}, {"T", Tensor::from_vector<int64_t>({1}, {0})}}),
               Error);
}

TEST(Loss, SoftmaxCrossEntropyFloatMatchesDoubleWithAndWithoutLogProb) {
  const Shape shape = {2, 3, 4};
  const auto x = random_values(24, -50, 50, 5);  // large logits: needs the stable log-softmax
  const Tensor labels = Tensor::from_vector<int32_t>({2, 4}, {0, 1, 2, 1, 2, 2, 0, 1});
  const std::string body = "L, P = SoftmaxCrossEntropyLoss <reduction = \"sum\"> (X, T) M = SoftmaxCrossEntropyLoss (X, T)";
  auto f = run(model(body, "float[2, 3, 4] X, int32[2, 4] T", "float L, float[2, 3, 4] P, float M"), {{"X", as_float(shape, x)}, {"T", labels}});
  auto d = run(model(body, "double[2, 3, 4] X, int32[2, 4] T", "double L, double[2, 3, 4] P, double M"),
               {{"X", Tensor::from_vector<double>(shape, x)}, {"T", labels}});
  EXPECT_EQ(test::compare_tensors(f.at("P"), as_float(shape, d.at("P").as_double()), 1e-5, 1e-4), "");
  EXPECT_NEAR(f.at("L").as_double()[0], d.at("L").as_double()[0], 1e-3);
  EXPECT_NEAR(f.at("M").as_double()[0], d.at("L").as_double()[0] / 8, 1e-4);
  double reference = 0;
  const auto p = d.at("P").as_double();
  const auto t = labels.as_int64();
  for (int n = 0; n < 2; ++n)
    for (int j = 0; j < 4; ++j) reference -= p[(n * 3 + t[n * 4 + j]) * 4 + j];
  EXPECT_NEAR(d.at("L").as_double()[0], reference, 1e-9);
}
