// Drawing results into images for the run directory: boxes, labels and PNG encoding.
#include <gtest/gtest.h>
#include <stb/stb_image.h>

#include <filesystem>

#include "src/image_draw.h"

using namespace onnxtrain;

namespace {

bool is(const Image& im, int y, int x, const Colour& c) {
  return im.at(0, y, x) == c[0] && im.at(1, y, x) == c[1] && im.at(2, y, x) == c[2];
}

}  // namespace

TEST(ImageDraw, BoxOutlineCoversItsEdgesAndLeavesTheInsideAlone) {
  Image im(40, 50, 0.5f);
  const Colour red{1, 0, 0};
  draw_box(im, Box{.cls = 0, .x1 = 10, .y1 = 5, .x2 = 30, .y2 = 25}, red, 2);
  for (int x = 10; x < 30; ++x) {
    EXPECT_TRUE(is(im, 5, x, red) && is(im, 6, x, red) && is(im, 24, x, red) && is(im, 23, x, red)) << x;
    EXPECT_FALSE(is(im, 4, x, red) || is(im, 25, x, red)) << x;
  }
  for (int y = 5; y < 25; ++y) EXPECT_TRUE(is(im, y, 10, red) && is(im, y, 29, red)) << y;
  for (int y = 7; y < 23; ++y)
    for (int x = 12; x < 28; ++x) ASSERT_EQ(im.at(0, y, x), 0.5f) << y << "," << x;
  // Clipped, never out of bounds; a degenerate box draws nothing.
  draw_box(im, Box{.cls = 0, .x1 = -20, .y1 = -20, .x2 = 100, .y2 = 100}, red, 3);
  Image untouched(10, 10, 0.25f);
  draw_box(untouched, Box{.cls = 0, .x1 = 5, .y1 = 5, .x2 = 5, .y2 = 9}, red, 1);
  for (float v : untouched.pixels) ASSERT_EQ(v, 0.25f);
}

TEST(ImageDraw, LabelsHaveInkOnTheirBackgroundAndStayInside) {
  Image im(30, 80, 0.0f);
  const Colour blue{0, 0, 1};
  draw_label(im, 70, -5, "car 0.93", blue);  // pushed back inside
  int background = 0, ink = 0, outside = 0;
  for (int y = 0; y < im.height; ++y)
    for (int x = 0; x < im.width; ++x) {
      if (is(im, y, x, blue)) ++background;
      else if (is(im, y, x, {1, 1, 1})) ++ink;  // white reads on blue
      else if (im.at(0, y, x) != 0 || im.at(2, y, x) != 0) ++outside;
    }
  EXPECT_GT(background, 100);
  EXPECT_GT(ink, 20);
  EXPECT_EQ(outside, 0);
  EXPECT_TRUE(is(im, 0, 79, blue) || is(im, 0, 79, {1, 1, 1})) << "the label was moved to the right edge";
  EXPECT_NE(class_colour(0), class_colour(1));
  EXPECT_EQ(class_colour(3), class_colour(23));
}

TEST(ImageDraw, PngRoundTrips) {
  Image im(3, 4, 0.0f);
  im.at(0, 1, 2) = 1.0f;
  im.at(1, 2, 3) = 0.5f;
  const std::string png = encode_png(im);
  int w = 0, h = 0, channels = 0;
  unsigned char* pixels = stbi_load_from_memory(reinterpret_cast<const unsigned char*>(png.data()),
                                                static_cast<int>(png.size()), &w, &h, &channels, 3);
  ASSERT_NE(pixels, nullptr);
  EXPECT_EQ(w, 4);
  EXPECT_EQ(h, 3);
  EXPECT_EQ(pixels[(1 * 4 + 2) * 3 + 0], 255);
  EXPECT_EQ(pixels[(2 * 4 + 3) * 3 + 1], 128);
  EXPECT_EQ(pixels[0], 0);
  stbi_image_free(pixels);
  EXPECT_THROW(encode_png(Image()), DataError);
}

TEST(ImageDraw, DetectionsAreDrawnInTheirClassColourAndSavedAsPng) {
  Image im(64, 64, 0.0f);
  const Detection found[] = {{.image = 0, .box = Box{.cls = 1, .x1 = 10, .y1 = 20, .x2 = 40, .y2 = 50}, .score = 0.9f}};
  draw_detections(im, found, {"cat", "dog"});
  EXPECT_TRUE(is(im, 49, 20, class_colour(1))) << "bottom edge of the box";
  const auto path = std::filesystem::temp_directory_path() / "onnxtrain_draw_test.png";
  save_png(im, path.string());
  int w = 0, h = 0, channels = 0;
  unsigned char* pixels = stbi_load(path.c_str(), &w, &h, &channels, 3);
  ASSERT_NE(pixels, nullptr);
  EXPECT_EQ(w, 64);
  stbi_image_free(pixels);
  std::filesystem::remove(path);
}
