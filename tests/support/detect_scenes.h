#pragma once
// Detection test scenes: red rectangles on a blue, gently textured background, and the
// check that a transform's boxes still sit on their rectangles.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "onnxtrain/detection.h"

namespace onnxtrain::test::detect {

// Boxes with integer corners; each is filled with pure red.
inline LabelledImage scene(int height, int width, const std::vector<Box>& boxes) {
  LabelledImage s{Image(height, width), boxes};
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      s.image.at(0, y, x) = 0.1f;
      s.image.at(1, y, x) = 0.15f + 0.2f * static_cast<float>((x + 2 * y) % 7) / 7;
      s.image.at(2, y, x) = 0.7f;
    }
  for (const Box& b : boxes)
    for (int y = static_cast<int>(b.y1); y < static_cast<int>(b.y2); ++y)
      for (int x = static_cast<int>(b.x1); x < static_cast<int>(b.x2); ++x) {
        s.image.at(0, y, x) = 1;
        s.image.at(1, y, x) = 0;
        s.image.at(2, y, x) = 0;
      }
  return s;
}

// The corners of `b`, each within `tol`.
inline void expect_box(const Box& b, double x1, double y1, double x2, double y2, double tol = 1e-5) {
  EXPECT_NEAR(b.x1, x1, tol);
  EXPECT_NEAR(b.y1, y1, tol);
  EXPECT_NEAR(b.x2, x2, tol);
  EXPECT_NEAR(b.y2, y2, tol);
}

inline bool red(const Image& im, int y, int x) {
  return im.at(0, y, x) - std::max(im.at(1, y, x), im.at(2, y, x)) > 0.5f;
}

// Every red pixel lies in a box, and each box's edges are within `tol` pixels of the extent
// of the red pixels it holds (resampling blurs edges by about a pixel). `max_stray` red
// pixels may lie outside every box: the slivers of boxes that a crop dropped (box_candidate).
inline void expect_boxes_fit(const LabelledImage& s, double tol = 1.0, int max_stray = 0) {
  const Image& im = s.image;
  auto inside = [&](const Box& b, int y, int x) {
    return x + 0.5 >= b.x1 - tol && x + 0.5 <= b.x2 + tol && y + 0.5 >= b.y1 - tol && y + 0.5 <= b.y2 + tol;
  };
  int stray = 0;
  for (int y = 0; y < im.height; ++y)
    for (int x = 0; x < im.width; ++x)
      if (red(im, y, x) && std::none_of(s.boxes.begin(), s.boxes.end(), [&](const Box& b) { return inside(b, y, x); }))
        ++stray;
  if (stray > max_stray) ADD_FAILURE() << stray << " red pixels lie outside every box";
  for (size_t i = 0; i < s.boxes.size(); ++i) {
    const Box& b = s.boxes[i];
    int x1 = im.width, y1 = im.height, x2 = -1, y2 = -1;
    for (int y = 0; y < im.height; ++y)
      for (int x = 0; x < im.width; ++x)
        if (red(im, y, x) && inside(b, y, x)) x1 = std::min(x1, x), y1 = std::min(y1, y), x2 = std::max(x2, x + 1), y2 = std::max(y2, y + 1);
    if (x2 < 0) {
      ADD_FAILURE() << "box " << i << " holds no red pixel";
      continue;
    }
    const double worst = std::max({std::abs(x1 - b.x1), std::abs(y1 - b.y1), std::abs(x2 - b.x2), std::abs(y2 - b.y2)});
    if (worst > tol)
      ADD_FAILURE() << "box " << i << " (" << b.x1 << ", " << b.y1 << ", " << b.x2 << ", " << b.y2
                    << ") vs its red pixels (" << x1 << ", " << y1 << ", " << x2 << ", " << y2 << "): off by " << worst;
  }
}

}  // namespace onnxtrain::test::detect
