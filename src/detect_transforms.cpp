// Detection transforms: each moves the boxes with the pixels, so a box keeps enclosing its
// object (tests/unit/detect_transforms_test.cpp checks that on drawn rectangles).
#include <algorithm>
#include <cmath>
#include <numbers>

#include "onnxtrain/detection.h"
#include "src/data_internal.h"

namespace onnxtrain {
namespace {

Box clipped(Box b, int height, int width) {
  b.x1 = std::clamp(b.x1, 0.0f, static_cast<float>(width));
  b.x2 = std::clamp(b.x2, 0.0f, static_cast<float>(width));
  b.y1 = std::clamp(b.y1, 0.0f, static_cast<float>(height));
  b.y2 = std::clamp(b.y2, 0.0f, static_cast<float>(height));
  return b;
}

// Bilinear sample at continuous index coordinates (pixel centres at integers); taps outside
// the image read the padding grey, so borders blend into it as OpenCV's constant border.
float sample_bilinear(const Image& im, int c, double x, double y) {
  const int x0 = static_cast<int>(std::floor(x)), y0 = static_cast<int>(std::floor(y));
  const double fx = x - x0, fy = y - y0;
  auto tap = [&](int xx, int yy) {
    return xx < 0 || yy < 0 || xx >= im.width || yy >= im.height ? kPadValue : im.at(c, yy, xx);
  };
  const double top = tap(x0, y0) * (1 - fx) + tap(x0 + 1, y0) * fx;
  const double bottom = tap(x0, y0 + 1) * (1 - fx) + tap(x0 + 1, y0 + 1) * fx;
  return static_cast<float>(top * (1 - fy) + bottom * fy);
}

void rgb_to_hsv(float r, float g, float b, float& h, float& s, float& v) {
  const float mx = std::max({r, g, b}), mn = std::min({r, g, b}), d = mx - mn;
  v = mx;
  s = mx > 0 ? d / mx : 0;
  if (d <= 0) {
    h = 0;
  } else if (mx == r) {
    h = std::fmod((g - b) / d + 6.0f, 6.0f) / 6.0f;
  } else if (mx == g) {
    h = ((b - r) / d + 2.0f) / 6.0f;
  } else {
    h = ((r - g) / d + 4.0f) / 6.0f;
  }
}

void hsv_to_rgb(float h, float s, float v, float& r, float& g, float& b) {
  const float h6 = h * 6.0f;
  const int i = static_cast<int>(std::floor(h6)) % 6;
  const float f = h6 - std::floor(h6), p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  switch (i) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    default: r = v, g = p, b = q; break;
  }
}

}  // namespace

Image::Image(int h, int w, float fill) : height(h), width(w), pixels(static_cast<size_t>(3) * h * w, fill) {}

Box LetterboxInfo::to_original(const Box& b) const {
  return {b.cls, static_cast<float>((b.x1 - pad_x) / scale_x), static_cast<float>((b.y1 - pad_y) / scale_y),
          static_cast<float>((b.x2 - pad_x) / scale_x), static_cast<float>((b.y2 - pad_y) / scale_y)};
}

LabelledImage resize(const LabelledImage& in, int height, int width) {
  const Image& src = in.image;
  if (height <= 0 || width <= 0 || src.height <= 0 || src.width <= 0)
    throw DataError("resize: empty image or target size " + std::to_string(width) + "x" + std::to_string(height));
  const data::AxisWeights wx = data::axis_weights(src.width, width, 0, width);
  const data::AxisWeights wy = data::axis_weights(src.height, height, 0, height);
  LabelledImage out{Image(height, width), {}};
  std::vector<float> rows(static_cast<size_t>(src.height) * width);
  for (int c = 0; c < 3; ++c) {
    for (int y = 0; y < src.height; ++y)
      for (int x = 0; x < width; ++x) {
        float v = 0;
        for (size_t t = 0; t < wx.weights[x].size(); ++t) v += wx.weights[x][t] * src.at(c, y, wx.first[x] + static_cast<int>(t));
        rows[static_cast<size_t>(y) * width + x] = v;
      }
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) {
        float v = 0;
        for (size_t t = 0; t < wy.weights[y].size(); ++t)
          v += wy.weights[y][t] * rows[static_cast<size_t>(wy.first[y] + static_cast<int>(t)) * width + x];
        out.image.at(c, y, x) = v;
      }
  }
  const float sx = static_cast<float>(width) / src.width, sy = static_cast<float>(height) / src.height;
  for (Box b : in.boxes) out.boxes.push_back({b.cls, b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy});
  return out;
}

LabelledImage letterbox(const LabelledImage& in, int height, int width, LetterboxInfo* info) {
  const double r = std::min(static_cast<double>(height) / in.image.height, static_cast<double>(width) / in.image.width);
  const int rw = std::clamp(static_cast<int>(std::lround(in.image.width * r)), 1, width);
  const int rh = std::clamp(static_cast<int>(std::lround(in.image.height * r)), 1, height);
  const LabelledImage resized = resize(in, rh, rw);
  const int left = (width - rw) / 2, top = (height - rh) / 2;
  LabelledImage out{Image(height, width, kPadValue), {}};
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < rh; ++y)
      std::copy_n(&resized.image.pixels[(static_cast<size_t>(c) * rh + y) * rw], rw, &out.image.at(c, y + top, left));
  for (Box b : resized.boxes) out.boxes.push_back({b.cls, b.x1 + left, b.y1 + top, b.x2 + left, b.y2 + top});
  if (info)
    *info = {static_cast<double>(rw) / in.image.width, static_cast<double>(rh) / in.image.height,
             static_cast<double>(left), static_cast<double>(top)};
  return out;
}

LabelledImage hflip(const LabelledImage& in) {
  LabelledImage out{in.image, {}};
  const int w = in.image.width;
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < in.image.height; ++y) {
      float* row = &out.image.at(c, y, 0);
      std::reverse(row, row + w);
    }
  for (Box b : in.boxes) out.boxes.push_back({b.cls, w - b.x2, b.y1, w - b.x1, b.y2});
  return out;
}

bool box_candidate(const Box& before, const Box& after, double scale, double min_area) {
  constexpr double kMinSide = 2, kMaxAspect = 100, kEps = 1e-16;
  const double w1 = before.width() * scale, h1 = before.height() * scale;
  const double w2 = after.width(), h2 = after.height();
  const double aspect = std::max(w2 / (h2 + kEps), h2 / (w2 + kEps));
  return w2 > kMinSide && h2 > kMinSide && w2 * h2 / (w1 * h1 + kEps) > min_area && aspect < kMaxAspect;
}

LabelledImage affine(const LabelledImage& in, const AffineParams& p, int height, int width) {
  const double theta = p.degrees * std::numbers::pi / 180.0;
  // Forward: out = A (in - c_in) + c_out + t, A = scale * rotation.
  const double a = p.scale * std::cos(theta), b = p.scale * std::sin(theta);
  const double cix = in.image.width / 2.0, ciy = in.image.height / 2.0;
  const double cox = width / 2.0 + p.translate_x * width, coy = height / 2.0 + p.translate_y * height;
  const double det = a * a + b * b;
  if (!(det > 0)) throw DataError("affine: the scale must be positive, not " + std::to_string(p.scale));
  LabelledImage out{Image(height, width), {}};
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const double qx = x + 0.5 - cox, qy = y + 0.5 - coy;
      // A = [[a, b], [-b, a]], whose inverse is A^T / det.
      const double sx = (a * qx - b * qy) / det + cix - 0.5, sy = (b * qx + a * qy) / det + ciy - 0.5;
      for (int c = 0; c < 3; ++c) out.image.at(c, y, x) = sample_bilinear(in.image, c, sx, sy);
    }
  for (const Box& box : in.boxes) {
    float x1 = INFINITY, y1 = INFINITY, x2 = -INFINITY, y2 = -INFINITY;
    for (float px : {box.x1, box.x2})
      for (float py : {box.y1, box.y2}) {
        const double dx = px - cix, dy = py - ciy;
        const auto ox = static_cast<float>(a * dx + b * dy + cox), oy = static_cast<float>(-b * dx + a * dy + coy);
        x1 = std::min(x1, ox), x2 = std::max(x2, ox), y1 = std::min(y1, oy), y2 = std::max(y2, oy);
      }
    const Box moved = clipped({box.cls, x1, y1, x2, y2}, height, width);
    if (box_candidate(box, moved, p.scale)) out.boxes.push_back(moved);
  }
  return out;
}

LabelledImage hsv_jitter(const LabelledImage& in, double hue_gain, double saturation_gain, double value_gain) {
  LabelledImage out = in;
  Image& im = out.image;
  for (int y = 0; y < im.height; ++y)
    for (int x = 0; x < im.width; ++x) {
      float h, s, v;
      rgb_to_hsv(im.at(0, y, x), im.at(1, y, x), im.at(2, y, x), h, s, v);
      h = static_cast<float>(std::fmod(h * hue_gain, 1.0));
      if (h < 0) h += 1;
      s = std::clamp(static_cast<float>(s * saturation_gain), 0.0f, 1.0f);
      v = std::clamp(static_cast<float>(v * value_gain), 0.0f, 1.0f);
      hsv_to_rgb(h, s, v, im.at(0, y, x), im.at(1, y, x), im.at(2, y, x));
    }
  return out;
}

LabelledImage mosaic(const std::array<LabelledImage, 4>& tiles, int height, int width, double center_x, double center_y) {
  LabelledImage out{Image(height, width, kPadValue), {}};
  const int cx = static_cast<int>(std::lround(center_x)), cy = static_cast<int>(std::lround(center_y));
  for (int k = 0; k < 4; ++k) {
    const Image& t = tiles[k].image;
    const int left = k % 2 == 0 ? cx - t.width : cx, top = k < 2 ? cy - t.height : cy;
    const int x_lo = std::max(0, -left), x_hi = std::min(t.width, width - left);
    const int y_lo = std::max(0, -top), y_hi = std::min(t.height, height - top);
    for (int c = 0; c < 3 && x_lo < x_hi; ++c)
      for (int y = y_lo; y < y_hi; ++y)
        std::copy_n(&t.pixels[(static_cast<size_t>(c) * t.height + y) * t.width + x_lo], x_hi - x_lo,
                    &out.image.at(c, top + y, left + x_lo));
    for (const Box& b : tiles[k].boxes) {
      const Box moved{b.cls, b.x1 + left, b.y1 + top, b.x2 + left, b.y2 + top};
      const Box kept = clipped(moved, height, width);
      if (box_candidate(moved, kept, 1.0)) out.boxes.push_back(kept);
    }
  }
  return out;
}

}  // namespace onnxtrain
