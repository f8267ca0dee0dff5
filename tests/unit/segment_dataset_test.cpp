// Segmentation datasets: images paired with masks by relative path and stem, batches in the
// documented format, palettes, augmentation that keeps masks aligned and is a function of
// (seed, epoch, index), and every data problem reported before training.
#include <gtest/gtest.h>

#include <cmath>

#include "onnxtrain/segmentation.h"
#include "tests/support/data_fixture.h"
#include "tests/support/segment_scenes.h"

// Declarations only: data_image_test.cpp compiles stb_image_write into this test binary.
#include <stb/stb_image_write.h>

using namespace onnxtrain;
using namespace onnxtrain::test::data;
using onnxtrain::test::segment::expect_aligned;
using onnxtrain::test::segment::scene;

namespace {

class SegmentDataTest : public DataTest {
 protected:
  void png(const std::string& name, int h, int w, int channels, const std::vector<uint8_t>& px) {
    fs::create_directories(fs::path(path(name)).parent_path());
    ASSERT_TRUE(stbi_write_png(path(name).c_str(), w, h, channels, px.data(), w * channels)) << name;
  }
  void image(const std::string& name, const SegmentedImage& s) {
    std::vector<uint8_t> px(static_cast<size_t>(s.image.height) * s.image.width * 3);
    for (int y = 0; y < s.image.height; ++y)
      for (int x = 0; x < s.image.width; ++x)
        for (int c = 0; c < 3; ++c)
          px[(static_cast<size_t>(y) * s.image.width + x) * 3 + c] = static_cast<uint8_t>(std::lround(s.image.at(c, y, x) * 255));
    png(name, s.image.height, s.image.width, 3, px);
  }
  // Class ids as 8-bit grey, or the palette's colours.
  void mask(const std::string& name, const Mask& m, const Palette* palette = nullptr) {
    std::vector<uint8_t> px;
    for (int64_t id : m.ids) {
      if (!palette) px.push_back(static_cast<uint8_t>(id));
      else for (uint8_t v : id == 255 ? *palette->ignore : palette->colors.at(static_cast<size_t>(id))) px.push_back(v);
    }
    png(name, m.height, m.width, palette ? 3 : 1, px);
  }
  // a: 48x32 scene, sub/b: 48x32 with an ignored band; both with their masks.
  void two_pairs(const Palette* palette = nullptr) {
    const SegmentedImage a = scene(32, 48, {{1, 6, 4, 30, 20}, {2, 20, 14, 40, 30}});
    SegmentedImage b = scene(32, 48, {{2, 2, 2, 10, 10}});
    for (int x = 0; x < 48; ++x) b.mask.at(31, x) = 255;
    image("img/a.png", a), mask("msk/a.png", a.mask, palette);
    image("img/sub/b.png", b), mask("msk/sub/b.png", b.mask, palette);
  }
  SegmentationOptions options() const { return {.height = 32, .width = 48, .num_classes = 3}; }
};

TEST_F(SegmentDataTest, PairsByStemAndBatchesMasksAsInt64) {
  two_pairs();
  const auto ds = open_segmentation(path("img"), path("msk"), options());
  ASSERT_EQ(ds->size(), 2);
  EXPECT_EQ(ds->records()[1].mask, path("msk/sub/b.png"));
  const auto batch = ds->batch(iota(2));
  EXPECT_EQ(batch.at("images").shape(), (Shape{2, 3, 32, 48}));
  EXPECT_EQ(batch.at("mask").shape(), (Shape{2, 32, 48}));
  const auto ids = batch.at("mask").to_vector<int64_t>();
  EXPECT_EQ(ids[4 * 48 + 6], 1);
  EXPECT_EQ(ids[29 * 48 + 39], 2);
  EXPECT_EQ(ids[32 * 48 + 31 * 48 + 5], 255);  // b's ignored band
  EXPECT_FLOAT_EQ(batch.at("images").data<float>()[4 * 48 + 6], 1.0f);  // a's red channel in the rectangle
  expect_aligned(ds->sample(0, {}));
}

TEST_F(SegmentDataTest, PaletteMasksMapColoursToClasses) {
  const Palette voc = voc_palette();
  EXPECT_EQ(voc.colors.size(), 21u);
  EXPECT_EQ(voc.colors[1], (Rgb{128, 0, 0}));
  EXPECT_EQ(voc.colors[15], (Rgb{192, 128, 128}));
  EXPECT_EQ(*voc.ignore, (Rgb{224, 224, 192}));
  two_pairs(&voc);
  SegmentationOptions o = options();
  o.palette = voc;
  const auto ds = open_segmentation(path("img"), path("msk"), o);
  const auto ids = ds->batch(iota(2)).at("mask").to_vector<int64_t>();
  EXPECT_EQ(ids[4 * 48 + 6], 1);
  EXPECT_EQ(ids[32 * 48 + 31 * 48 + 5], 255);
  // A palette file: "R G B" a class, "ignore R G B".
  const Palette file = read_palette(write("p.txt", "# classes\n0 0 0\n128,0,0\n\n0 128 0\nignore 224 224 192\n"));
  EXPECT_EQ(file.colors.size(), 3u);
  EXPECT_EQ(file.colors[2], (Rgb{0, 128, 0}));
  EXPECT_EQ(file.ignore, voc.ignore);
  EXPECT_ERROR(read_palette(write("bad.txt", "0 0 0\n1 2\n")), "bad.txt:2", "expected 'R G B'");
  EXPECT_ERROR(read_palette(path("none.txt")), "cannot open the palette file");
}

TEST_F(SegmentDataTest, AugmentationIsReproducibleAndKeepsMasksAligned) {
  two_pairs();
  SegmentationOptions o = options();
  o.hsv_h = o.hsv_s = o.hsv_v = 0;
  o.scale_min = 0.5, o.scale_max = 2.0;
  const auto ds = open_segmentation(path("img"), path("msk"), o);
  int differ = 0;
  for (int64_t epoch = 0; epoch < 6; ++epoch) {
    const BatchOptions b{.seed = 7, .epoch = epoch, .augment = true};
    const SegmentedImage s = ds->sample(0, b);
    // Most pixels keep a clear colour: the check is not vacuous.
    EXPECT_GT(expect_aligned(s, 255, true), 32 * 48 / 3);
    EXPECT_EQ(ds->sample(0, b).mask.ids, s.mask.ids);  // a pure function of (seed, epoch, index)
    differ += s.mask.ids != ds->sample(0, {}).mask.ids;
  }
  EXPECT_GE(differ, 5);
}

TEST_F(SegmentDataTest, EveryProblemIsReportedBeforeTraining) {
  two_pairs();
  const SegmentedImage c = scene(16, 16, {{1, 2, 2, 6, 6}});
  image("img/lonely.png", c);                     // no mask
  mask("msk/orphan.png", c.mask);                 // no image
  write("img/broken.png", "not a png");           // unreadable
  mask("msk/broken.png", c.mask);
  image("img/small.png", c);                      // size mismatch
  mask("msk/small.png", Mask(16, 20, 0));
  image("img/high.png", c);                       // class 7 >= 3
  Mask high = c.mask;
  high.at(3, 5) = 7, high.at(4, 5) = 7;
  mask("msk/high.png", high);
  image("img/colour.png", c);                     // colour in a class-id mask
  std::vector<uint8_t> colour(16 * 16 * 3, 0);
  colour[(2 * 16 + 1) * 3] = 200;
  png("msk/colour.png", 16, 16, 3, colour);
  EXPECT_ERROR(open_segmentation(path("img"), path("msk"), options()), "6 problems",
               "lonely.png: an image without a mask", "orphan.png: a mask without an image",
               "broken.png: cannot read the image", "small.png: the mask is 20x16 but its image",
               "high.png: pixel (x=5, y=3) has class 7, outside [0, 3) and not the ignore value 255 (2 such pixels)",
               "colour.png: pixel (x=1, y=2) has colour (200, 0, 0); class-id masks are grey");
  // Palette masks: a colour that is not in the palette.
  fs::remove_all(path("img")), fs::remove_all(path("msk"));
  const Palette voc = voc_palette();
  two_pairs(&voc);
  colour.assign(32 * 48 * 3, 0);
  colour[(3 * 48 + 9) * 3 + 1] = 17;
  png("msk/a.png", 32, 48, 3, colour);
  SegmentationOptions o = options();
  o.palette = voc;
  EXPECT_ERROR(open_segmentation(path("img"), path("msk"), o), "1 problem",
               "a.png: pixel (x=9, y=3) has colour (0, 17, 0), which is not in the palette");
}

TEST_F(SegmentDataTest, ManyProblemsShowTheFirstTen) {
  for (int i = 0; i < 12; ++i) image("img/x" + std::to_string(i) + ".png", scene(4, 4, {}));
  EXPECT_ERROR(open_segmentation(path("img"), path("msk_missing"), options()), "does not exist");
  fs::create_directories(path("msk"));
  EXPECT_ERROR(open_segmentation(path("img"), path("msk"), options()), "12 problems (the first 10)");
}

}  // namespace
