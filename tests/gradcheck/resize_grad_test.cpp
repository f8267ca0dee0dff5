// Gradient proofs for the resize family (Resize, Upsample, GridSample) against finite
// differences.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "tests/support/local_grad.h"
#include "tests/support/node_case.h"

using namespace onnxtrain;
using onnxtrain::test::GradCase;
using onnxtrain::test::model_header;
using namespace onnxtrain::test::local_grad;

namespace {

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
  c.model_text = model_header(p.opset) + "g (" + t + dims(p.x) + " X) => (" + t + unknown + "] Y) { " + p.consts +
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
  // Opset 18: scales and sizes for the listed axes only.
  out.push_back({"opset18_axes_linear", 18, "<mode = \"linear\", axes = [2, 3]>", "roi, scales",
                 empty_roi + floats("scales", {1.5, 0.75}), x});
  out.push_back({"opset19_axes_sizes_cubic", 19, "<mode = \"cubic\", axes = [-1]>", "roi, , sizes",
                 empty_roi + ints("sizes", {7}), x});
  // Opset 18: antialiased shrinking (filters widened to 1/scale) and sizes kept to the
  // aspect ratio.
  out.push_back({"opset18_antialias_linear_down", 18, "<mode = \"linear\", antialias = 1>", "roi, scales",
                 empty_roi + floats("scales", {1, 1, 0.6, 0.4}), {1, 2, 6, 7}});
  out.push_back({"opset18_antialias_cubic_sizes", 18, "<mode = \"cubic\", antialias = 1, axes = [2, 3]>", "roi, , sizes",
                 empty_roi + ints("sizes", {3, 2}), {1, 2, 6, 7}});
  out.push_back({"opset18_antialias_cubic_exclude_outside", 18,
                 "<mode = \"cubic\", antialias = 1, exclude_outside = 1>", "roi, scales",
                 empty_roi + floats("scales", {1, 1, 0.5, 0.7}), {1, 1, 6, 7}});
  out.push_back({"opset18_not_larger_linear", 18, "<mode = \"linear\", keep_aspect_ratio_policy = \"not_larger\">",
                 "roi, , sizes", empty_roi + ints("sizes", {1, 2, 3, 5}), x});
  out.push_back({"opset18_not_smaller_nearest", 18,
                 "<mode = \"nearest\", keep_aspect_ratio_policy = \"not_smaller\", axes = [2, 3]>", "roi, , sizes",
                 empty_roi + ints("sizes", {3, 5}), x});
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
  c.model_text = model_header(16) +
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

}  // namespace
