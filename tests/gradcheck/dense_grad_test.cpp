// Gradient checks for the dense family: Gemm, Einsum, Det (matmul.cpp / einsum.cpp), Conv and
// ConvTranspose (conv.cpp), the pools, MaxUnpool and RoiAlign (pool.cpp). float64 cases
// exercise the own backward loops with tight tolerances; float32 cases the oneDNN backward
// primitives (four-point differences, eps 1e-2).
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <optional>
#include <random>

#include "onnxtrain/errors.h"

#include "tests/support/gradcheck.h"

using namespace onnxtrain;
using onnxtrain::test::GradCase;

namespace {

struct In {
  std::string name;
  Shape shape;
  // Float inputs take the case's dtype; others (indices) are given.
  std::optional<Tensor> value = std::nullopt;
  bool distinct = false;  // well-separated values (max pooling: no argmax flips under eps)
  bool away_from_zero = false;
};

std::string type_name(DType t) {
  switch (t) {
    case DType::Double: return "double";
    case DType::Float: return "float";
    case DType::Int64: return "int64";
    default: return "?";
  }
}

// ONNX text: "double X" is a rank-0 tensor.
std::string dims_text(const Shape& s) {
  if (s.empty()) return "";
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

// A shuffled arithmetic sequence with step 0.05 centred on 0: ties and near-ties are impossible.
Tensor distinct_tensor(DType dtype, const Shape& shape, uint64_t seed) {
  Tensor t = test::random_tensor(dtype, shape, seed);
  std::vector<int64_t> perm(static_cast<size_t>(t.numel()));
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(perm.begin(), perm.end(), rng);
  const double mid = static_cast<double>(t.numel()) / 2;
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double v = (static_cast<double>(perm[static_cast<size_t>(i)]) - mid) * 0.05;
    if (dtype == DType::Double) t.data<double>()[i] = v;
    else t.data<float>()[i] = static_cast<float>(v);
  }
  return t;
}

// Checks the gradients of `node_text` (a node with output Y of rank `y_rank`) in `dtype`.
std::string check(DType dtype, const std::string& node_text, const std::vector<In>& ins, size_t y_rank,
                  std::vector<std::string> wrt = {}, int opset = 17) {
  GradCase c;
  std::string sig;
  uint64_t seed = 11;
  for (const auto& in : ins) {
    const DType t = in.value && !is_floating(in.value->dtype()) ? in.value->dtype() : dtype;
    sig += (sig.empty() ? "" : ", ") + type_name(t) + dims_text(in.value ? in.value->shape() : in.shape) + " " + in.name;
    Tensor v;
    if (in.value) {
      v = in.value->dtype() == dtype || !is_floating(in.value->dtype()) ? in.value->clone() : Tensor();
      if (is_floating(in.value->dtype()) && in.value->dtype() != dtype) {
        v = Tensor(dtype, in.value->shape());
        for (int64_t i = 0; i < v.numel(); ++i) {
          const double x = in.value->dtype() == DType::Double ? in.value->data<double>()[i] : in.value->data<float>()[i];
          if (dtype == DType::Double) v.data<double>()[i] = x;
          else v.data<float>()[i] = static_cast<float>(x);
        }
      }
    } else if (in.distinct) {
      v = distinct_tensor(dtype, in.shape, seed);
    } else if (in.away_from_zero) {
      v = test::random_away_from(dtype, in.shape, seed, {0.0}, 0.2);
    } else {
      v = test::random_tensor(dtype, in.shape, seed);
    }
    ++seed;
    c.inputs[in.name] = v;
  }
  std::string y = type_name(dtype);
  for (size_t i = 0; i < y_rank; ++i) y += (i ? ",y" : "[y") + std::to_string(i);
  if (y_rank) y += "]";
  c.model_text = "<ir_version: 8, opset_import: [\"\" : " + std::to_string(opset) + "]> g (" + sig + ") => (" + y +
                 " Y) { " + (node_text.rfind("Y, ", 0) == 0 ? "" : "Y = ") + node_text + " }";
  c.wrt = std::move(wrt);
  if (dtype == DType::Float) {
    c.four_point = true;
    c.eps = 1e-2;
    c.rtol = 2e-2;
    c.atol = 2e-3;
  }
  return check_gradients(c);
}

const DType kBoth[] = {DType::Double, DType::Float};

// ---------------------------------------------------------------------------------------------
// Gemm

TEST(DenseGrad, Gemm) {
  for (DType dt : kBoth)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        const Shape a = ta ? Shape{4, 3} : Shape{3, 4}, b = tb ? Shape{5, 4} : Shape{4, 5};
        const std::string attrs =
            "<transA = " + std::to_string(ta) + ", transB = " + std::to_string(tb) + ", alpha = 0.5, beta = 2.0>";
        for (const Shape& c : std::vector<Shape>{{3, 5}, {5}, {1, 5}, {3, 1}, {}}) {
          SCOPED_TRACE(type_name(dt) + " transA " + std::to_string(ta) + " transB " + std::to_string(tb) + " C " +
                       dims_text(c));
          EXPECT_EQ(check(dt, "Gemm " + attrs + " (A, B, C)", {{"A", a}, {"B", b}, {"C", c}}, 2), "");
        }
        SCOPED_TRACE(type_name(dt) + " no C, transA " + std::to_string(ta) + " transB " + std::to_string(tb));
        EXPECT_EQ(check(dt, "Gemm <transA = " + std::to_string(ta) + ", transB = " + std::to_string(tb) + "> (A, B)",
                        {{"A", a}, {"B", b}}, 2),
                  "");
        // Opset 9: C is required, and the gradient Gemms must supply one.
        EXPECT_EQ(check(dt, "Gemm " + attrs + " (A, B, C)", {{"A", a}, {"B", b}, {"C", {5}}}, 2, {}, 9), "");
      }
  // Only one operand's gradient.
  EXPECT_EQ(check(DType::Double, "Gemm <transB = 1> (A, B, C)", {{"A", {3, 4}}, {"B", {5, 4}}, {"C", {5}}}, 2, {"B"}),
            "");
}

// ---------------------------------------------------------------------------------------------
// Conv / ConvTranspose

struct ConvCase {
  std::string name, attrs;
  Shape x, w;
  bool bias;
};

std::vector<ConvCase> conv_cases() {
  return {
      {"2d_bias_pad", "<pads = [1,1,1,1]>", {2, 3, 5, 5}, {4, 3, 3, 3}, true},
      {"groups", "<group = 2, pads = [1,0,1,0]>", {1, 4, 6, 5}, {6, 2, 3, 3}, false},
      {"depthwise", "<group = 3, pads = [1,1,1,1]>", {2, 3, 5, 5}, {3, 1, 3, 3}, true},
      {"depthwise_multiplier", "<group = 3, strides = [2,2]>", {1, 3, 7, 7}, {6, 1, 3, 3}, true},
      {"stride2_dilation2", "<strides = [2,2], dilations = [2,2], pads = [2,1,1,2]>", {1, 2, 9, 8}, {3, 2, 3, 3},
       true},
      {"asymmetric_pads", "<pads = [0,2,1,0]>", {2, 2, 5, 6}, {3, 2, 2, 3}, true},
      {"same_upper_stride2", "<auto_pad = \"SAME_UPPER\", strides = [2,2]>", {1, 2, 6, 7}, {2, 2, 3, 2}, true},
      {"same_lower", "<auto_pad = \"SAME_LOWER\">", {1, 2, 5, 5}, {2, 2, 2, 2}, false},
      {"valid", "<auto_pad = \"VALID\", strides = [1,2]>", {1, 2, 5, 6}, {2, 2, 3, 3}, true},
      {"1d", "<strides = [2], pads = [1,2]>", {2, 3, 10}, {4, 3, 3}, true},
      {"1d_dilated_group", "<dilations = [2], group = 2>", {1, 4, 9}, {2, 2, 3}, true},
      {"3d", "<pads = [1,0,1,0,1,0], strides = [1,2,1]>", {1, 2, 4, 5, 4}, {3, 2, 2, 3, 2}, true},
      {"1x1", "", {2, 8, 3, 3}, {4, 8, 1, 1}, true},
  };
}

TEST(DenseGrad, Conv) {
  for (DType dt : kBoth)
    for (const auto& c : conv_cases()) {
      SCOPED_TRACE(type_name(dt) + " " + c.name);
      std::vector<In> ins{{"X", c.x}, {"W", c.w}};
      if (c.bias) ins.push_back({"B", {c.w[0]}});
      const std::string node = "Conv " + c.attrs + (c.bias ? " (X, W, B)" : " (X, W)");
      EXPECT_EQ(check(dt, node, ins, c.x.size()), "");
    }
}

// ConvGrad computes only the outputs the backward graph needs.
TEST(DenseGrad, ConvPartialOutputs) {
  const std::vector<In> ins{{"X", {2, 4, 5, 5}}, {"W", {4, 2, 3, 3}}, {"B", {4}}};
  const std::string node = "Conv <group = 2, pads = [1,1,1,1], strides = [2,2]> (X, W, B)";
  for (DType dt : kBoth)
    for (const std::vector<std::string>& wrt :
         std::vector<std::vector<std::string>>{{"X"}, {"W"}, {"B"}, {"W", "B"}, {"X", "B"}}) {
      SCOPED_TRACE(type_name(dt) + " wrt " + wrt[0] + (wrt.size() > 1 ? "," + wrt[1] : ""));
      EXPECT_EQ(check(dt, node, ins, 4, wrt), "");
    }
}

std::vector<ConvCase> conv_transpose_cases() {
  return {
      {"basic_bias", "", {2, 3, 4, 4}, {3, 2, 3, 3}, true},
      {"stride2_pads_outpad", "<strides = [2,2], pads = [1,1,1,1], output_padding = [1,1]>", {1, 2, 4, 4},
       {2, 3, 3, 3}, true},
      {"groups", "<group = 2, strides = [2,1]>", {1, 4, 3, 4}, {4, 2, 3, 3}, true},
      {"depthwise", "<group = 3, strides = [2,2], pads = [1,0,0,1]>", {2, 3, 3, 3}, {3, 1, 3, 3}, false},
      {"dilation2", "<dilations = [2,2], pads = [1,2,2,1]>", {1, 2, 4, 3}, {2, 2, 2, 3}, true},
      {"output_shape", "<strides = [2,2], output_shape = [9,8]>", {1, 2, 4, 4}, {2, 2, 3, 3}, true},
      {"output_shape_larger", "<strides = [2,2], output_shape = [10,10]>", {1, 2, 4, 4}, {2, 2, 3, 3}, true},
      {"same_upper", "<auto_pad = \"SAME_UPPER\", strides = [2,2]>", {1, 2, 3, 3}, {2, 2, 3, 3}, true},
      {"same_lower", "<auto_pad = \"SAME_LOWER\", strides = [2,2]>", {1, 2, 3, 3}, {2, 3, 2, 2}, false},
      {"1d", "<strides = [3], pads = [1,0], output_padding = [2]>", {2, 3, 5}, {3, 2, 4}, true},
      {"3d", "<strides = [2,1,2], pads = [0,1,0,1,0,1]>", {1, 2, 3, 3, 2}, {2, 2, 2, 3, 2}, true},
  };
}

TEST(DenseGrad, ConvTranspose) {
  for (DType dt : kBoth)
    for (const auto& c : conv_transpose_cases()) {
      SCOPED_TRACE(type_name(dt) + " " + c.name);
      const int64_t group = c.attrs.find("group = 2") != std::string::npos   ? 2
                            : c.attrs.find("group = 3") != std::string::npos ? 3
                                                                             : 1;
      std::vector<In> ins{{"X", c.x}, {"W", c.w}};
      if (c.bias) ins.push_back({"B", {c.w[1] * group}});
      const std::string node = "ConvTranspose " + c.attrs + (c.bias ? " (X, W, B)" : " (X, W)");
      EXPECT_EQ(check(dt, node, ins, c.x.size()), "");
    }
  for (DType dt : kBoth)
    for (const std::vector<std::string>& wrt : std::vector<std::vector<std::string>>{{"X"}, {"W"}, {"B"}}) {
      SCOPED_TRACE(type_name(dt) + " partial " + wrt[0]);
      EXPECT_EQ(check(dt, "ConvTranspose <strides = [2,2]> (X, W, B)", {{"X", {1, 2, 3, 3}}, {"W", {2, 3, 2, 2}}, {"B", {3}}},
                      4, wrt),
                "");
    }
}

// ---------------------------------------------------------------------------------------------
// Pools

struct PoolCase {
  std::string name, op, attrs;
  Shape x;
};

TEST(DenseGrad, MaxPool) {
  const std::vector<PoolCase> cases{
      {"k3s2p1", "MaxPool", "<kernel_shape = [3,3], strides = [2,2], pads = [1,1,1,1]>", {2, 3, 7, 6}},
      {"ceil_mode", "MaxPool", "<kernel_shape = [3,3], strides = [2,2], ceil_mode = 1>", {1, 2, 6, 6}},
      {"ceil_pads", "MaxPool", "<kernel_shape = [2,3], strides = [2,2], pads = [1,0,0,1], ceil_mode = 1>",
       {1, 2, 6, 7}},
      {"dilation2", "MaxPool", "<kernel_shape = [2,2], dilations = [2,2], pads = [1,1,0,0]>", {1, 2, 6, 6}},
      {"same_upper", "MaxPool", "<kernel_shape = [3,3], strides = [2,2], auto_pad = \"SAME_UPPER\">", {1, 2, 5, 5}},
      {"1d", "MaxPool", "<kernel_shape = [3], strides = [2], pads = [1,1]>", {2, 3, 9}},
      {"3d", "MaxPool", "<kernel_shape = [2,2,2], strides = [1,2,2]>", {1, 2, 3, 4, 4}},
  };
  for (DType dt : kBoth)
    for (const auto& c : cases) {
      SCOPED_TRACE(type_name(dt) + " " + c.name);
      In x{"X", c.x};
      x.distinct = true;
      EXPECT_EQ(check(dt, c.op + " " + c.attrs + " (X)", {x}, c.x.size()), "");
    }
  // The model also asks for Indices (the forward's own loop path).
  for (DType dt : kBoth) {
    In x{"X", {1, 2, 5, 5}};
    x.distinct = true;
    EXPECT_EQ(check(dt, "Y, Ind = MaxPool <kernel_shape = [3,3], strides = [2,2], pads = [1,1,1,1]> (X)", {x}, 4), "");
  }
}

TEST(DenseGrad, AveragePool) {
  const std::vector<PoolCase> cases{
      {"k3s2p1_exclude", "AveragePool", "<kernel_shape = [3,3], strides = [2,2], pads = [1,1,1,1]>", {2, 3, 7, 6}},
      {"k3s2p1_include", "AveragePool",
       "<kernel_shape = [3,3], strides = [2,2], pads = [1,1,1,1], count_include_pad = 1>", {2, 3, 7, 6}},
      {"ceil_exclude", "AveragePool", "<kernel_shape = [3,3], strides = [2,2], ceil_mode = 1>", {1, 2, 6, 6}},
      // ceil_mode windows past the padded input with count_include_pad: the own loop.
      {"ceil_include", "AveragePool",
       "<kernel_shape = [3,3], strides = [2,2], pads = [1,1,1,1], ceil_mode = 1, count_include_pad = 1>",
       {1, 2, 6, 6}},
      {"asym_pads", "AveragePool", "<kernel_shape = [2,3], pads = [0,2,1,0], count_include_pad = 1>", {1, 2, 5, 5}},
      {"same_lower", "AveragePool", "<kernel_shape = [3,2], auto_pad = \"SAME_LOWER\">", {1, 2, 5, 5}},
      {"1d", "AveragePool", "<kernel_shape = [3], strides = [2], pads = [1,1]>", {2, 3, 9}},
      {"3d", "AveragePool", "<kernel_shape = [2,2,2], pads = [1,0,1,0,1,0], count_include_pad = 1>",
       {1, 2, 3, 4, 4}},
  };
  for (DType dt : kBoth)
    for (const auto& c : cases) {
      SCOPED_TRACE(type_name(dt) + " " + c.name);
      EXPECT_EQ(check(dt, c.op + " " + c.attrs + " (X)", {{"X", c.x}}, c.x.size()), "");
    }
}

TEST(DenseGrad, LpPoolAndGlobalPools) {
  for (DType dt : kBoth) {
    SCOPED_TRACE(type_name(dt));
    In x{"X", {2, 3, 5, 5}};
    x.away_from_zero = true;
    EXPECT_EQ(check(dt, "LpPool <kernel_shape = [3,3], strides = [2,2], pads = [1,1,1,1], p = 2> (X)", {x}, 4), "");
    EXPECT_EQ(check(dt, "LpPool <kernel_shape = [2,2], p = 3> (X)", {x}, 4), "");
    EXPECT_EQ(check(dt, "LpPool <kernel_shape = [3], p = 1> (X)", {{"X", {2, 3, 6}, std::nullopt, false, true}}, 3), "");
    EXPECT_EQ(check(dt, "GlobalAveragePool (X)", {{"X", {2, 3, 4, 5}}}, 4), "");
    EXPECT_EQ(check(dt, "GlobalAveragePool (X)", {{"X", {2, 3, 7}}}, 3), "");
    In xm{"X", {2, 3, 4, 5}};
    xm.distinct = true;
    EXPECT_EQ(check(dt, "GlobalMaxPool (X)", {xm}, 4), "");
  }
  // LpPool-1 (float p) is not checked: check_gradients' loss seed goes through the driver's
  // ReduceSumTo gradient, which emits Expand (opset >= 8) into the opset-1 graph.
}

Tensor int64_tensor(const Shape& shape, std::vector<int64_t> values) {
  return Tensor::from_vector<int64_t>(shape, values);
}

TEST(DenseGrad, MaxUnpool) {
  // Indices as MaxPool k2 s2 on a [1,1,4,4] input would give them, plus a duplicate (position
  // 5 written twice: only the later element gets the gradient).
  const Tensor idx = int64_tensor({1, 1, 2, 2}, {5, 5, 9, 15});
  for (DType dt : kBoth) {
    SCOPED_TRACE(type_name(dt));
    EXPECT_EQ(check(dt, "MaxUnpool <kernel_shape = [2,2], strides = [2,2]> (X, I)", {{"X", {1, 1, 2, 2}}, {"I", {}, idx}},
                    4, {"X"}),
              "");
    // output_shape larger than the default: indices re-based per coordinate.
    EXPECT_EQ(check(dt, "MaxUnpool <kernel_shape = [2,2], strides = [2,2]> (X, I, S)",
                    {{"X", {1, 1, 2, 2}}, {"I", {}, idx}, {"S", {}, int64_tensor({4}, {1, 1, 5, 5})}}, 4, {"X"}),
              "");
  }
}

TEST(DenseGrad, RoiAlign) {
  const Tensor rois = Tensor::from_vector<double>({3, 4}, {0.3, 0.7, 4.1, 3.6, 1.2, 0.4, 5.3, 5.1, 0.5, 2.2, 3.3, 4.9});
  const Tensor batch = int64_tensor({3}, {0, 1, 0});
  for (DType dt : kBoth)
    for (const std::string attrs :
         {"<output_height = 2, output_width = 3, sampling_ratio = 2, spatial_scale = 1.0>",
          "<output_height = 3, output_width = 2, sampling_ratio = 0, coordinate_transformation_mode = \"output_half_pixel\">",
          "<output_height = 2, output_width = 2, sampling_ratio = 2, mode = \"max\">"}) {
      SCOPED_TRACE(type_name(dt) + " " + attrs);
      In x{"X", {2, 2, 6, 7}};
      if (attrs.find("max") != std::string::npos) x.distinct = true;
      EXPECT_EQ(check(dt, "RoiAlign " + attrs + " (X, R, I)", {x, {"R", {}, rois}, {"I", {}, batch}}, 4, {"X"}, 16), "");
    }
}

// ---------------------------------------------------------------------------------------------
// Einsum / Det

struct EinsumCase {
  std::string eq;
  std::vector<Shape> shapes;
  size_t y_rank;
};

TEST(DenseGrad, Einsum) {
  const std::vector<EinsumCase> cases{
      {"ij,jk->ik", {{3, 4}, {4, 5}}, 2},
      {"bij,bkj->bik", {{2, 3, 4}, {2, 5, 4}}, 3},
      {"ij->ji", {{3, 4}}, 2},
      {"ij->i", {{3, 4}}, 1},             // j summed out: Expand back
      {"ijk->", {{2, 3, 2}}, 0},
      {"i,i->", {{5}, {5}}, 0},
      {"i,j->ij", {{3}, {4}}, 2},
      {"ij,jk,kl->il", {{2, 3}, {3, 4}, {4, 2}}, 2},
      {"ij,jk", {{3, 4}, {4, 2}}, 2},     // implicit output
      {"ba,ac", {{3, 4}, {4, 2}}, 2},     // implicit output, sorted labels
      {"ij,ij->ij", {{3, 1}, {3, 4}}, 2}, // size-1 label broadcast
      {"ij,j->i", {{3, 4}, {1}}, 1},      // the other side broadcast
      {"...ij,...jk->...ik", {{2, 3, 4}, {4, 5}}, 3},
      {"...i,...i->...", {{2, 3, 4}, {3, 4}}, 2},
      {"...i->i", {{2, 3, 4}}, 1},        // ellipsis summed out
      {"bn,anm,bm->ba", {{2, 3}, {4, 3, 5}, {2, 5}}, 2},
  };
  for (DType dt : kBoth)
    for (const auto& c : cases) {
      SCOPED_TRACE(type_name(dt) + " " + c.eq);
      std::vector<In> ins;
      std::string args;
      for (size_t i = 0; i < c.shapes.size(); ++i) {
        const std::string name = std::string(1, static_cast<char>('A' + i));
        ins.push_back({name, c.shapes[i]});
        args += (i ? ", " : "") + name;
      }
      EXPECT_EQ(check(dt, "Einsum <equation = \"" + c.eq + "\"> (" + args + ")", ins, c.y_rank), "");
    }
  // A diagonal in another operand is fine; in the differentiated one it is refused.
  EXPECT_EQ(check(DType::Double, "Einsum <equation = \"ii,j->j\"> (A, B)", {{"A", {3, 3}}, {"B", {4}}}, 1, {"B"}), "");
  EXPECT_THROW(check(DType::Double, "Einsum <equation = \"ii,j->j\"> (A, B)", {{"A", {3, 3}}, {"B", {4}}}, 1, {"A"}),
               UnsupportedOp);
}

TEST(DenseGrad, Det) {
  const Tensor singular = Tensor::from_vector<double>({3, 3}, {1, 2, 3, 2, 4, 6, 1, 0, 1});  // rank 2
  for (DType dt : kBoth) {
    SCOPED_TRACE(type_name(dt));
    EXPECT_EQ(check(dt, "Det (A)", {{"A", {3, 3}}}, 0, {}, 11), "");
    EXPECT_EQ(check(dt, "Det (A)", {{"A", {2, 4, 4}}}, 1), "");
    EXPECT_EQ(check(dt, "Det (A)", {{"A", {1, 1}}}, 0), "");
    EXPECT_EQ(check(dt, "Det (A)", {{"A", {}, singular}}, 0), "");
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Timing of the float32 backward kernels against their forwards (run with
// --gtest_also_run_disabled_tests --gtest_filter='*DenseBench*').

#include <chrono>

#include "graph/ir.h"
#include "src/executor.h"

namespace {

using Attrs = std::map<std::string, graph::AttributeValue>;

// Median milliseconds of running `op_type` on the given inputs (one output fetched).
double time_op(const std::string& domain, const std::string& op, const std::vector<Tensor>& inputs, Attrs attrs,
               size_t outputs = 1, int reps = 5) {
  graph::Graph g;
  g.opsets[""] = 17;
  std::vector<graph::Value*> ins, outs;
  std::unordered_map<std::string, Tensor> feeds;
  for (size_t i = 0; i < inputs.size(); ++i) {
    graph::Value* v = g.add_value("in" + std::to_string(i), inputs[i].dtype());
    v->kind = graph::ValueKind::Input;
    g.inputs.push_back(v);
    ins.push_back(v);
    feeds["in" + std::to_string(i)] = inputs[i];
  }
  for (size_t i = 0; i < outputs; ++i) outs.push_back(g.add_value("out" + std::to_string(i)));
  graph::Node* n = g.add_node(op, ins, outs, domain, "bench");
  n->attributes = std::move(attrs);
  for (auto* o : outs) g.outputs.push_back(o);
  Executor ex(g, {"out0"});
  ex.run(feeds);
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    ex.run(feeds);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

TEST(DenseBench, DISABLED_Kernels) {
  const char* t = "ai.onnxtrain";
  {
    // A ResNet-style 3x3 convolution.
    const Tensor x = test::random_tensor(DType::Float, {16, 64, 56, 56}, 1), w = test::random_tensor(DType::Float, {64, 64, 3, 3}, 2);
    const Tensor b = test::random_tensor(DType::Float, {64}, 3), dy = test::random_tensor(DType::Float, {16, 64, 56, 56}, 4);
    const double gflop = 2.0 * 16 * 64 * 64 * 9 * 56 * 56 * 1e-9;
    Attrs a{{"pads", std::vector<int64_t>{1, 1, 1, 1}}};
    const double fwd = time_op("", "Conv", {x, w, b}, a);
    const double bwd = time_op(t, "ConvGrad", {dy, x, w}, a, 3);
    std::printf("Conv 16x64x56x56 k3: forward %.1f ms (%.0f GFLOP/s), ConvGrad dX+dW+dB %.1f ms (%.0f GFLOP/s)\n", fwd,
                gflop / fwd * 1e3, bwd, 2 * gflop / bwd * 1e3);
  }
  {
    const Tensor x = test::random_tensor(DType::Float, {16, 64, 112, 112}, 1);
    const Tensor dy = test::random_tensor(DType::Float, {16, 64, 56, 56}, 2);
    Attrs a{{"kernel_shape", std::vector<int64_t>{3, 3}}, {"strides", std::vector<int64_t>{2, 2}},
            {"pads", std::vector<int64_t>{1, 1, 1, 1}}};
    const double fwd = time_op("", "MaxPool", {x}, a);
    const double fwd_idx = time_op("", "MaxPool", {x}, a, 2);
    const double bwd = time_op(t, "MaxPoolGrad", {dy, x}, a);
    const Tensor xd = test::random_tensor(DType::Double, {16, 64, 112, 112}, 1);
    const Tensor dyd = test::random_tensor(DType::Double, {16, 64, 56, 56}, 2);
    const double own = time_op(t, "MaxPoolGrad", {dyd, xd}, a);
    std::printf("MaxPool 16x64x112x112 k3s2: oneDNN forward %.1f ms, own forward with Indices %.1f ms, MaxPoolGrad "
                "(oneDNN forward_training + backward) %.1f ms, own recomputing loop (double) %.1f ms\n",
                fwd, fwd_idx, bwd, own);
    const double afwd = time_op("", "AveragePool", {x}, a);
    const double abwd = time_op(t, "AveragePoolGrad", {dy, x}, a);
    std::printf("AveragePool: forward %.1f ms, AveragePoolGrad %.1f ms\n", afwd, abwd);
  }
}
