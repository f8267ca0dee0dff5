// Joint segmentation transforms keep the mask on its image pixel-exactly: scenes with red
// and green rectangles go through each transform, and every pixel's mask class must equal
// the class its colour shows (the image is resampled bilinearly, the mask nearest).
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include "onnxtrain/segmentation.h"
#include "tests/support/segment_scenes.h"

using namespace onnxtrain;
using onnxtrain::test::segment::expect_aligned;
using onnxtrain::test::segment::scene;

namespace {

const std::vector<onnxtrain::test::segment::Rect> kRects = {{1, 6, 4, 30, 20}, {2, 20, 14, 40, 30}};

TEST(SegmentTransforms, CheckNoticesAShiftedMask) {
  SegmentedImage s = scene(32, 48, kRects);
  EXPECT_EQ(expect_aligned(s), 32 * 48);
  s.mask.at(4, 5) = 1;  // one pixel left of the red rectangle
  EXPECT_NONFATAL_FAILURE(expect_aligned(s), "the first at (5, 4)");
}

TEST(SegmentTransforms, ResizeUpAndDownStaysAligned) {
  const SegmentedImage s = scene(32, 48, kRects);
  const SegmentedImage up = resize(s, 64, 96);
  EXPECT_EQ(up.mask.at(8, 12), 1);   // the red rectangle's top left corner, doubled
  EXPECT_EQ(up.mask.at(7, 12), 0);
  EXPECT_EQ(expect_aligned(up), 64 * 96);
  // Halving: rectangle edges on even coordinates are whole output pixels.
  const SegmentedImage down = resize(s, 16, 24);
  EXPECT_EQ(down.mask.at(2, 3), 1);
  EXPECT_EQ(expect_aligned(down), 16 * 24);
}

TEST(SegmentTransforms, LetterboxPadsTheMaskWithIgnore) {
  const SegmentedImage out = letterbox(scene(32, 48, kRects), 96, 96, 255);
  ASSERT_EQ(out.mask.height, 96);
  // 48x32 -> 96x64, 16 rows of padding above and below.
  EXPECT_EQ(out.mask.at(15, 50), 255);
  EXPECT_EQ(out.mask.at(80, 50), 255);
  EXPECT_FLOAT_EQ(out.image.at(0, 15, 50), kPadValue);
  EXPECT_EQ(out.mask.at(16 + 8, 12), 1);
  EXPECT_EQ(expect_aligned(out), 96 * 64);
}

TEST(SegmentTransforms, ScaleCropMovesBothAndPadsOutside) {
  const SegmentedImage s = scene(32, 48, kRects);
  // Doubled (96x64), window of 40x30 from (10, 6): the red corner (12, 8) lands at (2, 2).
  const SegmentedImage crop = scale_crop(s, 2.0, 10, 6, 30, 40, 255);
  EXPECT_EQ(crop.mask.at(2, 2), 1);
  EXPECT_EQ(crop.mask.at(1, 2), 0);
  EXPECT_EQ(expect_aligned(crop), 30 * 40);
  // A window reaching outside the (unscaled) image: padded, ignored.
  const SegmentedImage shifted = scale_crop(s, 1.0, -5, -3, 32, 48, 255);
  EXPECT_EQ(shifted.mask.at(2, 10), 255);
  EXPECT_EQ(shifted.mask.at(3, 4), 255);
  EXPECT_EQ(shifted.mask.at(3 + 4, 5 + 6), 1);
  EXPECT_EQ(expect_aligned(shifted), (32 - 3) * (48 - 5));
}

TEST(SegmentTransforms, FlipAndHsvJitter) {
  const SegmentedImage s = scene(32, 48, kRects);
  const SegmentedImage flipped = hflip(s);
  EXPECT_EQ(flipped.mask.at(4, 47 - 6), 1);
  EXPECT_EQ(flipped.mask.at(4, 6), 0);
  expect_aligned(flipped);
  const SegmentedImage jittered = hsv_jitter(s, 1.0, 0.8, 0.9);
  EXPECT_EQ(jittered.mask.ids, s.mask.ids);
  EXPECT_NEAR(jittered.image.at(0, 5, 10), 0.9f, 1e-6);  // value scaled
  expect_aligned(jittered);
}

TEST(SegmentTransforms, MismatchedPairIsRefused) {
  SegmentedImage s = scene(8, 8, {});
  s.mask = Mask(8, 9);
  EXPECT_THROW(resize(s, 4, 4), DataError);
}

}  // namespace
