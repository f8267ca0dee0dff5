// Segmentation transforms: the image goes through the detection transforms (antialiased
// bilinear), the mask through nearest-neighbour sampling at the same pixel centres, so the
// two stay aligned (tests/unit/segment_transforms_test.cpp checks drawn rectangles).
#include <algorithm>
#include <cmath>

#include "onnxtrain/segmentation.h"

namespace onnxtrain {
namespace {

Image image_only(const LabelledImage& l) { return l.image; }

// Source index of output pixel o when `in` pixels become `out`: the pixel under o's centre.
int nearest(int o, int in, int out) {
  return std::clamp(static_cast<int>(std::floor((o + 0.5) * in / out)), 0, in - 1);
}

Mask resize_nearest(const Mask& m, int height, int width) {
  Mask out(height, width);
  for (int y = 0; y < height; ++y) {
    const int sy = nearest(y, m.height, height);
    for (int x = 0; x < width; ++x) out.at(y, x) = m.at(sy, nearest(x, m.width, width));
  }
  return out;
}

void check_pair(const SegmentedImage& in, const char* what) {
  if (in.image.height != in.mask.height || in.image.width != in.mask.width)
    throw DataError(std::string(what) + ": the image is " + std::to_string(in.image.width) + "x" +
                    std::to_string(in.image.height) + " but its mask " + std::to_string(in.mask.width) + "x" +
                    std::to_string(in.mask.height));
}

// The height x width window of `in` whose top left is (left, top); outside is padding.
SegmentedImage window(const SegmentedImage& in, int left, int top, int height, int width, int64_t ignore_index) {
  SegmentedImage out{Image(height, width, kPadValue), Mask(height, width, ignore_index)};
  const int x_lo = std::clamp(-left, 0, width), x_hi = std::clamp(in.image.width - left, x_lo, width);
  for (int y = 0; y < height; ++y) {
    const int sy = y + top;
    if (sy < 0 || sy >= in.image.height || x_lo >= x_hi) continue;
    for (int c = 0; c < 3; ++c)
      std::copy_n(&in.image.pixels[(static_cast<size_t>(c) * in.image.height + sy) * in.image.width + x_lo + left],
                  x_hi - x_lo, &out.image.at(c, y, x_lo));
    std::copy_n(&in.mask.ids[static_cast<size_t>(sy) * in.mask.width + x_lo + left], x_hi - x_lo, &out.mask.at(y, x_lo));
  }
  return out;
}

}  // namespace

Mask::Mask(int h, int w, int64_t fill) : height(h), width(w), ids(static_cast<size_t>(h) * w, fill) {}

SegmentedImage resize(const SegmentedImage& in, int height, int width) {
  check_pair(in, "resize");
  return {image_only(resize(LabelledImage{in.image, {}}, height, width)), resize_nearest(in.mask, height, width)};
}

SegmentedImage letterbox(const SegmentedImage& in, int height, int width, int64_t ignore_index) {
  check_pair(in, "letterbox");
  LetterboxInfo info;
  SegmentedImage out{image_only(letterbox(LabelledImage{in.image, {}}, height, width, &info)),
                     Mask(height, width, ignore_index)};
  // The same resized size and offset as the image's (letterbox rounds them this way).
  const int rw = std::clamp(static_cast<int>(std::lround(in.image.width * info.scale_x)), 1, width);
  const int rh = std::clamp(static_cast<int>(std::lround(in.image.height * info.scale_y)), 1, height);
  const Mask resized = resize_nearest(in.mask, rh, rw);
  const int left = static_cast<int>(info.pad_x), top = static_cast<int>(info.pad_y);
  for (int y = 0; y < rh; ++y) std::copy_n(&resized.ids[static_cast<size_t>(y) * rw], rw, &out.mask.at(y + top, left));
  return out;
}

SegmentedImage scale_crop(const SegmentedImage& in, double scale, int left, int top, int height, int width,
                          int64_t ignore_index) {
  check_pair(in, "scale_crop");
  if (!(scale > 0) || height <= 0 || width <= 0)
    throw DataError("scale_crop: the scale and the window must be positive, got scale " + std::to_string(scale) +
                    " and " + std::to_string(width) + "x" + std::to_string(height));
  const int sw = std::max(1, static_cast<int>(std::lround(in.image.width * scale)));
  const int sh = std::max(1, static_cast<int>(std::lround(in.image.height * scale)));
  const SegmentedImage scaled = sw == in.image.width && sh == in.image.height ? in : resize(in, sh, sw);
  return window(scaled, left, top, height, width, ignore_index);
}

SegmentedImage hflip(const SegmentedImage& in) {
  check_pair(in, "hflip");
  SegmentedImage out{image_only(hflip(LabelledImage{in.image, {}})), in.mask};
  for (int y = 0; y < out.mask.height; ++y) {
    int64_t* row = &out.mask.at(y, 0);
    std::reverse(row, row + out.mask.width);
  }
  return out;
}

SegmentedImage hsv_jitter(const SegmentedImage& in, double hue_gain, double saturation_gain, double value_gain) {
  return {image_only(hsv_jitter(LabelledImage{in.image, {}}, hue_gain, saturation_gain, value_gain)), in.mask};
}

}  // namespace onnxtrain
