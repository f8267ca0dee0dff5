#pragma once
// Segmentation scenes for tests: a blue image with red (class 1) and green (class 2)
// rectangles and the mask that labels them, and a check that a transformed image and
// mask still agree pixel by pixel.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "onnxtrain/segmentation.h"

namespace onnxtrain::test::segment {

struct Rect {
  int64_t cls;  // 1: red, 2: green
  int x1, y1, x2, y2;  // pixels [x1, x2) x [y1, y2)
};

inline SegmentedImage scene(int height, int width, const std::vector<Rect>& rects) {
  SegmentedImage s{Image(height, width), Mask(height, width, 0)};
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) s.image.at(2, y, x) = 1;
  for (const Rect& r : rects)
    for (int y = r.y1; y < r.y2; ++y)
      for (int x = r.x1; x < r.x2; ++x) {
        s.image.at(0, y, x) = r.cls == 1 ? 1.0f : 0.0f;
        s.image.at(1, y, x) = r.cls == 2 ? 1.0f : 0.0f;
        s.image.at(2, y, x) = 0;
        s.mask.at(y, x) = r.cls;
      }
  return s;
}

// The class a pixel's colour shows: red 1, green 2, else 0.
inline int64_t color_class(const Image& im, int y, int x) {
  return im.at(0, y, x) > 0.5f ? 1 : im.at(1, y, x) > 0.5f ? 2 : 0;
}

// Every pixel not ignored has the class its colour shows; returns the pixels checked.
// `edge_blur`: pixels whose colour is a blend (a channel within 0.3 of 0.5: a resampling
// filter straddled an edge) are not checked. Resizing by an integer factor needs none;
// at other scales the nearest source pixel and the filter's majority can disagree there.
inline int64_t expect_aligned(const SegmentedImage& s, int64_t ignore_index = 255, bool edge_blur = false) {
  EXPECT_EQ(s.image.height, s.mask.height);
  EXPECT_EQ(s.image.width, s.mask.width);
  int64_t checked = 0, wrong = 0;
  std::string first;
  for (int y = 0; y < s.mask.height; ++y)
    for (int x = 0; x < s.mask.width; ++x) {
      if (s.mask.at(y, x) == ignore_index) continue;
      const auto blended = [&](int c) { return std::abs(s.image.at(c, y, x) - 0.5f) < 0.3f; };
      if (edge_blur && (blended(0) || blended(1) || blended(2))) continue;
      ++checked;
      if (s.mask.at(y, x) != color_class(s.image, y, x) && wrong++ == 0)
        first = "(" + std::to_string(x) + ", " + std::to_string(y) + "): mask " + std::to_string(s.mask.at(y, x)) +
                ", colour class " + std::to_string(color_class(s.image, y, x));
    }
  EXPECT_EQ(wrong, 0) << "pixels whose mask disagrees with the image, the first at " << first;
  return checked;
}

}  // namespace onnxtrain::test::segment
