// Dense ops (Conv, ConvTranspose, MatMul, Gemm, Einsum, pooling) against naive reference
// loops on random configurations, and the behaviour the ONNX backend data does not cover.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <random>
#include <sstream>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

// Row-major strides; a local helper so the references share no code with the kernels.
Shape strides_of_shape(const Shape& s) {
  Shape r(s.size(), 1);
  for (int i = static_cast<int>(s.size()) - 2; i >= 0; --i) r[i] = r[i + 1] * s[i + 1];
  return r;
}

Tensor random_tensor(const Shape& shape, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (auto& e : v) e = dist(rng);
  return Tensor::from_vector<float>(shape, v);
}

std::string dims(const Shape& s) {
  std::string r;
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
  return r;
}

std::string ints(const std::vector<int64_t>& v) { return "[" + dims(v) + "]"; }

// A one-node model "Y = op <attrs> (inputs)" with the given inputs and an output of rank
// `out_rank` with symbolic dims (the checker wants the rank of graph outputs).
std::map<std::string, Tensor> run_node(const std::string& op, const std::string& attrs,
                                       const std::vector<std::pair<std::string, Tensor>>& inputs, size_t out_rank,
                                       const std::string& out_type = "float") {
  std::ostringstream text;
  text << "<ir_version: 8, opset_import: [\"\" : 17]>\ng (";
  std::map<std::string, Tensor> feeds;
  std::string names;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i].second;
    const char* type = t.dtype() == DType::Float ? "float" : t.dtype() == DType::Double ? "double" : "int64";
    const std::string shape = t.rank() ? "[" + dims(t.shape()) + "]" : "";  // "float[]" would mean unknown rank
    text << (i ? ", " : "") << type << shape << " " << inputs[i].first;
    names += (i ? ", " : "") + inputs[i].first;
    feeds[inputs[i].first] = t;
  }
  std::string out_dims;
  for (size_t i = 0; i < out_rank; ++i) out_dims += (i ? ",Y" : "[Y") + std::to_string(i);
  if (out_rank) out_dims += "]";
  text << ") => (" << out_type << out_dims << " Y) { Y = " << op << (attrs.empty() ? "" : " <" + attrs + ">") << " (" << names
       << ") }";
  Model model = Model::from_text(text.str());
  InferenceSession session(model);
  return session.run(feeds);
}

struct ConvCase {
  Shape x;      // [N, C, spatial...]
  int64_t m;    // output channels
  Shape k;      // kernel
  Shape s, d;   // strides, dilations
  Shape pads;   // begins then ends
  int64_t group;
  bool bias;
};

// y[n, oc, o] = b[oc] + sum over ic, k of x[n, g*cg + ic, o*s - p + k*d] * w[oc, ic, k]
Tensor reference_conv(const ConvCase& c, const Tensor& x, const Tensor& w, const Tensor* b, Shape& out) {
  const size_t nsp = c.k.size();
  out = {c.x[0], c.m};
  for (size_t i = 0; i < nsp; ++i)
    out.push_back((c.x[2 + i] + c.pads[i] + c.pads[i + nsp] - (c.k[i] - 1) * c.d[i] - 1) / c.s[i] + 1);
  Tensor y(DType::Float, out);
  const int64_t cg = c.x[1] / c.group, mg = c.m / c.group;
  const Shape xs = strides_of_shape(c.x), ws = strides_of_shape(w.shape()), ys = strides_of_shape(out);
  std::vector<int64_t> o(nsp), k(nsp);
  for (int64_t flat = 0; flat < y.numel(); ++flat) {
    int64_t rest = flat;
    const int64_t n = rest / ys[0];
    rest %= ys[0];
    const int64_t oc = rest / ys[1];
    rest %= ys[1];
    for (size_t i = 0; i < nsp; ++i) {
      o[i] = rest / ys[2 + i];
      rest %= ys[2 + i];
    }
    double acc = b ? b->data<float>()[oc] : 0.0;
    for (int64_t ic = 0; ic < cg; ++ic)
      for (int64_t kf = 0; kf < shape_numel(c.k); ++kf) {
        int64_t kr = kf, xoff = n * xs[0] + ((oc / mg) * cg + ic) * xs[1];
        bool inside = true;
        for (size_t i = 0; i < nsp; ++i) {
          k[i] = kr / ws[2 + i];
          kr %= ws[2 + i];
          const int64_t pos = o[i] * c.s[i] - c.pads[i] + k[i] * c.d[i];
          inside = inside && pos >= 0 && pos < c.x[2 + i];
          xoff += pos * xs[2 + i];
        }
        if (inside) acc += double(x.data<float>()[xoff]) * w.data<float>()[oc * ws[0] + ic * ws[1] + kf];
      }
    y.data<float>()[flat] = static_cast<float>(acc);
  }
  return y;
}

}  // namespace

TEST(Dense, ConvMatchesNaiveLoopOnRandomConfigurations) {
  std::mt19937 rng(7);
  const std::vector<ConvCase> cases = {
      {{2, 4, 9, 8}, 6, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, 1, true},
      {{1, 6, 11, 10}, 6, {3, 2}, {2, 3}, {1, 2}, {2, 0, 1, 3}, 3, false},  // groups, asymmetric pads
      {{2, 8, 7, 7}, 8, {3, 3}, {2, 2}, {2, 2}, {2, 2, 2, 2}, 8, true},    // depthwise, dilated
      {{1, 4, 6, 6}, 12, {3, 3}, {1, 1}, {1, 1}, {0, 0, 0, 0}, 4, true},   // depthwise multiplier
      {{3, 5, 17}, 7, {4}, {3}, {2}, {3, 1}, 1, true},                     // 1-D
      {{1, 4, 5, 6, 7}, 4, {2, 3, 2}, {1, 2, 2}, {2, 1, 1}, {1, 0, 1, 0, 1, 1}, 2, false},  // 3-D
      {{1, 16, 12, 12}, 32, {1, 1}, {1, 1}, {1, 1}, {0, 0, 0, 0}, 1, true},  // pointwise
  };
  for (const auto& c : cases) {
    const size_t nsp = c.k.size();
    Shape wshape{c.m, c.x[1] / c.group};
    wshape.insert(wshape.end(), c.k.begin(), c.k.end());
    Tensor x = random_tensor(c.x, rng), w = random_tensor(wshape, rng), b = random_tensor({c.m}, rng);
    Shape out;
    Tensor expected = reference_conv(c, x, w, c.bias ? &b : nullptr, out);
    std::string attrs = "strides = " + ints(c.s) + ", dilations = " + ints(c.d) + ", pads = " + ints(c.pads) +
                        ", group = " + std::to_string(c.group);
    std::vector<std::pair<std::string, Tensor>> in{{"X", x}, {"W", w}};
    if (c.bias) in.emplace_back("B", b);
    auto y = run_node("Conv", attrs, in, c.x.size());
    EXPECT_EQ(y["Y"].shape(), out) << nsp << "-D case " << attrs;
    EXPECT_EQ(test::compare_tensors(y["Y"], expected, 1e-4, 1e-5), "") << attrs;
    // double runs the own loop: the same numbers
    Tensor xd(DType::Double, x.shape()), wd(DType::Double, w.shape()), bd(DType::Double, b.shape());
    for (int64_t i = 0; i < x.numel(); ++i) xd.data<double>()[i] = x.data<float>()[i];
    for (int64_t i = 0; i < w.numel(); ++i) wd.data<double>()[i] = w.data<float>()[i];
    for (int64_t i = 0; i < b.numel(); ++i) bd.data<double>()[i] = b.data<float>()[i];
    std::vector<std::pair<std::string, Tensor>> ind{{"X", xd}, {"W", wd}};
    if (c.bias) ind.emplace_back("B", bd);
    Tensor yd = run_node("Conv", attrs, ind, c.x.size(), "double")["Y"];
    std::vector<float> yf;
    for (double v : yd.to_vector<double>()) yf.push_back(static_cast<float>(v));
    EXPECT_EQ(test::compare_tensors(Tensor::from_vector<float>(yd.shape(), yf), expected, 1e-4, 1e-5), "") << attrs;
  }
}

TEST(Dense, ConvTransposeIsTheAdjointOfConv) {
  // <ConvTranspose(x), y> == <x, Conv(y)> with the same weights: checks layout, groups,
  // strides, dilations and pads of the deconvolution against the convolution.
  std::mt19937 rng(11);
  struct Case {
    Shape y;  // conv input == transposed-conv output
    int64_t cin, group;
    Shape k, s, d, pads;
  };
  const std::vector<Case> cases = {
      {{2, 4, 9, 8}, 6, 2, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}},
      {{1, 3, 10, 7}, 3, 3, {2, 3}, {3, 2}, {2, 1}, {0, 1, 2, 1}},
      {{1, 2, 13}, 4, 1, {3}, {2}, {2}, {1, 2}},
  };
  for (const auto& c : cases) {
    const size_t nsp = c.k.size();
    // conv: y [N, M, ...] -> x [N, cin, ...] with W [cin, M/group, k...]
    Shape w_shape{c.cin, c.y[1] / c.group};
    w_shape.insert(w_shape.end(), c.k.begin(), c.k.end());
    Tensor w = random_tensor(w_shape, rng), yin = random_tensor(c.y, rng);
    std::string attrs = "strides = " + ints(c.s) + ", dilations = " + ints(c.d) + ", pads = " + ints(c.pads) +
                        ", group = " + std::to_string(c.group);
    Tensor conv = run_node("Conv", attrs, {{"X", yin}, {"W", w}}, c.y.size())["Y"];
    Tensor xin = random_tensor(conv.shape(), rng);
    // output_padding recovers the rows the conv's floor division dropped
    std::vector<int64_t> op(nsp);
    for (size_t i = 0; i < nsp; ++i)
      op[i] = c.y[2 + i] - ((conv.dim(2 + i) - 1) * c.s[i] + (c.k[i] - 1) * c.d[i] + 1 - c.pads[i] - c.pads[i + nsp]);
    Tensor deconv = run_node("ConvTranspose", attrs + ", output_padding = " + ints(op), {{"X", xin}, {"W", w}}, c.y.size())["Y"];
    ASSERT_EQ(deconv.shape(), c.y) << attrs;
    double lhs = 0, rhs = 0;
    for (int64_t i = 0; i < deconv.numel(); ++i) lhs += double(deconv.data<float>()[i]) * yin.data<float>()[i];
    for (int64_t i = 0; i < conv.numel(); ++i) rhs += double(conv.data<float>()[i]) * xin.data<float>()[i];
    EXPECT_NEAR(lhs, rhs, 1e-3 * (1 + std::abs(rhs))) << attrs;
  }
}

TEST(Dense, MatMulBroadcastsBatchesAndVectors) {
  std::mt19937 rng(3);
  Tensor a = random_tensor({2, 1, 3, 4}, rng), b = random_tensor({5, 4, 2}, rng), v = random_tensor({4}, rng);
  Tensor y = run_node("MatMul", "", {{"A", a}, {"B", b}}, 4)["Y"];
  ASSERT_EQ(y.shape(), (Shape{2, 5, 3, 2}));
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 5; ++j)
      for (int64_t m = 0; m < 3; ++m)
        for (int64_t n = 0; n < 2; ++n) {
          double acc = 0;
          for (int64_t k = 0; k < 4; ++k) acc += double(a.data<float>()[(i * 3 + m) * 4 + k]) * b.data<float>()[(j * 4 + k) * 2 + n];
          EXPECT_NEAR(y.data<float>()[((i * 5 + j) * 3 + m) * 2 + n], acc, 1e-5);
        }
  Tensor yv = run_node("MatMul", "", {{"A", v}, {"B", b}}, 2)["Y"];
  EXPECT_EQ(yv.shape(), (Shape{5, 2}));
  Tensor yvv = run_node("MatMul", "", {{"A", v}, {"B", v}}, 0)["Y"];
  EXPECT_EQ(yvv.shape(), Shape{});
  Tensor ai = Tensor::from_vector<int64_t>({2, 2}, {1, 2, 3, 4}), bi = Tensor::from_vector<int64_t>({2}, {5, 6});
  EXPECT_EQ(run_node("MatMul", "", {{"A", ai}, {"B", bi}}, 1, "int64")["Y"].to_vector<int64_t>(), (std::vector<int64_t>{17, 39}));
}

TEST(Dense, GemmDoubleWithTransposesAndBroadcastC) {
  Tensor a = Tensor::from_vector<double>({3, 2}, {1, 2, 3, 4, 5, 6});  // A' = [[1,3,5],[2,4,6]]
  Tensor b = Tensor::from_vector<double>({2, 3}, {1, 0, 2, 0, 1, 1});  // B' = [[1,0],[0,1],[2,1]]
  Tensor c = Tensor::from_vector<double>({2, 1}, {10, 20});
  Tensor y = run_node("Gemm", "transA = 1, transB = 1, alpha = 2.0, beta = 0.5", {{"A", a}, {"B", b}, {"C", c}}, 2, "double")["Y"];
  // A'B' = [[11, 8], [14, 10]]
  EXPECT_EQ(y.to_vector<double>(), (std::vector<double>{27, 21, 38, 30}));
  // float (oneDNN) with every C broadcast form
  const std::vector<float> af{1, 2, 3, 4, 5, 6}, bf{1, 0, 2, 0, 1, 1};
  const std::vector<std::pair<Shape, std::vector<float>>> cs{
      {{2, 1}, {10, 20}}, {{1, 2}, {10, 20}}, {{2}, {10, 20}}, {{}, {10}}, {{2, 2}, {1, 2, 3, 4}}};
  const std::vector<std::vector<float>> expected{{32, 26, 48, 40}, {32, 36, 38, 40}, {32, 36, 38, 40}, {32, 26, 38, 30},
                                                 {23, 18, 31, 24}};
  for (size_t i = 0; i < cs.size(); ++i)
    for (float beta : {1.f, 0.5f}) {
      Tensor yf = run_node("Gemm", "transA = 1, transB = 1, alpha = 2.0, beta = " + std::to_string(beta),
                           {{"A", Tensor::from_vector<float>({3, 2}, af)}, {"B", Tensor::from_vector<float>({2, 3}, bf)},
                            {"C", Tensor::from_vector<float>(cs[i].first, cs[i].second)}}, 2)["Y"];
      std::vector<float> want = expected[i];
      const std::vector<float> ab{22, 16, 28, 20};
      for (size_t j = 0; j < 4; ++j) want[j] = ab[j] + beta * (want[j] - ab[j]);
      EXPECT_EQ(yf.to_vector<float>(), want) << "C " << shape_str(cs[i].first) << " beta " << beta;
    }
}

TEST(Dense, EinsumMatchesBruteForce) {
  std::mt19937 rng(5);
  struct Case {
    std::string eq;
    std::vector<Shape> shapes;
    Shape out;
    std::function<double(const std::vector<Tensor>&, const std::vector<int64_t>&)> expected;  // at output index
  };
  auto at = [](const Tensor& t, std::vector<int64_t> idx) {
    const Shape s = strides_of_shape(t.shape());
    int64_t off = 0;
    for (size_t i = 0; i < idx.size(); ++i) off += idx[i] * s[i];
    return double(t.data<float>()[off]);
  };
  const std::vector<Case> cases = {
      {"ij,jk,kl->il", {{2, 3}, {3, 4}, {4, 5}}, {2, 5}, [&](auto& t, auto& o) {
         double s = 0;
         for (int64_t j = 0; j < 3; ++j)
           for (int64_t k = 0; k < 4; ++k) s += at(t[0], {o[0], j}) * at(t[1], {j, k}) * at(t[2], {k, o[1]});
         return s;
       }},
      {"bii->bi", {{2, 3, 3}}, {2, 3}, [&](auto& t, auto& o) { return at(t[0], {o[0], o[1], o[1]}); }},
      {"ii", {{4, 4}}, {}, [&](auto& t, auto&) {
         double s = 0;
         for (int64_t i = 0; i < 4; ++i) s += at(t[0], {i, i});
         return s;
       }},
      {"...ij,...jk->...ik", {{2, 1, 3, 4}, {5, 4, 2}}, {2, 5, 3, 2}, [&](auto& t, auto& o) {
         double s = 0;
         for (int64_t j = 0; j < 4; ++j) s += at(t[0], {o[0], 0, o[2], j}) * at(t[1], {o[1], j, o[3]});
         return s;
       }},
      {"ijk,ikj", {{2, 3, 4}, {2, 4, 3}}, {}, [&](auto& t, auto&) {
         double s = 0;
         for (int64_t i = 0; i < 2; ++i)
           for (int64_t j = 0; j < 3; ++j)
             for (int64_t k = 0; k < 4; ++k) s += at(t[0], {i, j, k}) * at(t[1], {i, k, j});
         return s;
       }},
      {"ba,ca", {{3, 2}, {4, 2}}, {3, 4}, [&](auto& t, auto& o) {  // implicit output "bc"
         return at(t[0], {o[0], 0}) * at(t[1], {o[1], 0}) + at(t[0], {o[0], 1}) * at(t[1], {o[1], 1});
       }},
      {"i,j->ji", {{3}, {2}}, {2, 3}, [&](auto& t, auto& o) { return at(t[0], {o[1]}) * at(t[1], {o[0]}); }},
  };
  for (const auto& c : cases) {
    std::vector<std::pair<std::string, Tensor>> in;
    std::vector<Tensor> ts;
    for (size_t i = 0; i < c.shapes.size(); ++i) {
      ts.push_back(random_tensor(c.shapes[i], rng));
      in.emplace_back("I" + std::to_string(i), ts.back());
    }
    Tensor y = run_node("Einsum", "equation = \"" + c.eq + "\"", in, c.out.size())["Y"];
    ASSERT_EQ(y.shape(), c.out) << c.eq;
    const Shape ys = strides_of_shape(c.out);
    for (int64_t f = 0; f < y.numel(); ++f) {
      std::vector<int64_t> idx(c.out.size());
      int64_t rest = f;
      for (size_t d = 0; d < idx.size(); ++d) {
        idx[d] = rest / ys[d];
        rest %= ys[d];
      }
      EXPECT_NEAR(y.data<float>()[f], c.expected(ts, idx), 1e-5) << c.eq << " at " << f;
    }
  }
}

TEST(Dense, AveragePoolCeilModeCountsOnlyThePaddedInput) {
  // 1x1x5 input, kernel 2, stride 2, pad 1 each side, ceil_mode: windows [-1,0], [1,2], [3,4]
  // and nothing past the end pad; count_include_pad divides by the padded-window part.
  Tensor x = Tensor::from_vector<float>({1, 1, 5}, {1, 2, 3, 4, 5});
  auto y = run_node("AveragePool", "kernel_shape = [2], strides = [2], pads = [1, 1], ceil_mode = 1, count_include_pad = 1",
                    {{"X", x}}, 3)["Y"];
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{0.5f, 2.5f, 4.5f}));
  Tensor x6 = Tensor::from_vector<float>({1, 1, 6}, {1, 2, 3, 4, 5, 6});
  auto y6 = run_node("AveragePool", "kernel_shape = [3], strides = [2], ceil_mode = 1, count_include_pad = 1",
                     {{"X", x6}}, 3)["Y"];
  EXPECT_EQ(y6.to_vector<float>(), (std::vector<float>{2, 4, 5.5f}));  // last window has 2 of 3 points
}

TEST(Dense, LpPoolTakesThePNormOfEachWindow) {
  Tensor x = Tensor::from_vector<float>({1, 1, 4}, {3, -4, 0, 1});
  auto y = run_node("LpPool", "kernel_shape = [2], p = 2", {{"X", x}}, 3)["Y"];
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{5, 4, 1}));
}

TEST(Dense, MaxPoolIndicesFollowStorageOrder) {
  Tensor x = Tensor::from_vector<float>({1, 1, 2, 3}, {1, 9, 2, 8, 3, 7});
  for (int order : {0, 1}) {
    Model model = Model::from_text(R"(
      <ir_version: 8, opset_import: ["" : 17]>
      g (float[1, 1, 2, 3] X) => (float[1, 1, 1, 2] Y, int64[1, 1, 1, 2] I) {
        Y, I = MaxPool <kernel_shape = [2, 2], storage_order = )" + std::to_string(order) + R"(> (X)
      })");
    InferenceSession session(model);
    auto out = session.run({{"X", x}});
    EXPECT_EQ(out["Y"].to_vector<float>(), (std::vector<float>{9, 9}));
    // 9 sits at (h=0, w=1): row-major 1, column-major 0 + 1 * 2 = 2
    EXPECT_EQ(out["I"].to_vector<int64_t>(), (std::vector<int64_t>{order ? 2 : 1, order ? 2 : 1}));
  }
}

TEST(Dense, InvalidShapesAndIndicesGiveClearErrors) {
  std::mt19937 rng(1);
  EXPECT_THROW(run_node("Conv", "", {{"X", random_tensor({1, 3, 5, 5}, rng)}, {"W", random_tensor({2, 4, 3, 3}, rng)}}, 4),
               Error);
  EXPECT_THROW(run_node("MatMul", "", {{"A", random_tensor({2, 3}, rng)}, {"B", random_tensor({4, 2}, rng)}}, 2), Error);
  Tensor x = Tensor::from_vector<float>({1, 1, 1, 1}, {1});
  Tensor bad = Tensor::from_vector<int64_t>({1, 1, 1, 1}, {99});
  EXPECT_THROW(run_node("MaxUnpool", "kernel_shape = [2, 2], strides = [2, 2]", {{"X", x}, {"I", bad}}, 4), Error);
}
