// Resize (opsets 10-13+; 18 adds axes, antialias, keep_aspect_ratio_policy), Upsample (1-10)
// and GridSample (16). Resize builds one index/weight table per axis (plan time when
// roi/scales/sizes are constants, otherwise at the first run and again only when their
// values change), then runs either one gather
// (nearest) or one separable pass per resized axis (linear, cubic). Coordinates follow the
// ONNX reference: with `scales` the resized length is input_length * scale, not the
// floored output size.
// GridSample is in grid_sample.cpp; shared helpers: resize_common.h.
#include "ops/resize_common.h"

namespace onnxtrain::ops {

namespace {

using namespace resize_impl;

enum class Coord { HalfPixel, Asymmetric, PytorchHalfPixel, AlignCorners, TfHalfPixelForNN, TfCropAndResize };
enum class Rounding { RoundPreferFloor, RoundPreferCeil, Floor, Ceil };

struct ResizeAttrs {
  Mode mode = Mode::Nearest;
  Coord coord = Coord::HalfPixel;
  Rounding rounding = Rounding::RoundPreferFloor;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  bool antialias = false;  // opset 18: linear/cubic filters widened by 1/scale when shrinking
  double extrapolation = 0.0;
};

// `op_type`/`opset` are the forward node's (ResizeGrad carries them as attributes).
ResizeAttrs parse_attrs(const Node& node, const std::string& op_type, int opset) {
  ResizeAttrs a;
  const bool legacy = op_type == "Upsample" || opset < 11;
  a.mode = parse_enum<Mode>(
      node, "mode", "nearest",
      {{"nearest", Mode::Nearest}, {"linear", Mode::Linear}, {"bilinear", Mode::Linear}, {"cubic", Mode::Cubic}});
  if (legacy) {
    // Upsample and Resize-10 index the input at x_resized / scale, nearest taking the floor.
    if (a.mode == Mode::Cubic) fail(node, "mode 'cubic' needs Resize opset >= 11");
    a.coord = Coord::Asymmetric;
    a.rounding = Rounding::Floor;
    return a;
  }
  a.coord = parse_enum<Coord>(node, "coordinate_transformation_mode", "half_pixel",
                              {{"half_pixel", Coord::HalfPixel},
                               {"asymmetric", Coord::Asymmetric},
                               {"pytorch_half_pixel", Coord::PytorchHalfPixel},
                               {"align_corners", Coord::AlignCorners},
                               {"tf_half_pixel_for_nn", Coord::TfHalfPixelForNN},
                               {"tf_crop_and_resize", Coord::TfCropAndResize}});
  a.rounding = parse_enum<Rounding>(node, "nearest_mode", "round_prefer_floor",
                                    {{"round_prefer_floor", Rounding::RoundPreferFloor},
                                     {"round_prefer_ceil", Rounding::RoundPreferCeil},
                                     {"floor", Rounding::Floor},
                                     {"ceil", Rounding::Ceil}});
  a.cubic_a = node.attr_float("cubic_coeff_a", -0.75f);
  a.exclude_outside = node.attr_int("exclude_outside", 0) != 0;
  a.extrapolation = node.attr_float("extrapolation_value", 0.f);
  a.antialias = op_type == "Resize" && opset >= 18 && node.attr_int("antialias", 0) != 0 && a.mode != Mode::Nearest;
  return a;
}

// Antialiased shrinking (ONNX Resize-18): the linear (triangle) or cubic kernel is stretched
// to 1/scale input pixels. The taps of one output are the input pixels at offsets
// start .. 1 - start from base = ceil(x) - 1 (the neighbours the ONNX reference picks).
int antialias_start(const ResizeAttrs& a, double scale) {
  return static_cast<int>(std::floor((a.mode == Mode::Linear ? -1.0 : -2.0) / scale) + 1);
}

// The kernel sampled at those taps for r = x - base in (0, 1], normalised to sum 1.
void antialias_weights(const ResizeAttrs& a, double r, double scale, int start, int taps, double* w) {
  const double A = a.cubic_a;
  auto cubic = [A](double d) {
    d = std::abs(d);
    if (d <= 1) return ((A + 2) * d - (A + 3)) * d * d + 1;
    if (d < 2) return ((A * d - 5 * A) * d + 8 * A) * d - 4 * A;
    return 0.0;
  };
  double sum = 0;
  for (int k = 0; k < taps; ++k) {
    const double d = (start + k - r) * scale;
    w[k] = a.mode == Mode::Linear ? std::clamp(1 - std::abs(d), 0.0, 1.0) : cubic(d);
    sum += w[k];
  }
  for (int k = 0; k < taps; ++k) w[k] /= sum;
}

// For every output index along one axis: `taps` input indices (clamped into range) and
// weights, or `outside` (tf_crop_and_resize extrapolation).
struct AxisTable {
  int64_t in_len = 0, out_len = 0;
  int taps = 1;
  std::vector<int64_t> index;
  std::vector<double> weight;
  std::vector<uint8_t> outside;
  bool identity = false;
};

double source_coordinate(const ResizeAttrs& a, int64_t j, double scale, double in_len, double resized_len,
                         double roi_start, double roi_end) {
  const double x = static_cast<double>(j);
  switch (a.coord) {
    case Coord::HalfPixel:
      return (x + 0.5) / scale - 0.5;
    case Coord::Asymmetric:
      return x / scale;
    case Coord::PytorchHalfPixel:
      return resized_len > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
    case Coord::AlignCorners:
      return resized_len == 1 ? 0.0 : x * (in_len - 1) / (resized_len - 1);
    case Coord::TfHalfPixelForNN:
      return (x + 0.5) / scale;
    case Coord::TfCropAndResize:
      return resized_len > 1 ? roi_start * (in_len - 1) + x * (roi_end - roi_start) * (in_len - 1) / (resized_len - 1)
                             : 0.5 * (roi_start + roi_end) * (in_len - 1);
  }
  return x;
}

AxisTable build_axis(const ResizeAttrs& a, int64_t in_len, int64_t out_len, double scale, double resized_len,
                     double roi_start, double roi_end) {
  AxisTable t;
  t.in_len = in_len;
  t.out_len = out_len;
  const bool widened = a.antialias && scale < 1;
  const int start = widened ? antialias_start(a, scale) : 0;
  t.taps = a.mode == Mode::Nearest ? 1 : widened ? 2 - 2 * start : a.mode == Mode::Linear ? 2 : 4;
  const auto n = static_cast<size_t>(out_len * t.taps);
  t.index.assign(n, 0);
  t.weight.assign(n, 0.0);
  t.outside.assign(static_cast<size_t>(out_len), 0);
  const double len = static_cast<double>(in_len);
  for (int64_t j = 0; j < out_len; ++j) {
    const double x = source_coordinate(a, j, scale, len, resized_len, roi_start, roi_end);
    if (a.coord == Coord::TfCropAndResize && !(x >= 0 && x <= len - 1)) {
      t.outside[j] = 1;
      continue;
    }
    int64_t* idx = &t.index[j * t.taps];
    double* w = &t.weight[j * t.taps];
    const double f = std::floor(x), r = x - f;
    // Coordinates stay within a few lengths of the input (every transform is bounded by
    // the roi or by half a pixel), so the casts below cannot overflow.
    const auto base = static_cast<int64_t>(std::clamp(f, -2.0 - len, 2.0 + 2 * len));
    if (widened) {
      const double b = std::ceil(x) - 1;
      const auto first = static_cast<int64_t>(std::clamp(b, -2.0 - len, 2.0 + 2 * len)) + start;
      for (int k = 0; k < t.taps; ++k) idx[k] = first + k;
      antialias_weights(a, x - b, scale, start, t.taps, w);
    } else if (a.mode == Mode::Nearest) {
      bool up = false;
      switch (a.rounding) {
        case Rounding::RoundPreferFloor:
          up = r > 0.5;
          break;
        case Rounding::RoundPreferCeil:
          up = r >= 0.5;
          break;
        case Rounding::Floor:
          up = false;
          break;
        case Rounding::Ceil:
          up = r > 0;
          break;
      }
      idx[0] = base + (up ? 1 : 0);
      w[0] = 1;
    } else if (a.mode == Mode::Linear) {
      idx[0] = base, idx[1] = base + 1;
      w[0] = 1 - r, w[1] = r;
    } else {
      const double A = a.cubic_a;
      auto near = [A](double d) { return ((A + 2) * d - (A + 3)) * d * d + 1; };       // |d| <= 1
      auto far = [A](double d) { return ((A * d - 5 * A) * d + 8 * A) * d - 4 * A; };  // 1 < |d| < 2
      for (int k = 0; k < 4; ++k) idx[k] = base - 1 + k;
      w[0] = far(r + 1), w[1] = near(r), w[2] = near(1 - r), w[3] = far(2 - r);
    }
    if (a.exclude_outside && t.taps > 1) {
      double sum = 0;
      for (int k = 0; k < t.taps; ++k) {
        if (idx[k] < 0 || idx[k] >= in_len) w[k] = 0;
        sum += w[k];
      }
      if (sum != 0)
        for (int k = 0; k < t.taps; ++k) w[k] /= sum;
    }
    for (int k = 0; k < t.taps; ++k) idx[k] = std::clamp<int64_t>(idx[k], 0, in_len - 1);
  }
  // Drop zero-weight taps when every output reads one input (nearest, or an unscaled axis).
  bool single = true;
  for (int64_t j = 0; j < out_len && single && t.taps > 1; ++j) {
    int nonzero = 0;
    for (int k = 0; k < t.taps; ++k) nonzero += t.weight[j * t.taps + k] != 0;
    single = nonzero <= 1;
  }
  if (single && t.taps > 1) {
    std::vector<int64_t> index(static_cast<size_t>(out_len), 0);
    std::vector<double> weight(static_cast<size_t>(out_len), 0.0);
    for (int64_t j = 0; j < out_len; ++j)
      for (int k = 0; k < t.taps; ++k)
        if (t.weight[j * t.taps + k] != 0) index[j] = t.index[j * t.taps + k], weight[j] = t.weight[j * t.taps + k];
    t.index = std::move(index), t.weight = std::move(weight), t.taps = 1;
  }
  t.identity = t.taps == 1 && in_len == out_len;
  for (int64_t j = 0; j < out_len && t.identity; ++j)
    t.identity = !t.outside[j] && t.index[j] == j && t.weight[j] == 1.0;
  return t;
}

struct ResizePlan {
  Shape in_shape, out_shape;
  std::vector<AxisTable> axes;
};

// The runtime values a plan depends on.
struct PlanKey {
  Shape in_shape;
  std::vector<double> scales, roi;
  std::vector<int64_t> sizes;
  // keep_aspect_ratio_policy: sizes were turned into one scale for the resized axes, and
  // both are set (the output sizes, and the scale the coordinates use).
  bool aspect = false;
  bool operator==(const PlanKey&) const = default;
};

ResizePlan make_plan(const Node& node, const ResizeAttrs& a, const PlanKey& key) {
  const auto rank = key.in_shape.size();
  const bool by_scales = !key.scales.empty() && !key.aspect;
  if (!key.aspect && by_scales == !key.sizes.empty())
    fail(node, by_scales ? "scales and sizes are both given" : "needs either scales or sizes");
  if ((by_scales ? key.scales.size() : key.sizes.size()) != rank)
    fail_shape(node, std::string(by_scales ? "scales" : "sizes") + " must have one value per input dim (" +
                         std::to_string(rank) + ")");
  const bool crop = a.coord == Coord::TfCropAndResize;
  if (crop && key.roi.size() != 2 * rank)
    fail_shape(node, "tf_crop_and_resize needs roi with " + std::to_string(2 * rank) + " values");
  ResizePlan plan;
  plan.in_shape = key.in_shape;
  for (size_t d = 0; d < rank; ++d) {
    const int64_t in_len = key.in_shape[d];
    const double roi_start = crop ? key.roi[d] : 0.0, roi_end = crop ? key.roi[d + rank] : 1.0;
    double scale, resized;
    int64_t out_len;
    if (by_scales) {
      scale = key.scales[d];
      if (!(scale > 0) || !std::isfinite(scale)) fail(node, "scales must be positive, got " + std::to_string(scale));
      resized = static_cast<double>(in_len) * scale * (crop ? roi_end - roi_start : 1.0);
      if (!(resized >= 0 && resized < 1e15))
        fail_shape(node, "output size out of range along axis " + std::to_string(d));
      out_len = static_cast<int64_t>(std::floor(resized));
    } else if (key.aspect) {
      out_len = key.sizes[d];
      scale = key.scales[d];
      resized = static_cast<double>(in_len) * scale;
    } else {
      out_len = key.sizes[d];
      if (out_len < 0) fail_shape(node, "sizes must be non-negative");
      resized = static_cast<double>(out_len);
      scale = in_len > 0 ? resized / static_cast<double>(in_len) : 1.0;
    }
    if (in_len == 0 && out_len > 0) fail_shape(node, "cannot resize an empty axis to a non-empty one");
    plan.out_shape.push_back(out_len);
    plan.axes.push_back(out_len > 0 ? build_axis(a, in_len, out_len, scale, resized, roi_start, roi_end) : AxisTable{});
  }
  return plan;
}

// Nearest: out[i0, .., ik] = x[idx0[i0], .., idxk[ik]] in one pass.
template <typename T>
void gather(const T* x, T* y, const ResizePlan& p, T extrapolation) {
  const size_t rank = p.out_shape.size();
  const Shape in_strides = strides_of(p.in_shape);
  const int64_t last = p.out_shape[rank - 1], rows = shape_numel(p.out_shape) / last;
  const AxisTable& lt = p.axes[rank - 1];
  parallel_for(
      rows,
      [&](int64_t row) {
        int64_t base = 0, rem = row;
        bool outside = false;
        for (size_t d = rank - 1; d-- > 0;) {
          const int64_t j = rem % p.out_shape[d];
          rem /= p.out_shape[d];
          outside |= p.axes[d].outside[j] != 0;
          base += p.axes[d].index[j] * in_strides[d];
        }
        T* out = y + row * last;
        if (outside) {
          std::fill_n(out, last, extrapolation);
          return;
        }
        const T* in = x + base;
        for (int64_t j = 0; j < last; ++j) out[j] = lt.outside[j] ? extrapolation : in[lt.index[j]];
      },
      std::max<int64_t>(1, 16384 / last));
}

// One separable pass over axis d: [outer, in_len, inner] -> [outer, out_len, inner].
template <typename T>
void resize_axis(const T* x, T* y, int64_t outer, int64_t inner, const AxisTable& t, T extrapolation) {
  parallel_for(
      outer * t.out_len,
      [&](int64_t r) {
        const int64_t o = r / t.out_len, j = r % t.out_len;
        T* out = y + r * inner;
        if (t.outside[j]) {
          std::fill_n(out, inner, extrapolation);
          return;
        }
        const T* in = x + o * t.in_len * inner;
        const int64_t* idx = &t.index[j * t.taps];
        const double* w = &t.weight[j * t.taps];
        if (inner == 1) {
          double acc = 0;
          for (int k = 0; k < t.taps; ++k) acc += w[k] * in[idx[k]];
          *out = static_cast<T>(acc);
          return;
        }
        const T w0 = static_cast<T>(w[0]);
        const T* src = in + idx[0] * inner;
        for (int64_t i = 0; i < inner; ++i) out[i] = w0 * src[i];
        for (int k = 1; k < t.taps; ++k) {
          const T wk = static_cast<T>(w[k]);
          if (wk == T(0)) continue;
          src = in + idx[k] * inner;
          for (int64_t i = 0; i < inner; ++i) out[i] += wk * src[i];
        }
      },
      std::max<int64_t>(1, 16384 / (inner * t.taps)));
}

template <typename T>
void interpolate(const Tensor& xt, Tensor& yt, const ResizePlan& p, T extrapolation) {
  const size_t rank = p.in_shape.size();
  std::vector<size_t> order;
  for (size_t d = 0; d < rank; ++d)
    if (!p.axes[d].identity) order.push_back(d);
  // Shrinking axes first keeps the intermediate tensors small.
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return p.out_shape[a] * p.in_shape[b] < p.out_shape[b] * p.in_shape[a]; });
  Shape shape = p.in_shape;
  const T* src = xt.data<T>();
  std::vector<T> bufs[2];
  for (size_t step = 0; step < order.size(); ++step) {
    const size_t d = order[step];
    const int64_t outer = shape_numel(Shape(shape.begin(), shape.begin() + d));
    const int64_t inner = shape_numel(Shape(shape.begin() + d + 1, shape.end()));
    shape[d] = p.out_shape[d];
    T* dst = yt.data<T>();
    if (step + 1 < order.size()) {
      bufs[step % 2].resize(static_cast<size_t>(shape_numel(shape)));
      dst = bufs[step % 2].data();
    }
    resize_axis(src, dst, outer, inner, p.axes[d], extrapolation);
    src = dst;
  }
}

// Resize and Upsample: where roi/scales/sizes come from, per op and opset, and the plan for
// the current values. `offset` is the index of X among the node's inputs (0 for the
// forward, 1 for ResizeGrad, whose inputs are dY then the forward's inputs).
class ResizePlanner {
 public:
  ResizePlanner(const Node& node, const std::vector<InputInfo>& in, const std::string& op_type, int opset,
                int offset)
      : attrs_(parse_attrs(node, op_type, opset)), offset_(offset) {
    const auto x = static_cast<size_t>(offset);
    if (in.size() <= x || !in[x].present) fail(node, "requires input X");
    if (op_type == "Upsample" && opset < 9) {
      if (opset < 7) {
        if (in[x].shape.size() != 4) fail_shape(node, "Upsample-1 expects a 4-D input");
        fixed_scales_ = {1, 1, node.attr_float("height_scale", 1.f), node.attr_float("width_scale", 1.f)};
      } else {
        if (!node.has_attr("scales")) fail(node, "requires the 'scales' attribute");
        for (float s : node.attr_floats("scales")) fixed_scales_.push_back(s);
      }
    } else if (op_type == "Upsample" || opset < 11) {
      scales_input_ = 1 + offset;
    } else {
      roi_input_ = 1 + offset, scales_input_ = 2 + offset, sizes_input_ = 3 + offset;
    }
    if (op_type == "Resize" && opset >= 18) {
      policy_ = node.attr_string("keep_aspect_ratio_policy", "stretch");
      if (policy_ != "stretch" && policy_ != "not_larger" && policy_ != "not_smaller")
        fail(node, "keep_aspect_ratio_policy must be stretch, not_larger or not_smaller, got '" + policy_ + "'");
      if (node.has_attr("axes")) axes_ = normalize_axes(node.attr_ints("axes"), in[x].shape.size(), node);
    }
    // Plan now when every value the plan needs is known.
    bool constant = true;
    for (int i : {roi_input_, scales_input_, sizes_input_})
      if (i >= 0 && i < static_cast<int>(in.size()) && in[i].present && !in[i].constant) constant = false;
    if (constant) {
      key_ = make_key(in[x].shape,
                      [&](int i) { return i >= 0 && i < (int)in.size() && in[i].present ? in[i].constant : nullptr; });
      plan_ = make_plan(node, attrs_, key_);
    }
  }

  const ResizeAttrs& attrs() const { return attrs_; }

  const ResizePlan& plan(KernelContext& ctx) {
    const Tensor& x = ctx.input(offset_);
    PlanKey key = make_key(x.shape(), [&](int i) { return i >= 0 && ctx.has_input(i) ? &ctx.input(i) : nullptr; });
    if (!plan_ || !(key == key_)) {
      plan_ = make_plan(ctx.node(), attrs_, key);
      key_ = std::move(key);
    }
    return *plan_;
  }

 private:
  template <typename Get>
  PlanKey make_key(const Shape& shape, Get get) const {
    PlanKey k;
    k.in_shape = shape;
    if (!fixed_scales_.empty()) k.scales = fixed_scales_;
    if (const Tensor* t = get(scales_input_)) k.scales = t->as_double();
    if (const Tensor* t = get(sizes_input_)) k.sizes = t->as_int64();
    if (const Tensor* t = get(roi_input_); t && attrs_.coord == Coord::TfCropAndResize) k.roi = t->as_double();
    if (!axes_.empty()) widen_to_all_axes(k);
    if (policy_ != "stretch" && !k.sizes.empty()) keep_aspect(k);
    return k;
  }

  // One scale for the resized axes (all, or `axes`): the smallest (not_larger) or largest
  // (not_smaller) of sizes / input; those axes become round(scale * input).
  void keep_aspect(PlanKey& k) const {
    const size_t rank = k.in_shape.size();
    if (k.sizes.size() != rank) return;  // make_plan reports the count
    std::vector<size_t> axes(axes_.begin(), axes_.end());
    if (axes.empty())
      for (size_t i = 0; i < rank; ++i) axes.push_back(i);
    double scale = policy_ == "not_larger" ? INFINITY : 0.0;
    for (size_t a : axes) {
      if (k.in_shape[a] <= 0) throw ShapeError("Resize: keep_aspect_ratio_policy needs non-empty resized axes");
      const double s = static_cast<double>(k.sizes[a]) / static_cast<double>(k.in_shape[a]);
      scale = policy_ == "not_larger" ? std::min(scale, s) : std::max(scale, s);
    }
    if (!(scale > 0) || !std::isfinite(scale)) throw ShapeError("Resize: sizes must be positive");
    k.scales.assign(rank, 1.0);
    for (size_t i = 0; i < rank; ++i) k.sizes[i] = k.in_shape[i];
    for (size_t a : axes) {
      k.scales[a] = scale;
      k.sizes[a] = static_cast<int64_t>(std::round(scale * static_cast<double>(k.in_shape[a])));
    }
    k.aspect = true;
  }

  // Opset 18's `axes`: scales, sizes and roi name only those axes; the others keep their size.
  void widen_to_all_axes(PlanKey& k) const {
    const size_t rank = k.in_shape.size(), n = axes_.size();
    auto widen = [&](auto& values, auto fill, const char* what) {
      if (values.empty()) return;
      if (values.size() != n)
        throw ShapeError(std::string("Resize: ") + what + " has " + std::to_string(values.size()) + " values for " +
                         std::to_string(n) + " axes");
      std::remove_reference_t<decltype(values)> full(rank);
      for (size_t i = 0; i < rank; ++i) full[i] = fill(i);
      for (size_t i = 0; i < n; ++i) full[axes_[i]] = values[i];
      values = std::move(full);
    };
    widen(k.scales, [](size_t) { return 1.0; }, "scales");
    widen(k.sizes, [&](size_t i) { return k.in_shape[i]; }, "sizes");
    if (!k.roi.empty()) {
      if (k.roi.size() != 2 * n) throw ShapeError("Resize: roi needs 2 values per axis");
      std::vector<double> full(2 * rank);
      for (size_t i = 0; i < rank; ++i) full[i] = 0, full[rank + i] = 1;
      for (size_t i = 0; i < n; ++i) full[axes_[i]] = k.roi[i], full[rank + axes_[i]] = k.roi[n + i];
      k.roi = std::move(full);
    }
  }

  ResizeAttrs attrs_;
  int offset_ = 0;
  int roi_input_ = -1, scales_input_ = -1, sizes_input_ = -1;
  std::vector<double> fixed_scales_;
  std::vector<int64_t> axes_;  // opset 18: the axes scales/sizes/roi speak of (empty: all)
  std::string policy_ = "stretch";  // opset 18: keep_aspect_ratio_policy
  PlanKey key_;
  std::optional<ResizePlan> plan_;
};

bool all_identity(const ResizePlan& p) {
  return p.out_shape.empty() || std::all_of(p.axes.begin(), p.axes.end(), [](const AxisTable& t) { return t.identity; });
}

class ResizeKernel final : public Kernel {
 public:
  ResizeKernel(const Node& node, const std::vector<InputInfo>& in) : planner_(node, in, node.op_type, node.opset, 0) {
    if (planner_.attrs().mode == Mode::Nearest)
      dispatch_all(in[0].dtype, node, [](auto) {});
    else
      dispatch_float(in[0].dtype, node, [](auto) {});
  }

  void run(KernelContext& ctx) override {
    const Tensor& x = ctx.input(0);
    const ResizePlan& p = planner_.plan(ctx);
    const double extrapolation = planner_.attrs().extrapolation;
    if (all_identity(p)) {
      ctx.set_output(0, x);
      return;
    }
    Tensor& y = ctx.output(0, x.dtype(), p.out_shape);
    if (y.numel() == 0) return;
    const bool single_tap = std::all_of(p.axes.begin(), p.axes.end(), [](const AxisTable& t) { return t.taps == 1; });
    if (single_tap) {
      dispatch_all(x.dtype(), ctx.node(), [&](auto tag) {
        using T = decltype(tag);
        gather<T>(x.data<T>(), y.data<T>(), p, static_cast<T>(extrapolation));
      });
    } else {
      dispatch_float(x.dtype(), ctx.node(), [&](auto tag) {
        using T = decltype(tag);
        interpolate<T>(x, y, p, static_cast<T>(extrapolation));
      });
    }
  }

 private:
  ResizePlanner planner_;
};

// The adjoint of one separable pass over an axis: [outer, out_len, inner] ->
// [outer, in_len, inner], dx[o, idx[j, k], i] += w[j, k] * dy[o, j, i]. Extrapolated
// outputs (tf_crop_and_resize) are constants and contribute nothing. Parallel over outer
// rows and blocks of the inner dim; each task owns its slice of dx.
template <typename T>
void resize_axis_adjoint(const T* dy, T* dx, int64_t outer, int64_t inner, const AxisTable& t) {
  constexpr int64_t kBlock = 1024;
  const int64_t blocks = (inner + kBlock - 1) / kBlock;
  parallel_for(
      outer * blocks,
      [&](int64_t task) {
        const int64_t o = task / blocks, i0 = (task % blocks) * kBlock, i1 = std::min(inner, i0 + kBlock);
        T* dst = dx + o * t.in_len * inner;
        for (int64_t r = 0; r < t.in_len; ++r) std::fill(dst + r * inner + i0, dst + r * inner + i1, T(0));
        const T* src = dy + o * t.out_len * inner;
        for (int64_t j = 0; j < t.out_len; ++j) {
          if (t.outside[j]) continue;
          const T* g = src + j * inner;
          for (int k = 0; k < t.taps; ++k) {
            const T w = static_cast<T>(t.weight[j * t.taps + k]);
            if (w == T(0)) continue;
            T* d = dst + t.index[j * t.taps + k] * inner;
            for (int64_t i = i0; i < i1; ++i) d[i] += w * g[i];
          }
        }
      },
      std::max<int64_t>(1, 16384 / std::max<int64_t>(1, t.out_len * t.taps * std::min(inner, kBlock))));
}

// ai.onnxtrain.ResizeGrad(dY, X, <the forward's roi/scales/sizes inputs>) -> dX, with the
// forward's attributes plus forward_op_type and forward_opset. Resampling is linear in X
// and separable (nearest is a one-tap table), so dX applies the transposed per-axis tables
// to dY, axis by axis.
class ResizeGradKernel final : public Kernel {
 public:
  ResizeGradKernel(const Node& node, const std::vector<InputInfo>& in)
      : planner_(node, in, node.attr_string("forward_op_type", "Resize"),
                 static_cast<int>(node.attr_int("forward_opset", 11)), 1) {
    if (!in[0].present) fail(node, "requires input dY");
    dispatch_float(in[0].dtype, node, [](auto) {});
    if (in[1].dtype != in[0].dtype) fail(node, "dY and X must have one element type");
  }

  void run(KernelContext& ctx) override {
    const Tensor& dy = ctx.input(0);
    const Tensor& x = ctx.input(1);
    const ResizePlan& p = planner_.plan(ctx);
    if (dy.shape() != p.out_shape)
      fail_shape(ctx.node(), "dY has shape " + shape_str(dy.shape()) + ", the resized shape is " + shape_str(p.out_shape));
    if (all_identity(p)) {
      ctx.set_output(0, dy);
      return;
    }
    Tensor& dx = ctx.output(0, dy.dtype(), x.shape());
    dispatch_float(dy.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      if (dy.numel() == 0) {
        std::fill_n(dx.data<T>(), dx.numel(), T(0));
        return;
      }
      const size_t rank = p.in_shape.size();
      std::vector<size_t> order;
      for (size_t d = 0; d < rank; ++d)
        if (!p.axes[d].identity) order.push_back(d);
      // The axes that shrink the gradient most go first.
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return p.in_shape[a] * p.out_shape[b] < p.in_shape[b] * p.out_shape[a];
      });
      Shape shape = p.out_shape;
      const T* src = dy.data<T>();
      std::vector<T> bufs[2];
      for (size_t step = 0; step < order.size(); ++step) {
        const size_t d = order[step];
        const int64_t outer = shape_numel(Shape(shape.begin(), shape.begin() + d));
        const int64_t inner = shape_numel(Shape(shape.begin() + d + 1, shape.end()));
        shape[d] = p.in_shape[d];
        T* dst = dx.data<T>();
        if (step + 1 < order.size()) {
          bufs[step % 2].resize(static_cast<size_t>(shape_numel(shape)));
          dst = bufs[step % 2].data();
        }
        resize_axis_adjoint(src, dst, outer, inner, p.axes[d]);
        src = dst;
      }
    });
  }

 private:
  ResizePlanner planner_;
};

// Resize / Upsample: dX = ResizeGrad(dY, X, roi, scales, sizes); roi, scales and sizes are
// not differentiable.
void resize_gradient(GradientBuilder& b) {
  const Node& node = b.node();
  Attributes attrs = node.attributes;
  attrs["forward_op_type"] = node.op_type;
  attrs["forward_opset"] = static_cast<int64_t>(node.opset);
  std::vector<Value*> inputs{b.GO(0)};
  for (size_t i = 0; i < node.inputs.size(); ++i) inputs.push_back(node.inputs[i]);
  b.GI(0, b.train_op("ResizeGrad", inputs, attrs));
}

std::unique_ptr<Kernel> make_resize(const Node& node, const std::vector<InputInfo>& in) {
  return std::make_unique<ResizeKernel>(node, in);
}

}  // namespace

void register_resize_ops(Registry& r) {
  r.add({"", "Resize", 10, INT_MAX, make_resize, "own", resize_gradient, {1, 2, 3}});
  r.add({"", "Upsample", 1, 10, make_resize, "own", resize_gradient, {1}});
  r.add({graph::kTrainingDomain, "ResizeGrad", 1, INT_MAX,
         [](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
           return std::make_unique<ResizeGradKernel>(node, in);
         },
         "own"});
  register_grid_sample_ops(r);
}

}  // namespace onnxtrain::ops
