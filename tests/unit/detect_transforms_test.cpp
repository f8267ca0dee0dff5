// Detection transforms keep boxes on their objects: scenes with red rectangles on a blue
// background go through each transform, and every box must still enclose exactly the red
// pixels of its rectangle (within the blur of resampling) and no red pixel may lie outside
// every box.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <cmath>

#include "onnxtrain/detection.h"
#include "tests/support/detect_scenes.h"

using namespace onnxtrain;
using onnxtrain::test::detect::expect_box;
using onnxtrain::test::detect::expect_boxes_fit;
using onnxtrain::test::detect::scene;

namespace {

TEST(DetectTransforms, SceneCheckNoticesAWrongBox) {
  LabelledImage s = scene(64, 80, {{0, 20, 10, 50, 30}});
  expect_boxes_fit(s);
  s.boxes[0].x2 += 4;  // a box wider than its rectangle must fail the check
  EXPECT_NONFATAL_FAILURE(expect_boxes_fit(s), "box 0");
  s.boxes.clear();  // and red pixels outside every box too
  EXPECT_NONFATAL_FAILURE(expect_boxes_fit(s), "outside every box");
}

TEST(DetectTransforms, LetterboxScalesCentresAndMapsBack) {
  const LabelledImage s = scene(64, 80, {{2, 20, 10, 50, 30}});
  LetterboxInfo info;
  const LabelledImage out = letterbox(s, 100, 100, &info);
  ASSERT_EQ(out.image.height, 100);
  ASSERT_EQ(out.image.width, 100);
  EXPECT_DOUBLE_EQ(info.scale_x, 1.25);
  EXPECT_DOUBLE_EQ(info.scale_y, 1.25);
  EXPECT_DOUBLE_EQ(info.pad_x, 0);
  EXPECT_DOUBLE_EQ(info.pad_y, 10);  // 64 * 1.25 = 80 rows, 20 rows of padding split evenly
  ASSERT_EQ(out.boxes.size(), 1u);
  EXPECT_EQ(out.boxes[0].cls, 2);
  expect_box(out.boxes[0], 25, 22.5, 62.5, 47.5);
  expect_boxes_fit(out);
  EXPECT_FLOAT_EQ(out.image.at(1, 5, 50), kPadValue);  // padding is grey
  EXPECT_FLOAT_EQ(out.image.at(1, 95, 50), kPadValue);
  expect_box(info.to_original(out.boxes[0]), 20, 10, 50, 30, 1e-4);
  // Shrinking (a tall target) pads left and right instead.
  LetterboxInfo small;
  const LabelledImage tall = letterbox(s, 96, 40, &small);
  EXPECT_DOUBLE_EQ(small.scale_x, 0.5);
  EXPECT_DOUBLE_EQ(small.pad_x, 0);
  EXPECT_DOUBLE_EQ(small.pad_y, 32);
  expect_boxes_fit(tall);
}

TEST(DetectTransforms, FlipMirrorsBoxes) {
  const LabelledImage out = hflip(scene(64, 80, {{1, 20, 10, 50, 30}, {0, 60, 40, 76, 60}}));
  ASSERT_EQ(out.boxes.size(), 2u);
  expect_box(out.boxes[0], 30, 10, 60, 30);
  expect_box(out.boxes[1], 4, 40, 20, 60);
  EXPECT_EQ(out.boxes[1].cls, 0);
  expect_boxes_fit(out);
}

TEST(DetectTransforms, AffineMovesBoxesWithPixels) {
  const LabelledImage s = scene(64, 80, {{0, 20, 10, 50, 30}, {1, 55, 38, 70, 58}});
  for (const AffineParams& p : {AffineParams{0, 1, 0, 0}, AffineParams{0, 0.7, 0.1, -0.05}, AffineParams{0, 1.4, -0.1, 0.1},
                                AffineParams{12, 1, 0, 0}, AffineParams{-25, 0.9, 0.05, 0.05}}) {
    SCOPED_TRACE("degrees " + std::to_string(p.degrees) + " scale " + std::to_string(p.scale));
    const LabelledImage out = affine(s, p, 72, 96);
    ASSERT_EQ(out.image.height, 72);
    ASSERT_EQ(out.image.width, 96);
    EXPECT_EQ(out.boxes.size(), 2u);
    expect_boxes_fit(out, p.degrees == 0 ? 1.0 : 1.6);
  }
  // The identity at the same size keeps boxes and pixels.
  const LabelledImage same = affine(s, {}, 64, 80);
  ASSERT_EQ(same.boxes.size(), 2u);
  expect_box(same.boxes[1], 55, 38, 70, 58);
  EXPECT_NEAR(same.image.at(0, 20, 30), s.image.at(0, 20, 30), 1e-6);
}

TEST(DetectTransforms, AffineDropsBoxesThatLeaveTheImage) {
  const LabelledImage s = scene(64, 80, {{0, 4, 4, 20, 20}, {1, 40, 20, 60, 44}});
  // Shifted left by 24 pixels: box 0 keeps none of itself, box 1 stays whole.
  const LabelledImage out = affine(s, {0, 1, -0.3, 0}, 64, 80);
  ASSERT_EQ(out.boxes.size(), 1u);
  EXPECT_EQ(out.boxes[0].cls, 1);
  EXPECT_FLOAT_EQ(out.boxes[0].x1, 16);
  expect_boxes_fit(out);
  // Shifted so that 3 of box 0's 16 columns remain (19% of its area): kept and clipped;
  // with 1 column it is below the 2-pixel minimum and dropped.
  const LabelledImage edge = affine(s, {0, 1, -17.0 / 80, 0}, 64, 80);
  ASSERT_EQ(edge.boxes.size(), 2u);
  EXPECT_FLOAT_EQ(edge.boxes[0].x1, 0);
  EXPECT_FLOAT_EQ(edge.boxes[0].x2, 3);
  expect_boxes_fit(edge);
  EXPECT_EQ(affine(s, {0, 1, -19.0 / 80, 0}, 64, 80).boxes.size(), 1u);
}

TEST(DetectTransforms, BoxCandidates) {
  const Box before{0, 0, 0, 40, 40};
  EXPECT_TRUE(box_candidate(before, {0, 0, 0, 40, 40}, 1));
  EXPECT_TRUE(box_candidate(before, {0, 0, 0, 20, 20}, 0.5));   // scaled along: all its area
  EXPECT_FALSE(box_candidate(before, {0, 0, 0, 40, 3}, 1));     // 7.5% of its area left
  EXPECT_FALSE(box_candidate(before, {0, 0, 0, 40, 1.5f}, 1));  // thinner than 2 pixels
  EXPECT_FALSE(box_candidate({0, 0, 0, 400, 4}, {0, 0, 0, 400, 3.9f}, 1));  // aspect ratio > 100
}

TEST(DetectTransforms, HsvChangesColoursNotBoxes) {
  const LabelledImage s = scene(64, 80, {{0, 20, 10, 50, 30}});
  const LabelledImage out = hsv_jitter(s, 1.1, 0.8, 0.9);
  ASSERT_EQ(out.boxes.size(), 1u);
  expect_box(out.boxes[0], 20, 10, 50, 30);
  // Pure red keeps hue 0; saturation 0.8 and value 0.9 give (0.9, 0.18, 0.18).
  EXPECT_NEAR(out.image.at(0, 20, 30), 0.9, 1e-5);
  EXPECT_NEAR(out.image.at(1, 20, 30), 0.18, 1e-5);
  EXPECT_NEAR(out.image.at(2, 20, 30), 0.18, 1e-5);
  expect_boxes_fit(out);
  // Gains of one change nothing.
  const LabelledImage same = hsv_jitter(s, 1, 1, 1);
  for (size_t i = 0; i < s.image.pixels.size(); ++i) ASSERT_NEAR(same.image.pixels[i], s.image.pixels[i], 1e-6);
}

TEST(DetectTransforms, MosaicPlacesFourTilesAroundTheCentre) {
  const std::array<LabelledImage, 4> tiles = {scene(40, 50, {{0, 10, 10, 30, 30}}), scene(30, 60, {{1, 5, 5, 25, 20}}),
                                              scene(50, 40, {{2, 20, 30, 36, 46}}), scene(40, 40, {{3, 2, 2, 12, 38}})};
  const LabelledImage out = mosaic(tiles, 100, 120, 55, 45);
  ASSERT_EQ(out.boxes.size(), 4u);
  // Tile 0 ends at the centre (its box moves by (55 - 50, 45 - 40)), tile 1 starts right of
  // it, tiles 2 and 3 below.
  expect_box(out.boxes[0], 15, 15, 35, 35);
  expect_box(out.boxes[1], 60, 20, 80, 35);
  expect_box(out.boxes[2], 35, 75, 51, 91);
  expect_box(out.boxes[3], 57, 47, 67, 83);
  expect_boxes_fit(out);
  EXPECT_FLOAT_EQ(out.image.at(0, 2, 2), kPadValue);  // outside every tile: grey

  // A centre near the right edge leaves tile 3's box one column (dropped) and pushes tile
  // 1's box off the canvas.
  const LabelledImage edge = mosaic(tiles, 100, 120, 117, 45);
  ASSERT_EQ(edge.boxes.size(), 2u);
  EXPECT_EQ(edge.boxes[0].cls, 0);
  EXPECT_EQ(edge.boxes[1].cls, 2);
  // The one-column sliver of tile 3's rectangle (36 rows) stays in the pixels without a box,
  // as in Ultralytics; everything else fits.
  EXPECT_NONFATAL_FAILURE(expect_boxes_fit(edge), "36 red pixels lie outside every box");
}

}  // namespace
