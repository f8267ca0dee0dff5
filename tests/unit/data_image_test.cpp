// Image-folder datasets: classes, decoding, resize (the golden comes from torch, see
// ResizeMatchesTorchvision), crops, augmentation and errors. Fixtures are written to a
// temporary directory by each test.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <thread>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/data_fixture.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

using namespace onnxtrain;
using namespace onnxtrain::test::data;
namespace fs = std::filesystem;

namespace {

// ---- Image folders ------------------------------------------------------------------------

class ImageTest : public DataTest {
 protected:
  // Writes `pixels` (HWC, 8 bits) in the format the extension names.
  void image(const std::string& name, int w, int h, int c, const std::vector<uint8_t>& pixels) {
    const std::string p = path(name);
    fs::create_directories(fs::path(p).parent_path());
    ASSERT_EQ(pixels.size(), static_cast<size_t>(w * h * c));
    const std::string ext = fs::path(p).extension().string();
    int ok = 0;
    if (ext == ".png") ok = stbi_write_png(p.c_str(), w, h, c, pixels.data(), w * c);
    if (ext == ".bmp") ok = stbi_write_bmp(p.c_str(), w, h, c, pixels.data());
    if (ext == ".jpg") ok = stbi_write_jpg(p.c_str(), w, h, c, pixels.data(), 100);
    ASSERT_TRUE(ok) << p;
  }
  std::vector<uint8_t> ramp(int n, int start = 0, int step = 1) {
    std::vector<uint8_t> v(n);
    for (int i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(start + i * step);
    return v;
  }
};

TEST_F(ImageTest, ClassesSortedHiddenAndOtherFilesSkipped) {
  image("imgs/b_dog/1.png", 2, 2, 1, ramp(4));
  image("imgs/a_cat/z.png", 2, 2, 1, ramp(4));
  image("imgs/a_cat/y.bmp", 3, 2, 3, ramp(18));
  image("imgs/.hidden/x.png", 2, 2, 1, ramp(4));
  image("imgs/a_cat/.x.png", 2, 2, 1, ramp(4));
  write("imgs/a_cat/notes.txt", "not an image");
  write("imgs/README", "root files are ignored");
  ImageOptions o;
  o.height = o.width = 2;
  auto d = open_image_folder(path("imgs"), o);
  EXPECT_EQ(d->class_names(), (std::vector<std::string>{"a_cat", "b_dog"}));
  EXPECT_EQ(d->size(), 3);
  EXPECT_EQ(labels(d), (std::vector<int64_t>{0, 0, 1}));
  EXPECT_EQ(d->find("input")->sample_shape, (Shape{3, 2, 2}));
  EXPECT_EQ(d->find("input")->dtype, DType::Float);
}

TEST_F(ImageTest, CenterCropAndNormalisationExact) {
  // Gray 4 wide x 6 high: the shorter side already is 4, so no resize; a 2x4 crop starts at
  // row round((6 - 2) / 2) = 2.
  const auto gray = ramp(24, 10, 10);
  image("g/c/a.png", 4, 6, 1, gray);
  ImageOptions o;
  o.channels = 1;
  o.height = 2;
  o.width = 4;
  o.mean = {0.5f};
  o.std = {0.25f};
  auto d = open_image_folder(path("g"), o);
  std::vector<float> expected;
  for (int y = 2; y < 4; ++y)
    for (int x = 0; x < 4; ++x) expected.push_back((gray[y * 4 + x] / 255.0f - 0.5f) / 0.25f);
  auto got = features(d);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-5) << i;

  // RGB BMP 5 wide x 3 high, 3x3 crop: columns from round((5 - 3) / 2) = 1, ImageNet stats.
  const auto rgb = ramp(45, 0, 5);
  image("c/k/b.bmp", 5, 3, 3, rgb);
  ImageOptions o3;
  o3.height = o3.width = 3;
  auto d3 = open_image_folder(path("c"), o3);
  const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
  got = features(d3);
  ASSERT_EQ(got.size(), 27u);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 3; ++x)
        EXPECT_NEAR(got[(c * 3 + y) * 3 + x], (rgb[(y * 5 + x + 1) * 3 + c] / 255.0f - mean[c]) / std[c], 1e-5);

  // The gray PNG read as RGB repeats the gray value in each channel.
  ImageOptions og = o3;
  og.height = 2;
  og.width = 4;
  og.mean = {0, 0, 0};
  og.std = {1, 1, 1};
  got = features(open_image_folder(path("g"), og));
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 8; ++i) EXPECT_NEAR(got[c * 8 + i], gray[8 + i] / 255.0f, 1e-6);
}

TEST_F(ImageTest, ResizeMatchesTorchvision) {
  // 7 wide x 5 high, pixel = 0..34; shorter side to 3 gives 4x3. Expected values:
  // torch.nn.functional.interpolate(torch.arange(35.).reshape(1,1,5,7), size=(3,4),
  //                                 mode='bilinear', antialias=True)
  image("r/c/a.png", 7, 5, 1, ramp(35));
  const double torch[] = {3.523809523809525, 5.08,  6.920000000000001,  8.476190476190478,
                          14.523809523809526, 16.08, 17.92,              19.47619047619048,
                          25.52380952380953,  27.080000000000005, 28.920000000000005, 30.476190476190485};
  ImageOptions o;
  o.channels = 1;
  o.height = 3;
  o.width = 4;
  o.resize_to = 3;
  auto got = features(open_image_folder(path("r"), o));
  ASSERT_EQ(got.size(), 12u);
  for (int i = 0; i < 12; ++i) EXPECT_NEAR(got[i] * 255.0, torch[i], 1e-4) << i;
}

TEST_F(ImageTest, JpegOfAnySizeIsResizedToTheCrop) {
  image("j/c/big.jpg", 40, 30, 3, std::vector<uint8_t>(40 * 30 * 3, 200));
  image("j/c/small.png", 3, 5, 1, std::vector<uint8_t>(15, 100));
  ImageOptions o;
  o.height = o.width = 8;
  o.resize_to = 10;
  o.mean = {0, 0, 0};
  o.std = {1, 1, 1};
  auto d = open_image_folder(path("j"), o);
  auto b = d->batch(iota(2)).at("input");
  EXPECT_EQ(b.shape(), (Shape{2, 3, 8, 8}));
  auto v = b.to_vector<float>();
  for (size_t i = 0; i < 192; ++i) ASSERT_NEAR(v[i] * 255, 200, 2) << i;  // JPEG is lossy
  for (size_t i = 192; i < 384; ++i) ASSERT_NEAR(v[i] * 255, 100, 1e-3) << i;
}

TEST_F(ImageTest, RandomCropAndFlipDependOnSeedEpochSampleOnly) {
  image("a/c/a.png", 6, 6, 1, ramp(36, 0, 7));
  ImageOptions o;
  o.channels = 1;
  o.height = o.width = 3;
  o.resize_to = 6;
  o.crop = ImageOptions::Crop::Random;
  o.hflip = true;
  auto d = open_image_folder(path("a"), o);
  const std::vector<int64_t> idx = {0};
  auto read = [&](uint64_t seed, int64_t epoch, bool augment) {
    BatchOptions b;
    b.seed = seed;
    b.epoch = epoch;
    b.augment = augment;
    return d->batch(idx, b).at("input").to_vector<float>();
  };
  EXPECT_EQ(read(1, 0, true), read(1, 0, true));
  std::set<std::vector<float>> seen;
  for (int epoch = 0; epoch < 20; ++epoch) seen.insert(read(1, epoch, true));
  EXPECT_GT(seen.size(), 4u);  // 16 crops x 2 flips
  // Without augmentation: the center crop, whatever the seed and epoch.
  EXPECT_EQ(read(1, 3, false), read(2, 7, false));
  std::vector<float> center;
  for (int y = 2; y < 5; ++y)  // round(1.5) = 2 (halves to even, as Python's round)
    for (int x = 2; x < 5; ++x) center.push_back(static_cast<float>((y * 6 + x) * 7 / 255.0 * 1.0));
  auto got = read(0, 0, false);
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(got[i], center[i], 1e-6);
}

TEST_F(ImageTest, LoaderAugmentationIsReproducibleAfterSeekAndAcrossThreads) {
  for (int i = 0; i < 4; ++i) image("l/c/" + std::to_string(i) + ".png", 6, 5, 3, ramp(90, i * 9, 2));
  ImageOptions o;
  o.height = o.width = 3;
  o.resize_to = 5;
  o.crop = ImageOptions::Crop::Random;
  o.hflip = true;
  auto d = open_image_folder(path("l"), o);
  LoaderOptions lo;
  lo.batch_size = 2;
  lo.seed = 9;
  DataLoader run(d, lo);
  std::vector<std::vector<float>> pixels;
  for (int i = 0; i < 6; ++i) pixels.push_back(run.next().arrays.at("input").to_vector<float>());
  DataLoader resumed(d, lo);
  resumed.seek(1, 1);
  for (int i = 3; i < 6; ++i) EXPECT_EQ(resumed.next().arrays.at("input").to_vector<float>(), pixels[i]) << i;

  // Several threads reading the same samples at once get the same values.
  BatchOptions b;
  b.augment = true;
  const auto expected = d->batch(iota(4), b).at("input").to_vector<float>();
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int k = 0; k < 5; ++k) mismatches += d->batch(iota(4), b).at("input").to_vector<float>() != expected;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);

  // Without augmentation the loader reads center crops.
  lo.augment = false;
  lo.shuffle = false;
  DataLoader plain(d, lo);
  EXPECT_EQ(plain.next().arrays.at("input").to_vector<float>(), d->batch(iota(2)).at("input").to_vector<float>());
}

TEST_F(ImageTest, OpenTimeErrorsNameThePath) {
  ImageOptions o;
  o.height = o.width = 2;
  image("u/ok/a.png", 2, 2, 1, ramp(4));
  write("u/ok/broken.png", "definitely not a png");
  EXPECT_ERROR(open_image_folder(path("u"), o), "broken.png", "not a readable image");
  image("e/full/a.png", 2, 2, 1, ramp(4));
  fs::create_directories(path("e/empty"));
  write("e/empty/readme.txt", "x");
  EXPECT_ERROR(open_image_folder(path("e"), o), "class folder", "e/empty", "holds no images");
  fs::create_directories(path("none"));
  EXPECT_ERROR(open_image_folder(path("none"), o), "none", "has no class folders");
  EXPECT_ERROR(open_image_folder(path("nowhere"), o), "nowhere", "is not a directory");
  ImageOptions bad = o;
  bad.channels = 4;
  EXPECT_ERROR(open_image_folder(path("e"), bad), "1 or 3 channels");
  bad = o;
  bad.height = 0;
  EXPECT_ERROR(open_image_folder(path("e"), bad), "height and width");
  bad = o;
  bad.resize_to = 1;
  EXPECT_ERROR(open_image_folder(path("e"), bad), "too little for a 2x2 crop");
  image("p/c/portrait.png", 2, 4, 1, ramp(8));
  bad = o;
  bad.height = 2;
  bad.width = 3;
  bad.resize_to = 2;  // fits the crop's height, not this portrait image's width
  EXPECT_ERROR(open_image_folder(path("p"), bad), "portrait.png' is 2x4", "2x4 once", "too small for a 3x2 crop");
  bad = o;
  bad.mean = {0.5f};
  EXPECT_ERROR(open_image_folder(path("e"), bad), "1 mean values for 3 channels");
}

TEST_F(ImageTest, DecodeErrorsAtBatchTimeNameThePath) {
  // A valid header with truncated pixel data passes the open-time check; decoding fails.
  image("t/c/a.png", 16, 16, 3, ramp(768, 0, 1));
  std::string bytes;
  {
    std::ifstream in(path("t/c/a.png"), std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  write("t/c/a.png", bytes.substr(0, bytes.size() / 2));
  ImageOptions o;
  o.height = o.width = 4;
  auto d = open_image_folder(path("t"), o);
  EXPECT_ERROR(d->batch(iota(1)), "a.png", "cannot decode");
}

TEST_F(ImageTest, PnmMustHoldEveryPixelItsHeaderPromises) {
  ImageOptions o;
  o.height = o.width = 2;
  o.channels = 1;
  // 8-bit P6 and 16-bit P5 (big-endian samples) with exactly their bytes: accepted.
  write("ok/a/rgb.ppm", std::string("P6\n2 2\n255\n") + std::string(12, '\x80'));
  write("ok/b/gray16.pgm", std::string("P5 # comment\n2 2 65535\n") + std::string(8, '\x40'));
  auto d = open_image_folder(path("ok"), o);
  const auto v = d->batch(iota(2)).at("input").to_vector<float>();
  ASSERT_EQ(v.size(), 8u);
  EXPECT_NEAR(v[0], 128.f / 255.f, 1e-6);
  EXPECT_NEAR(v[4], 64.f / 255.f, 1e-6);  // 0x4040 -> its high byte
  // One byte short, and fuzz_image's 20-byte P6 claiming 1004x1106 16-bit pixels.
  write("short/a/rgb.ppm", std::string("P6\n2 2\n255\n") + std::string(11, '\x80'));
  EXPECT_ERROR(open_image_folder(path("short"), o), "rgb.ppm", "2x2 pixels of 3 bytes, 12 bytes in all",
               "holds 11 after its header (truncated?)");
  write("fuzz/a/x.ppm", "P6\n1004\n1106\n1060\nEND 8\n");
  EXPECT_ERROR(open_image_folder(path("fuzz"), o), "x.ppm", "1004x1106 pixels of 6 bytes", "truncated");
}

TEST_F(ImageTest, TgaMustHoldThePixelsItsHeaderPromises) {
  ImageOptions o;
  o.height = o.width = 4;
  o.channels = 1;
  // stb's writer, run-length encoded and stored: both decode.
  fs::create_directories(path("ok/a"));
  fs::create_directories(path("ok/b"));
  stbi_write_tga_with_rle = 1;
  ASSERT_TRUE(stbi_write_tga(path("ok/a/rle.tga").c_str(), 4, 4, 1, ramp(16, 0, 16).data()));
  stbi_write_tga_with_rle = 0;
  ASSERT_TRUE(stbi_write_tga(path("ok/b/raw.tga").c_str(), 4, 4, 1, ramp(16, 0, 16).data()));
  stbi_write_tga_with_rle = 1;
  auto d = open_image_folder(path("ok"), o);
  const auto v = d->batch(iota(2)).at("input").to_vector<float>();
  ASSERT_EQ(v.size(), 32u);
  for (size_t i = 0; i < 16; ++i) {
    EXPECT_NEAR(v[i], (16.f * i) / 255.f, 1e-6) << i;
    EXPECT_NEAR(v[16 + i], (16.f * i) / 255.f, 1e-6) << i;
  }
  // The stored file cut short by one byte, and fuzz_image's 22-byte TGA claiming 250x3896.
  std::string raw;
  {
    std::ifstream in(path("ok/b/raw.tga"), std::ios::binary);
    raw.assign(std::istreambuf_iterator<char>(in), {});
  }
  write("short/a/raw.tga", raw.substr(0, 18 + 15));
  EXPECT_ERROR(open_image_folder(path("short"), o), "raw.tga", "4x4 pixels of 1 bytes", "holds 15 after its header");
  const unsigned char fuzz[] = {0x2e, 0x00, 0x03, 0x2a, 0x3f, 0x38, 0x69, 0x6e, 0x70, 0x75, 0x74,
                                0x32, 0xfa, 0x00, 0x38, 0x0f, 0x0f, 0x7a, 0x0f, 0x0f};
  write("fuzz/a/x.tga", std::string(reinterpret_cast<const char*>(fuzz), sizeof fuzz));
  EXPECT_ERROR(open_image_folder(path("fuzz"), o), "x.tga", "250x3896 pixels", "truncated");
  // A header one byte short, which stb_image completes with a zero (fuzz_image, 17 bytes).
  const unsigned char cut[] = {0x2e, 0x00, 0x0b, 0x36, 0x33, 0x05, 0x74, 0x00, 0x00,
                               0x00, 0x00, 0x00, 0x33, 0x05, 0xd6, 0x00, 0x20};
  write("cut/a/x.tga", std::string(reinterpret_cast<const char*>(cut), sizeof cut));
  EXPECT_ERROR(open_image_folder(path("cut"), o), "x.tga", "1331x214 pixels", "run-length encoded", "truncated");
}

TEST_F(ImageTest, EveryFormatTestStartsAtTheFilesFirstByte) {
  // fuzz_image: JPEG-looking bytes with "P6" and a 10-digit width at byte 128. stb_image's file
  // reader rewound only within its 128-byte buffer, so its PNM reader parsed that width (an
  // int overflow, which the sanitizer build's UBSan stops on); decoded from memory, nothing
  // in the file is a PNM header.
  std::string bytes(128, '\xbc');
  bytes[0] = '\xff';
  bytes[1] = '\xd8';
  bytes[2] = '\xff';
  bytes[3] = '\xe4';
  bytes[4] = 0;
  bytes[5] = 0x6e;
  bytes += "P6\n9326666666 9326666666\n255\n";
  write("mid/a/x.jpg", bytes);
  ImageOptions o;
  o.height = o.width = 4;
  EXPECT_ERROR(open_image_folder(path("mid"), o), "x.jpg");
}

TEST_F(ImageTest, AJpegHeaderAfterLargeMetadataIsFound) {
  // 80 KB of APP segments (EXIF, ICC profiles) before the frame header: past the first read.
  image("big/a/x.jpg", 6, 5, 1, std::vector<uint8_t>(30, 128));
  std::string jpeg;
  {
    std::ifstream in(path("big/a/x.jpg"), std::ios::binary);
    jpeg.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::string metadata;
  for (int i = 0; i < 2; ++i) {
    const int length = 40000;  // the segment, its two length bytes included
    metadata += "\xff\xe1";
    metadata += static_cast<char>(length >> 8);
    metadata += static_cast<char>(length & 0xff);
    metadata += std::string(length - 2, 'x');
  }
  write("big/a/x.jpg", jpeg.substr(0, 2) + metadata + jpeg.substr(2));
  ImageOptions o;
  o.height = 5;
  o.width = 6;
  o.channels = 1;
  auto d = open_image_folder(path("big"), o);
  const auto v = d->batch(iota(1)).at("input").to_vector<float>();
  ASSERT_EQ(v.size(), 30u);
  EXPECT_NEAR(v[0], 128.f / 255.f, 0.02f);
}

TEST_F(ImageTest, JpegHuffmanTablesOverTheirSizeAreRefused) {
  // fuzz_image's JPEG whose DHT counts add up past 256 (stb_image 2.27 wrote past its tables).
  const unsigned char bytes[] = {0xff, 0xd8, 0xff, 0xc4, 0x51, 0x00, 0x03, 0x37, 0x38, 0x05, 0x34, 0x32, 0x31, 0xfa, 0x0f, 0x00, 0x61, 0x00, 0x89, 0x0f, 0x0f, 0x0f, 0x0f, 0x32, 0x2c, 0x12, 0x38, 0x05, 0x34, 0x0a, 0x5d};
  write("fuzz/a/x.jpg", std::string(reinterpret_cast<const char*>(bytes), sizeof bytes));
  ImageOptions o;
  o.height = o.width = 4;
  EXPECT_ERROR(open_image_folder(path("fuzz"), o), "x.jpg", "corrupt JPEG: a Huffman table", "(at most 256)");
}

}  // namespace
