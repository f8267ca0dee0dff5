// Gradient proofs for the normalization family (BatchNormalization, InstanceNormalization,
// LayerNormalization, LRN, MeanVarianceNormalization), Resize/Upsample/GridSample and
// Dropout, against finite differences.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <random>
#include <sstream>
#include <unordered_map>

#include "graph/passes/autodiff.h"
#include "graph/importer.h"
#include "src/executor.h"
#include "tests/support/gradcheck.h"

using namespace onnxtrain;
using onnxtrain::test::GradCase;

namespace {

std::string header(int opset) {
  return "<ir_version: 8, opset_import: [\"\" : " + std::to_string(opset) + "]> ";
}

std::string type_name(DType dt) { return dt == DType::Double ? "double" : "float"; }

// float32 cases check the oneDNN backward paths: four-point differences, loose tolerances.
void loosen_for_float(GradCase& c, DType dt) {
  if (dt != DType::Float) return;
  c.four_point = true;
  c.eps = 1e-2;
  c.rtol = 2e-2;
  c.atol = 2e-3;
}

// A finite-difference check that builds a fresh executor for every evaluation and takes
// sum(Y * R) in C++ instead of with ReduceSumTo. Used (1) for Dropout: its seeded generator
// advances on every run of one executor, so test::check_gradients' single forward
// executor would draw a new mask per evaluation, while a fresh executor draws the same
// mask as the backward run; (2) for models of opset < 8, where check_gradients' loss
// (ReduceSumTo, whose rule emits Expand-8) cannot be differentiated.
std::string local_check(const std::string& model_text, const std::map<std::string, Tensor>& inputs,
                        const std::vector<std::string>& wrt, double eps, double rtol, double atol,
                        bool four_point = false) {
  onnx::ModelProto proto;
  graph::load_model_text(model_text, proto);
  auto g = graph::import_graph(proto, graph::ImportOptions{});
  graph::Value& y = g->value(g->outputs.at(0)->name);
  std::unordered_map<std::string, Tensor> feeds(inputs.begin(), inputs.end());
  Tensor y_value = Executor(*g, {y.name}).run(feeds)[0];
  const Tensor r = test::random_tensor(y_value.dtype(), y_value.shape(), 99, 0.5, 1.5);
  graph::Value* prod = g->add_value("__prod", y_value.dtype());
  g->add_node("Mul", {&y, g->add_constant("__R", r)}, {prod}, "", "__mul");
  g->outputs = {prod};
  // A non-scalar loss is seeded with ones: the gradient of sum(prod).
  auto grads = graph::build_gradient_graph(*g, prod->name, wrt);
  std::vector<std::string> fetch{prod->name};
  for (const auto& name : wrt) {
    if (!grads.gradient_of.count(name)) return "no gradient was built for '" + name + "'";
    fetch.push_back(grads.gradient_of[name]);
  }
  auto analytic = Executor(*g, fetch).run(feeds);
  auto get = [](const Tensor& t, int64_t i) {
    return t.dtype() == DType::Double ? t.data<double>()[i] : static_cast<double>(t.data<float>()[i]);
  };
  auto set = [](Tensor& t, int64_t i, double v) {
    if (t.dtype() == DType::Double) t.data<double>()[i] = v;
    else t.data<float>()[i] = static_cast<float>(v);
  };
  auto loss = [&]() {
    Tensor p = Executor(*g, {prod->name}).run(feeds)[0];
    double sum = 0;
    for (int64_t i = 0; i < p.numel(); ++i) sum += get(p, i);
    return sum;
  };
  std::ostringstream report;
  for (size_t w = 0; w < wrt.size(); ++w) {
    Tensor& x = feeds[wrt[w]];
    const Tensor& ga = analytic[w + 1];
    if (ga.shape() != x.shape()) {
      report << "gradient of '" << wrt[w] << "' has shape " << shape_str(ga.shape()) << "\n";
      continue;
    }
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double x0 = get(x, i);
      auto f = [&](double d) {
        set(x, i, x0 + d);
        return loss();
      };
      const double numeric = four_point ? (-f(2 * eps) + 8 * f(eps) - 8 * f(-eps) + f(-2 * eps)) / (12 * eps)
                                        : (f(eps) - f(-eps)) / (2 * eps);
      set(x, i, x0);
      const double a = get(ga, i);
      if (!(std::abs(a - numeric) <= atol + rtol * std::abs(numeric)))
        report << "'" << wrt[w] << "' element " << i << ": analytic " << a << ", numeric " << numeric << "\n";
    }
  }
  return report.str();
}

// Runs `c` through test::check_gradients, or through local_check for opsets < 8.
std::string check(const GradCase& c, int opset) {
  if (opset >= 8) return test::check_gradients(c);
  std::vector<std::string> wrt = c.wrt;
  if (wrt.empty())
    for (const auto& [name, t] : c.inputs)
      if (is_floating(t.dtype())) wrt.push_back(name);
  const bool dbl = c.inputs.begin()->second.dtype() == DType::Double;
  return local_check(c.model_text, c.inputs, wrt, c.eps > 0 ? c.eps : (dbl ? 1e-6 : 1e-2),
                     c.rtol > 0 ? c.rtol : (dbl ? 1e-5 : 2e-2), c.atol > 0 ? c.atol : (dbl ? 1e-7 : 2e-3),
                     c.four_point);
}

// ---------------------------------------------------------------------------------------
// BatchNormalization

struct BnCase {
  std::string name;
  int opset;
  std::string attrs;    // e.g. "<training_mode = 1>"
  std::string outputs;  // the node's outputs, e.g. "Y, rm, rv"
  Shape x, param;
  DType dtype = DType::Double;
};

void PrintTo(const BnCase& c, std::ostream* os) { *os << c.name; }

class BatchNormGrad : public ::testing::TestWithParam<BnCase> {};

std::string dims(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

GradCase bn_case(const BnCase& p) {
  const std::string t = type_name(p.dtype);
  GradCase c;
  c.model_text = header(p.opset) + "g (" + t + dims(p.x) + " X, " + t + dims(p.param) + " scale, " + t +
                 dims(p.param) + " B, " + t + dims(p.param) + " mean, " + t + dims(p.param) + " var) => (" + t +
                 dims(p.x) + " Y) { " + p.outputs + " = BatchNormalization " + p.attrs +
                 "(X, scale, B, mean, var) }";
  c.inputs = {{"X", test::random_tensor(p.dtype, p.x, 1, -2, 2)},
              {"scale", test::random_tensor(p.dtype, p.param, 2, 0.5, 1.5)},
              {"B", test::random_tensor(p.dtype, p.param, 3)},
              {"mean", test::random_tensor(p.dtype, p.param, 4, -0.5, 0.5)},
              {"var", test::random_tensor(p.dtype, p.param, 5, 0.5, 1.5)}};
  c.wrt = {"X", "scale", "B"};
  loosen_for_float(c, p.dtype);
  return c;
}

TEST_P(BatchNormGrad, MatchesFiniteDifferences) { EXPECT_EQ(check(bn_case(GetParam()), GetParam().opset), ""); }

// The running statistics are never trained, in either mode.
TEST_P(BatchNormGrad, RunningStatisticsAreNotDifferentiable) {
  GradCase c = bn_case(GetParam());
  c.wrt = {"mean"};
  EXPECT_NE(check(c, GetParam().opset).find("no gradient was built for 'mean'"), std::string::npos);
}

std::vector<BnCase> bn_cases() {
  std::vector<BnCase> out;
  for (DType dt : {DType::Double, DType::Float}) {
    const std::string s = dt == DType::Double ? "_f64" : "_f32";
    out.push_back({"opset15_training" + s, 15, "<training_mode = 1>", "Y, rm, rv", {3, 3, 4, 5}, {3}, dt});
    out.push_back({"opset15_inference" + s, 15, "<training_mode = 0>", "Y", {2, 3, 4, 5}, {3}, dt});
    out.push_back({"opset9_five_outputs" + s, 9, "", "Y, rm, rv, sm, sv", {4, 3, 5}, {3}, dt});
  }
  out.push_back({"opset14_training_rank2", 14, "<training_mode = 1>", "Y, rm, rv", {6, 4}, {4}});
  out.push_back({"opset14_training_rank5", 14, "<training_mode = 1, epsilon = 0.01>", "Y, rm, rv",
                 {2, 2, 3, 2, 3}, {2}});
  // Saved statistics the model does not declare are created by the rule.
  out.push_back({"opset9_omitted_saved", 9, "", "Y, rm, rv, , ", {4, 3, 5}, {3}});
  out.push_back({"opset9_omitted_saved_f32", 9, "", "Y, rm, rv, , ", {4, 3, 5}, {3}, DType::Float});
  out.push_back({"opset15_training_only_Y", 15, "<training_mode = 1>", "Y", {3, 2, 4}, {2}});
  out.push_back({"opset9_inference", 9, "<epsilon = 0.001>", "Y", {2, 3, 4}, {3}});
  out.push_back({"opset6_is_test0", 6, "<is_test = 0>", "Y, rm, rv, sm, sv", {4, 2, 3}, {2}});
  out.push_back({"opset6_is_test1", 6, "<is_test = 1>", "Y", {4, 2, 3}, {2}});
  out.push_back({"opset7_spatial0_training", 7, "<spatial = 0>", "Y, rm, rv, sm, sv", {5, 2, 3}, {2, 3}});
  out.push_back({"opset7_spatial0_inference", 7, "<spatial = 0>", "Y", {5, 2, 3}, {2, 3}});
  out.push_back({"opset15_training_f32_big", 15, "<training_mode = 1>", "Y, rm, rv", {8, 4, 6, 6}, {4},
                 DType::Float});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, BatchNormGrad, ::testing::ValuesIn(bn_cases()),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------
// InstanceNormalization, LRN, MeanVarianceNormalization: single-input-ish ops.

struct SimpleCase {
  std::string name;
  std::string model_text;
  std::map<std::string, Tensor> inputs;
  DType dtype = DType::Double;
};

void PrintTo(const SimpleCase& c, std::ostream* os) { *os << c.name; }

class NormGrad : public ::testing::TestWithParam<SimpleCase> {};

TEST_P(NormGrad, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  GradCase c;
  c.model_text = p.model_text;
  c.inputs = p.inputs;
  loosen_for_float(c, p.dtype);
  const int opset = std::stoi(p.model_text.substr(p.model_text.find("\"\" : ") + 5));
  EXPECT_EQ(check(c, opset), "");
}

std::vector<SimpleCase> norm_cases() {
  std::vector<SimpleCase> out;
  for (DType dt : {DType::Double, DType::Float}) {
    const std::string t = type_name(dt), s = dt == DType::Double ? "_f64" : "_f32";
    // InstanceNormalization.
    out.push_back({"instancenorm" + s,
                   header(15) + "g (" + t + "[2,3,4,5] X, " + t + "[3] scale, " + t + "[3] B) => (" + t +
                       "[2,3,4,5] Y) { Y = InstanceNormalization <epsilon = 0.01> (X, scale, B) }",
                   {{"X", test::random_tensor(dt, {2, 3, 4, 5}, 11, -2, 2)},
                    {"scale", test::random_tensor(dt, {3}, 12, 0.5, 1.5)},
                    {"B", test::random_tensor(dt, {3}, 13)}},
                   dt});
    out.push_back({"instancenorm_rank3" + s,
                   header(6) + "g (" + t + "[3,2,7] X, " + t + "[2] scale, " + t + "[2] B) => (" + t +
                       "[3,2,7] Y) { Y = InstanceNormalization (X, scale, B) }",
                   {{"X", test::random_tensor(dt, {3, 2, 7}, 14, -2, 2)},
                    {"scale", test::random_tensor(dt, {2}, 15, 0.5, 1.5)},
                    {"B", test::random_tensor(dt, {2}, 16)}},
                   dt});
    // LRN: odd sizes (oneDNN for float32), even sizes (own loop, asymmetric window).
    for (int size : {3, 2, 5}) {
      out.push_back({"lrn_size" + std::to_string(size) + s,
                     header(13) + "g (" + t + "[2,6,3,4] X) => (" + t + "[2,6,3,4] Y) { Y = LRN <size = " +
                         std::to_string(size) + ", alpha = 0.5, beta = 0.75, bias = 1.5> (X) }",
                     {{"X", test::random_tensor(dt, {2, 6, 3, 4}, 17 + size, -2, 2)}},
                     dt});
    }
    out.push_back({"lrn_rank2" + s,
                   header(13) + "g (" + t + "[3,5] X) => (" + t + "[3,5] Y) { Y = LRN <size = 3, alpha = 0.3> (X) }",
                   {{"X", test::random_tensor(dt, {3, 5}, 21, -2, 2)}},
                   dt});
    // MeanVarianceNormalization.
    out.push_back({"mvn_default_axes" + s,
                   header(13) + "g (" + t + "[3,2,3,4] X) => (" + t +
                       "[3,2,3,4] Y) { Y = MeanVarianceNormalization (X) }",
                   {{"X", test::random_tensor(dt, {3, 2, 3, 4}, 22, -2, 2)}},
                   dt});
    out.push_back({"mvn_axes_last" + s,
                   header(13) + "g (" + t + "[3,4,5] X) => (" + t +
                       "[3,4,5] Y) { Y = MeanVarianceNormalization <axes = [1, 2]> (X) }",
                   {{"X", test::random_tensor(dt, {3, 4, 5}, 23, -2, 2)}},
                   dt});
    out.push_back({"mvn_axis_middle" + s,
                   header(9) + "g (" + t + "[3,4,5] X) => (" + t +
                       "[3,4,5] Y) { Y = MeanVarianceNormalization <axes = [1]> (X) }",
                   {{"X", test::random_tensor(dt, {3, 4, 5}, 24, -2, 2)}},
                   dt});
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, NormGrad, ::testing::ValuesIn(norm_cases()),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------
// LayerNormalization

struct LnCase {
  std::string name;
  Shape x, scale;
  int axis;
  bool bias;
  int stash;  // 1 float, 11 double
  DType dtype = DType::Double;
};

void PrintTo(const LnCase& c, std::ostream* os) { *os << c.name; }

class LayerNormGrad : public ::testing::TestWithParam<LnCase> {};

TEST_P(LayerNormGrad, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  const std::string t = type_name(p.dtype);
  GradCase c;
  c.model_text = header(17) + "g (" + t + dims(p.x) + " X, " + t + dims(p.scale) + " scale" +
                 (p.bias ? ", " + t + dims(p.scale) + " B" : std::string()) + ") => (" + t + dims(p.x) +
                 " Y) { Y = LayerNormalization <axis = " + std::to_string(p.axis) +
                 ", stash_type = " + std::to_string(p.stash) + "> (X, scale" + (p.bias ? ", B" : "") + ") }";
  c.inputs = {{"X", test::random_tensor(p.dtype, p.x, 31, -2, 2)},
              {"scale", test::random_tensor(p.dtype, p.scale, 32, 0.5, 1.5)}};
  if (p.bias) c.inputs["B"] = test::random_tensor(p.dtype, p.scale, 33);
  loosen_for_float(c, p.dtype);
  EXPECT_EQ(test::check_gradients(c), "");
}

// A model that already fetches Mean and InvStdDev works the same.
TEST(LayerNormGrad, WithDeclaredStatistics) {
  GradCase c;
  c.model_text = header(17) +
                 "g (double[3,4] X, double[4] scale, double[4] B) => (double[3,4] Y, double[3,1] M, double[3,1] "
                 "S) { Y, M, S = LayerNormalization <stash_type = 11> (X, scale, B) }";
  c.inputs = {{"X", test::random_tensor(DType::Double, {3, 4}, 34, -2, 2)},
              {"scale", test::random_tensor(DType::Double, {4}, 35, 0.5, 1.5)},
              {"B", test::random_tensor(DType::Double, {4}, 36)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

std::vector<LnCase> ln_cases() {
  std::vector<LnCase> out;
  for (DType dt : {DType::Double, DType::Float}) {
    const std::string s = dt == DType::Double ? "_f64" : "_f32";
    out.push_back({"axis_last" + s, {2, 3, 5}, {5}, -1, true, 1, dt});
    out.push_back({"axis1" + s, {2, 3, 5}, {3, 5}, 1, true, 1, dt});
    out.push_back({"axis0" + s, {3, 4}, {3, 4}, 0, true, 1, dt});
    out.push_back({"no_bias" + s, {4, 6}, {6}, -1, false, 1, dt});
    out.push_back({"scale_broadcast" + s, {2, 3, 4}, {4}, 1, true, 1, dt});
    out.push_back({"stash_double" + s, {2, 3, 5}, {5}, -1, true, 11, dt});
  }
  out.push_back({"axis_neg2_rank4_f64", {2, 2, 3, 4}, {3, 4}, -2, true, 11});
  out.push_back({"scale_broadcast_rows_f64", {2, 3, 4}, {3, 1}, 1, false, 11});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, LayerNormGrad, ::testing::ValuesIn(ln_cases()),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------
// Resize / Upsample

struct ResizeCase {
  std::string name;
  int opset;
  std::string attrs;
  std::string extra;  // inputs after X, e.g. "roi, scales"
  std::string consts;  // Constant nodes defining them
  Shape x;
  DType dtype = DType::Double;
};

void PrintTo(const ResizeCase& c, std::ostream* os) { *os << c.name; }

class ResizeGrad : public ::testing::TestWithParam<ResizeCase> {};

TEST_P(ResizeGrad, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  const std::string t = type_name(p.dtype);
  const std::string op = p.name.rfind("upsample", 0) == 0 ? "Upsample" : "Resize";
  GradCase c;
  std::string unknown = "[";
  for (size_t i = 0; i < p.x.size(); ++i) unknown += i ? ",?" : "?";
  c.model_text = header(p.opset) + "g (" + t + dims(p.x) + " X) => (" + t + unknown + "] Y) { " + p.consts +
                 " Y = " + op +
                 " " + p.attrs + " (X" + (p.extra.empty() ? "" : ", " + p.extra) + ") }";
  c.inputs = {{"X", test::random_tensor(p.dtype, p.x, 41, -2, 2)}};
  loosen_for_float(c, p.dtype);
  EXPECT_EQ(check(c, p.opset), "");
}

std::string floats(const std::string& name, std::vector<double> v) {
  std::string s = name + " = Constant <value = float[" + std::to_string(v.size()) + "] {";
  for (size_t i = 0; i < v.size(); ++i) {
    std::ostringstream o;
    o << v[i];
    s += (i ? ", " : "") + o.str();
  }
  return s + "}> () ";
}

std::string ints(const std::string& name, std::vector<int64_t> v) {
  std::string s = name + " = Constant <value = int64[" + std::to_string(v.size()) + "] {";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "}> () ";
}

std::vector<ResizeCase> resize_cases() {
  std::vector<ResizeCase> out;
  const std::string empty_roi = floats("roi", {});
  const std::string up = floats("scales", {1, 1, 2, 1.5});
  const std::string down = floats("scales", {1, 1, 0.6, 0.5});
  const std::string sizes = ints("sizes", {1, 2, 5, 3});
  const Shape x{1, 2, 4, 5};
  struct Mode {
    std::string name, attr;
  };
  const std::vector<Mode> modes = {
      {"nearest", "mode = \"nearest\""},
      {"nearest_floor", "mode = \"nearest\", nearest_mode = \"floor\""},
      {"nearest_ceil", "mode = \"nearest\", nearest_mode = \"ceil\""},
      {"linear", "mode = \"linear\""},
      {"cubic", "mode = \"cubic\""},
      {"cubic_exclude_outside", "mode = \"cubic\", cubic_coeff_a = -0.5, exclude_outside = 1"},
  };
  const std::vector<std::string> coords = {"half_pixel", "asymmetric", "pytorch_half_pixel", "align_corners",
                                           "tf_half_pixel_for_nn"};
  for (const auto& m : modes)
    for (const auto& cm : coords) {
      if (cm == "tf_half_pixel_for_nn" && m.name.rfind("nearest", 0) != 0) continue;
      const std::string attrs = "<" + m.attr + ", coordinate_transformation_mode = \"" + cm + "\">";
      out.push_back({m.name + "_" + cm + "_up", 13, attrs, "roi, scales", empty_roi + up, x});
      out.push_back({m.name + "_" + cm + "_down", 13, attrs, "roi, scales", empty_roi + down, x});
      out.push_back({m.name + "_" + cm + "_sizes", 13, attrs, "roi, , sizes", empty_roi + sizes, x});
    }
  // tf_crop_and_resize with extrapolation.
  const std::string roi = floats("roi", {0, 0, 0.2, -0.3, 1, 1, 0.9, 1.2});
  for (const char* mode : {"nearest", "linear", "cubic"})
    out.push_back({std::string("crop_and_resize_") + mode, 11,
                   std::string("<mode = \"") + mode +
                       "\", coordinate_transformation_mode = \"tf_crop_and_resize\", extrapolation_value = 3.0>",
                   "roi, scales", roi + floats("scales", {1, 1, 1.5, 1.25}), x});
  // float32 (the same kernels; checks the float instantiation).
  out.push_back({"linear_half_pixel_up_f32", 13, "<mode = \"linear\">", "roi, scales", empty_roi + up, x, DType::Float});
  out.push_back({"cubic_align_corners_sizes_f32", 13, "<mode = \"cubic\", coordinate_transformation_mode = \"align_corners\">",
                 "roi, , sizes", empty_roi + sizes, x, DType::Float});
  // Resize-10 and Upsample (asymmetric coordinates, nearest = floor).
  out.push_back({"opset10_nearest", 10, "<mode = \"nearest\">", "scales", floats("scales", {1, 1, 2, 1.5}), x});
  out.push_back({"opset10_linear", 10, "<mode = \"linear\">", "scales", floats("scales", {1, 1, 0.5, 2}), x});
  out.push_back({"upsample9_linear", 9, "<mode = \"linear\">", "scales", floats("scales", {1, 1, 2, 2}), x});
  out.push_back({"upsample7_nearest", 7, "<mode = \"nearest\", scales = [1.0, 1.0, 2.0, 3.0]>", "", "", x});
  out.push_back({"upsample7_bilinear", 7, "<mode = \"bilinear\", scales = [1.0, 1.0, 2.0, 2.0]>", "", "", x});
  // Rank 3 and an unscaled axis in the middle.
  out.push_back({"linear_rank3", 13, "<mode = \"linear\">", "roi, scales", empty_roi + floats("scales", {1, 1, 2.5}),
                 {2, 3, 4}});
  out.push_back({"linear_axis0", 13, "<mode = \"linear\">", "roi, scales", empty_roi + floats("scales", {2, 1, 1}),
                 {3, 2, 4}});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, ResizeGrad, ::testing::ValuesIn(resize_cases()),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------
// GridSample

struct GridCase {
  std::string mode, padding;
  int align;
};

void PrintTo(const GridCase& c, std::ostream* os) { *os << c.mode << "_" << c.padding << "_" << c.align; }

class GridSampleGrad : public ::testing::TestWithParam<GridCase> {};

TEST_P(GridSampleGrad, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  GradCase c;
  c.model_text = header(16) +
                 "g (double[2,2,4,5] X, double[2,3,4,2] grid) => (double[2,2,3,4] Y) { Y = GridSample <mode = \"" +
                 p.mode + "\", padding_mode = \"" + p.padding + "\", align_corners = " + std::to_string(p.align) +
                 "> (X, grid) }";
  c.inputs = {{"X", test::random_tensor(DType::Double, {2, 2, 4, 5}, 51, -2, 2)},
              {"grid", test::random_tensor(DType::Double, {2, 3, 4, 2}, 52, -1.3, 1.3)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

std::vector<GridCase> grid_cases() {
  std::vector<GridCase> out;
  for (const char* mode : {"bilinear", "nearest", "bicubic"})
    for (const char* padding : {"zeros", "border", "reflection"})
      for (int align : {0, 1}) out.push_back({mode, padding, align});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, GridSampleGrad, ::testing::ValuesIn(grid_cases()), [](const auto& info) {
  return info.param.mode + "_" + info.param.padding + "_" + std::to_string(info.param.align);
});

// ---------------------------------------------------------------------------------------
// Dropout (through local_check: a fresh executor per evaluation reproduces the mask).

struct DropoutCase {
  std::string name;
  int opset;
  std::string body;  // the node
  std::string extra_inputs;
  std::map<std::string, Tensor> extra;
  DType dtype = DType::Double;
};

void PrintTo(const DropoutCase& c, std::ostream* os) { *os << c.name; }

class DropoutGrad : public ::testing::TestWithParam<DropoutCase> {};

TEST_P(DropoutGrad, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  const std::string t = type_name(p.dtype);
  std::string text = header(p.opset) + "g (" + t + "[4,6] X" + p.extra_inputs + ") => (" + t + "[4,6] Y) { " +
                     p.body + " }";
  std::map<std::string, Tensor> inputs = p.extra;
  inputs["X"] = test::random_tensor(p.dtype, {4, 6}, 61, -2, 2);
  const bool dbl = p.dtype == DType::Double;
  EXPECT_EQ(local_check(text, inputs, {"X"}, dbl ? 1e-6 : 1e-2, dbl ? 1e-6 : 1e-3, dbl ? 1e-8 : 1e-4), "");
}

std::vector<DropoutCase> dropout_cases() {
  std::vector<DropoutCase> out;
  for (DType dt : {DType::Double, DType::Float}) {
    const std::string s = dt == DType::Double ? "_f64" : "_f32";
    const std::string t = type_name(dt);
    Tensor ratio = dt == DType::Double ? Tensor::scalar<double>(0.3) : Tensor::scalar<float>(0.3f);
    out.push_back({"opset13_training" + s, 13, "Y = Dropout <seed = 7> (X, ratio, mode)",
                   ", " + t + " ratio, bool mode",
                   {{"ratio", ratio}, {"mode", Tensor::scalar<bool>(true)}}, dt});
    out.push_back({"opset13_training_mask_output" + s, 13, "Y, M = Dropout <seed = 3> (X, ratio, mode)",
                   ", " + t + " ratio, bool mode",
                   {{"ratio", ratio}, {"mode", Tensor::scalar<bool>(true)}}, dt});
  }
  out.push_back({"opset13_training_default_ratio", 13, "Y = Dropout <seed = 5> (X, , mode)", ", bool mode",
                 {{"mode", Tensor::scalar<bool>(true)}}});
  out.push_back({"opset13_inference", 13, "Y = Dropout <seed = 5> (X, ratio, mode)", ", double ratio, bool mode",
                 {{"ratio", Tensor::scalar<double>(0.4)}, {"mode", Tensor::scalar<bool>(false)}}});
  out.push_back({"opset13_ratio_zero", 13, "Y = Dropout <seed = 5> (X, ratio, mode)", ", double ratio, bool mode",
                 {{"ratio", Tensor::scalar<double>(0.0)}, {"mode", Tensor::scalar<bool>(true)}}});
  out.push_back({"opset12_no_training_mode", 12, "Y = Dropout <seed = 5> (X)", "", {}});
  out.push_back({"opset10_inference", 10, "Y, M = Dropout <ratio = 0.5> (X)", "", {}});
  out.push_back({"opset7_inference", 7, "Y = Dropout <ratio = 0.5> (X)", "", {}});
  out.push_back({"opset6_is_test0", 6, "Y = Dropout <ratio = 0.4, is_test = 0> (X)", "", {}});
  out.push_back({"opset6_is_test1", 6, "Y = Dropout <ratio = 0.4, is_test = 1> (X)", "", {}});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, DropoutGrad, ::testing::ValuesIn(dropout_cases()),
                         [](const auto& info) { return info.param.name; });

// Training-mode Dropout really drops: the gradient is dY * mask / (1 - ratio), with zeros.
TEST(DropoutGradMask, GradientIsScaledMask) {
  const std::string text = header(13) +
                           "g (double[8,8] X, double ratio, bool mode) => (double[8,8] Y, bool[8,8] M) "
                           "{ Y, M = Dropout <seed = 11> (X, ratio, mode) }";
  onnx::ModelProto proto;
  graph::load_model_text(text, proto);
  auto g = graph::import_graph(proto, graph::ImportOptions{});
  auto grads = graph::build_gradient_graph(*g, "Y", {"X"});
  std::unordered_map<std::string, Tensor> feeds{{"X", test::random_tensor(DType::Double, {8, 8}, 71)},
                                                {"ratio", Tensor::scalar<double>(0.25)},
                                                {"mode", Tensor::scalar<bool>(true)}};
  auto out = Executor(*g, {"M", grads.gradient_of["X"]}).run(feeds);
  int dropped = 0;
  for (int64_t i = 0; i < 64; ++i) {
    const bool keep = out[0].data<bool>()[i];
    dropped += !keep;
    EXPECT_DOUBLE_EQ(out[1].data<double>()[i], keep ? 1.0 / 0.75 : 0.0) << i;
  }
  EXPECT_GT(dropped, 0);
  EXPECT_LT(dropped, 64);
}

}  // namespace
