// Datasets (arrays, CSV, image folders), views, the DataLoader and the model-fit checks.
// Fixtures are written to a temporary directory by each test; expected values are computed
// by hand below (the resize golden comes from torch, see ResizeMatchesTorchvision).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <thread>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

using namespace onnxtrain;
namespace fs = std::filesystem;

namespace {

using test::error_of;

#define EXPECT_ERROR(expr, ...)                                                            \
  do {                                                                                     \
    const std::string message = error_of([&] { (void)(expr); });                           \
    for (const char* part : {__VA_ARGS__}) EXPECT_NE(message.find(part), std::string::npos) \
        << "'" << part << "' not in: " << message;                                         \
  } while (0)

class DataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "data_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (fs::path(dir_) / name).string(); }
  std::string write(const std::string& name, const std::string& text) const {
    fs::create_directories(fs::path(path(name)).parent_path());
    std::ofstream(path(name), std::ios::binary) << text;
    return path(name);
  }

  std::string dir_;
};

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

// ---- Arrays -------------------------------------------------------------------------------

// x[i] = (i, i + 0.5) per sample, label[i] = i % 3.
std::map<std::string, Tensor> numbered(int64_t n) {
  std::vector<float> x;
  std::vector<int64_t> y;
  for (int64_t i = 0; i < n; ++i) {
    x.push_back(static_cast<float>(i));
    x.push_back(static_cast<float>(i) + 0.5f);
    y.push_back(i % 3);
  }
  return {{"x", Tensor::from_vector<float>({n, 2}, x)}, {"label", Tensor::from_vector<int64_t>({n}, y)}};
}

TEST_F(DataTest, NpzRoundTripAndBatches) {
  write_npz(path("d.npz"), numbered(5));
  auto data = open_arrays(path("d.npz"));
  EXPECT_EQ(data->size(), 5);
  EXPECT_NE(data->source().find("d.npz"), std::string::npos);
  ASSERT_EQ(data->arrays().size(), 2u);
  EXPECT_EQ(data->arrays()[0].name, "label");
  EXPECT_EQ(data->arrays()[0].dtype, DType::Int64);
  EXPECT_EQ(data->arrays()[0].sample_shape, Shape{});
  EXPECT_EQ(data->arrays()[1].name, "x");
  EXPECT_EQ(data->arrays()[1].sample_shape, Shape{2});

  const std::vector<int64_t> idx = {3, 0, 3};
  auto b = data->batch(idx);
  EXPECT_EQ(b.at("x").shape(), (Shape{3, 2}));
  EXPECT_EQ(b.at("x").to_vector<float>(), (std::vector<float>{3, 3.5, 0, 0.5, 3, 3.5}));
  EXPECT_EQ(b.at("label").to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 0}));

  BatchOptions only_x;
  only_x.arrays = {"x"};
  EXPECT_EQ(data->batch(idx, only_x).size(), 1u);
  only_x.arrays = {"nope"};
  EXPECT_ERROR(data->batch(idx, only_x), "d.npz", "no array named 'nope'", "label, x");
  const std::vector<int64_t> bad = {5};
  EXPECT_ERROR(data->batch(bad), "sample index 5 is outside [0, 5)");
}

TEST_F(DataTest, NpyTakesTheCallersNameOrTheStem) {
  write_npy(path("feat.npy"), numbered(4).at("x"));
  EXPECT_EQ(open_arrays(path("feat.npy"))->arrays()[0].name, "feat");
  auto data = open_arrays(path("feat.npy"), "input");
  ASSERT_EQ(data->arrays().size(), 1u);
  EXPECT_EQ(data->arrays()[0].name, "input");
  const std::vector<int64_t> idx = {2};
  EXPECT_EQ(data->batch(idx).at("input").to_vector<float>(), (std::vector<float>{2, 2.5}));
}

TEST_F(DataTest, ArraysMustAgreeOnTheSampleCount) {
  auto arrays = numbered(4);
  arrays["label"] = Tensor(DType::Int64, {3});
  EXPECT_ERROR(make_array_dataset(arrays, "mem"), "mem", "has 4 samples", "'label' has 3");
  arrays["label"] = Tensor::scalar<int64_t>(1);
  EXPECT_ERROR(make_array_dataset(arrays, "mem"), "'label' is a scalar");
  EXPECT_ERROR(make_array_dataset({{"x", Tensor(DType::Float, {0, 2})}}, "mem"), "holds no samples");
  write(path("junk.npz"), "not an archive");
  EXPECT_ERROR(open_arrays(path("junk.npz")), "junk.npz");
}

// ---- CSV ----------------------------------------------------------------------------------

std::vector<float> features(const DatasetPtr& d, const std::string& name = "input") {
  return d->batch(iota(d->size())).at(name).to_vector<float>();
}
std::vector<int64_t> labels(const DatasetPtr& d, const std::string& name = "label") {
  return d->batch(iota(d->size())).at(name).to_vector<int64_t>();
}

TEST_F(DataTest, CsvWithHeader) {
  auto d = open_csv(write("a.csv", "x1,label,x2\n1,0,2.5\n-3e1,2,4\n"));
  EXPECT_EQ(d->size(), 2);
  EXPECT_EQ(d->find("input")->sample_shape, Shape{2});
  EXPECT_EQ(features(d), (std::vector<float>{1, 2.5, -30, 4}));
  EXPECT_EQ(labels(d), (std::vector<int64_t>{0, 2}));
  EXPECT_TRUE(d->class_names().empty());
}

TEST_F(DataTest, CsvWithoutHeaderTakesTheLastColumn) {
  auto d = open_csv(write("a.csv", "1,2,1\n3,4,0\n"));
  EXPECT_EQ(features(d), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(labels(d), (std::vector<int64_t>{1, 0}));
  CsvOptions o;
  o.header = CsvOptions::Header::Yes;
  EXPECT_EQ(open_csv(path("a.csv"), o)->size(), 1);
}

TEST_F(DataTest, CsvCrlfQuotesBomSemicolonsBlankLines) {
  auto d = open_csv(write("a.csv", "\xEF\xBB\xBF\"a\";\"b\";label\r\n \"1.5\" ; 2;\"1\"\r\n\r\n3;\"4\";0\r\n\r\n  \r\n"));
  EXPECT_EQ(features(d), (std::vector<float>{1.5, 2, 3, 4}));
  EXPECT_EQ(labels(d), (std::vector<int64_t>{1, 0}));
}

TEST_F(DataTest, CsvTextLabelsBecomeSortedClasses) {
  auto d = open_csv(write("iris.csv", "5.1,3.5,setosa\n6.3,2.9,virginica\n5.9,3.0,\"versicolor\"\n4.9,3.1,setosa\n"));
  EXPECT_EQ(d->class_names(), (std::vector<std::string>{"setosa", "versicolor", "virginica"}));
  EXPECT_EQ(labels(d), (std::vector<int64_t>{0, 2, 1, 0}));
}

TEST_F(DataTest, CsvFloatLabelsAndChosenColumns) {
  CsvOptions o;
  o.label_dtype = DType::Float;
  o.label = "target";
  o.label_column = "y";
  o.features = {"c", "0"};
  o.input = "x";
  auto d = open_csv(write("r.csv", "a,y,c\n1,0.25,7\n2,-1.5,8\n"), o);
  EXPECT_EQ(d->find("x")->sample_shape, Shape{2});
  EXPECT_EQ(features(d, "x"), (std::vector<float>{7, 1, 8, 2}));
  EXPECT_EQ(d->batch(iota(2)).at("target").to_vector<float>(), (std::vector<float>{0.25, -1.5}));
  o.label = "";
  o.features.clear();
  EXPECT_EQ(open_csv(path("r.csv"), o)->arrays().size(), 1u);  // inference: no label
}

TEST_F(DataTest, CsvErrorsNameFileLineAndColumn) {
  EXPECT_ERROR(open_csv(write("bad.csv", "a,b,label\n1,2,0\n3,x4,1\n")), "bad.csv' line 3", "column 2 ('b')",
               "'x4' is not a number");
  EXPECT_ERROR(open_csv(write("gap.csv", "1,2,0\n3,,1\n")), "gap.csv' line 2", "column 2", "empty cell");
  EXPECT_ERROR(open_csv(write("rag.csv", "a,b,label\n1,2,0\n\n3,4\n")), "rag.csv' line 4", "2 cells", "line 1 has 3");
  EXPECT_ERROR(open_csv(write("frac.csv", "1,2,0.5\n")), "frac.csv' line 1", "column 3", "'0.5' is not a class index");
  CsvOptions o;
  o.label_column = "y";
  EXPECT_ERROR(open_csv(write("h.csv", "a,b,label\n1,2,0\n"), o), "h.csv", "no label column 'y'", "columns: a, b, label");
  EXPECT_ERROR(open_csv(write("n.csv", "1,2,0\n"), o), "n.csv", "no header row", "0-based number");
  o.label_column = "5";
  EXPECT_ERROR(open_csv(path("n.csv"), o), "label column number 5 is outside", "3 columns");
  EXPECT_ERROR(open_csv(write("e.csv", "\r\n\n")), "e.csv' is empty");
  EXPECT_ERROR(open_csv(write("ho.csv", "a,b,label\n")), "ho.csv' has a header", "no rows");
  EXPECT_ERROR(open_csv(write("q.csv", "1,\"2,0\n")), "q.csv' line 1", "not closed");
  EXPECT_ERROR(open_csv(path("missing.csv")), "cannot read", "missing.csv");
  EXPECT_ERROR(open_csv(write("one.csv", "label\n1\n2\n")), "no feature columns");
}

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

// ---- Views --------------------------------------------------------------------------------

TEST(DataViews, SplitIsASeededPartition) {
  auto data = make_array_dataset(numbered(10), "mem");
  auto [train, val] = split(data, 0.3, 7);
  EXPECT_EQ(val->size(), 3);
  EXPECT_EQ(train->size(), 7);
  auto ids = [](const DatasetPtr& d) {
    auto x = d->batch(iota(d->size())).at("x").to_vector<float>();
    std::vector<int64_t> out;
    for (size_t i = 0; i < x.size(); i += 2) out.push_back(static_cast<int64_t>(x[i]));
    return out;
  };
  auto t = ids(train), v = ids(val);
  EXPECT_TRUE(std::is_sorted(t.begin(), t.end()));
  EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));
  std::set<int64_t> all(t.begin(), t.end());
  all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), 10u);  // disjoint and complete
  EXPECT_EQ(ids(split(data, 0.3, 7).val), v);
  bool differs = false;
  for (uint64_t seed = 8; seed < 12; ++seed) differs |= ids(split(data, 0.3, seed).val) != v;
  EXPECT_TRUE(differs);
  EXPECT_ERROR(split(data, 0.0, 1), "fraction must be in (0, 1)");
  EXPECT_ERROR(split(data, 0.01, 1), "leaves no validation samples");
  EXPECT_ERROR(split(data, 0.99, 1), "leaves no training samples");
}

TEST(DataViews, SubsetMapsIndices) {
  auto data = make_array_dataset(numbered(5), "mem");
  auto s = subset(data, {4, 1, 4});
  EXPECT_EQ(s->size(), 3);
  EXPECT_EQ(labels(s), (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(features(s, "x"), (std::vector<float>{4, 4.5, 1, 1.5, 4, 4.5}));
  EXPECT_ERROR(subset(data, {5}), "subset index 5 is outside [0, 5)");
}

// ---- DataLoader ---------------------------------------------------------------------------

std::vector<std::vector<int64_t>> drain(DataLoader& loader, int64_t batches) {
  std::vector<std::vector<int64_t>> out;
  for (int64_t i = 0; i < batches; ++i) {
    Batch b = loader.next();
    // The arrays hold the samples the batch names (x[i] = i).
    auto x = b.arrays.at("x").to_vector<float>();
    EXPECT_EQ(x.size(), b.samples.size() * 2);
    for (size_t k = 0; k < b.samples.size(); ++k) EXPECT_EQ(x[2 * k], static_cast<float>(b.samples[k]));
    out.push_back(b.samples);
  }
  return out;
}

TEST(DataLoader, ShuffleVisitsEverySampleOncePerEpochReproducibly) {
  auto data = make_array_dataset(numbered(10), "mem");
  LoaderOptions o;
  o.batch_size = 3;
  o.seed = 5;
  DataLoader a(data, o), b(data, o);
  EXPECT_EQ(a.batches_per_epoch(), 4);
  auto first = drain(a, 8);
  EXPECT_EQ(first, drain(b, 8));
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::multiset<int64_t> seen;
    for (int i = 0; i < 4; ++i) seen.insert(first[epoch * 4 + i].begin(), first[epoch * 4 + i].end());
    EXPECT_EQ(seen, (std::multiset<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
    EXPECT_EQ(first[epoch * 4 + 3].size(), 1u);  // the partial last batch is kept
  }
  EXPECT_NE(std::vector(first.begin(), first.begin() + 4), std::vector(first.begin() + 4, first.end()));
  EXPECT_EQ(a.epoch(), 2);
  EXPECT_EQ(a.index(), 0);
  o.seed = 6;
  DataLoader c(data, o);
  EXPECT_NE(drain(c, 4), std::vector(first.begin(), first.begin() + 4));
}

TEST(DataLoader, DropLast) {
  auto data = make_array_dataset(numbered(10), "mem");
  LoaderOptions o;
  o.batch_size = 3;
  o.drop_last = true;
  DataLoader loader(data, o);
  EXPECT_EQ(loader.batches_per_epoch(), 3);
  for (const auto& b : drain(loader, 6)) EXPECT_EQ(b.size(), 3u);
  o.batch_size = 11;
  EXPECT_ERROR(DataLoader(data, o), "batch size 11 exceeds its 10 samples", "drop_last");
  o.batch_size = 0;
  EXPECT_ERROR(DataLoader(data, o), "batch size must be positive");
}

TEST(DataLoader, WithoutShuffleTheStreamIsCyclic) {
  auto data = make_array_dataset(numbered(5), "mem");
  LoaderOptions o;
  o.batch_size = 3;
  o.shuffle = false;
  DataLoader loader(data, o);
  EXPECT_EQ(loader.batches_per_epoch(), 2);
  const std::vector<std::vector<int64_t>> expected = {{0, 1, 2}, {3, 4, 0}, {1, 2, 3}, {4, 0, 1}, {2, 3, 4}};
  EXPECT_EQ(drain(loader, 5), expected);
  EXPECT_EQ(loader.samples(1000000000000, 1), (std::vector<int64_t>{3, 4, 0}));  // k = 2e12 + 1: 3k mod 5 = 3
}

TEST(DataLoader, SeekReproducesTheBatchesOfAnUninterruptedRun) {
  auto data = make_array_dataset(numbered(11), "mem");
  for (bool shuffle : {true, false})
    for (bool prefetch : {true, false}) {
      LoaderOptions o;
      o.batch_size = 4;
      o.shuffle = shuffle;
      o.prefetch = prefetch;
      o.seed = 3;
      DataLoader full(data, o);
      auto expected = drain(full, 9);
      DataLoader resumed(data, o);
      drain(resumed, 1);  // a batch in flight on the background thread is discarded
      resumed.seek(1, 1);  // batch 4 of the run (3 per epoch)
      EXPECT_EQ(resumed.epoch(), 1);
      EXPECT_EQ(resumed.index(), 1);
      auto rest = drain(resumed, 5);
      EXPECT_EQ(rest, std::vector(expected.begin() + 4, expected.end())) << shuffle << prefetch;
      EXPECT_EQ(full.samples(2, 0), expected[6]);
    }
  DataLoader loader(data, LoaderOptions{});
  EXPECT_ERROR(loader.seek(0, 1), "cannot seek to batch 1 of epoch 0", "1 batches per epoch");
  EXPECT_ERROR(loader.seek(-1, 0), "cannot seek");
  LoaderOptions o;
  o.arrays = {"y"};
  EXPECT_ERROR(DataLoader(data, o), "no array named 'y'");
}

// Fails when a batch holds sample `bad` while `failing` is set; sleeps `delay` per batch.
class FlakyDataset : public Dataset {
 public:
  FlakyDataset(int64_t bad, std::chrono::milliseconds delay) : bad_(bad), delay_(delay) {}
  int64_t size() const override { return 8; }
  const std::vector<ArrayInfo>& arrays() const override { return schema_; }
  const std::string& source() const override { return source_; }
  mutable std::atomic<bool> failing{true};
  mutable std::atomic<int> reads{0};

 protected:
  std::map<std::string, Tensor> read(std::span<const int64_t> indices, const std::vector<std::string>&,
                                     const BatchOptions&) const override {
    ++reads;
    std::this_thread::sleep_for(delay_);
    for (int64_t i : indices)
      if (i == bad_ && failing) throw DataError("flaky: sample " + std::to_string(i));
    std::vector<float> x;
    for (int64_t i : indices) x.insert(x.end(), {static_cast<float>(i), 0.f});
    return {{"x", Tensor::from_vector<float>({static_cast<int64_t>(indices.size()), 2}, x)}};
  }

 private:
  int64_t bad_;
  std::chrono::milliseconds delay_;
  std::vector<ArrayInfo> schema_ = {{"x", DType::Float, {2}}};
  std::string source_ = "flaky";
};

TEST(DataLoader, BackgroundErrorsReachTheConsumerAndTheBatchIsRetried) {
  auto data = std::make_shared<FlakyDataset>(5, std::chrono::milliseconds(0));
  LoaderOptions o;
  o.batch_size = 2;
  o.shuffle = false;
  DataLoader loader(data, o);
  EXPECT_EQ(drain(loader, 2), (std::vector<std::vector<int64_t>>{{0, 1}, {2, 3}}));
  EXPECT_ERROR(loader.next(), "flaky: sample 5");
  EXPECT_ERROR(loader.next(), "flaky: sample 5");  // retried, fails again
  EXPECT_EQ(loader.index(), 2);
  data->failing = false;
  EXPECT_EQ(drain(loader, 2), (std::vector<std::vector<int64_t>>{{4, 5}, {6, 7}}));
}

TEST(DataLoader, DestructionMidEpochJoinsTheReader) {
  auto data = std::make_shared<FlakyDataset>(-1, std::chrono::milliseconds(30));
  LoaderOptions o;
  o.batch_size = 2;
  const auto start = std::chrono::steady_clock::now();
  {
    DataLoader loader(data, o);
    loader.next();  // the reader now works on the next batch
  }
  { DataLoader unused(data, o); }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_LE(data->reads.load(), 2);
  EXPECT_EQ(data.use_count(), 1);  // nothing kept alive by a leaked thread
}

// ---- Checks against a model ---------------------------------------------------------------

const char* kClassifier = R"(
  <ir_version: 8, opset_import: ["" : 17]>
  g (float[N, 4] X) => (float[N, 3] Y)
  <float[4, 3] W = {0.1, -0.2, 0.3, 0.4, 0.5, -0.6, 0.7, 0.8, -0.9, 1.0, 1.1, 1.2}>
  { Y = MatMul(X, W) }
)";

std::map<std::string, Tensor> model_data(DType x_dtype, Shape x_shape, Tensor label) {
  Tensor x(x_dtype, std::move(x_shape));
  return {{"X", x}, {"label", std::move(label)}, {"extra", Tensor(DType::Float, {x.dim(0)})}};
}

TEST(DataChecks, InputsPresentShapedAndConvertible) {
  Model model = Model::from_text(kClassifier);
  auto labels = Tensor::from_vector<int32_t>({5}, {0, 1, 2, -100, 1});
  auto ok = make_array_dataset(model_data(DType::Double, {5, 4}, labels), "ok.npz");
  EXPECT_NO_THROW(check_inputs(*ok, model));
  EXPECT_NO_THROW(check_labels(*ok, model, LossOptions{}));
  auto fitted = fit_to_model(ok, model, LossOptions{});
  ASSERT_EQ(fitted->arrays().size(), 2u);
  EXPECT_EQ(fitted->find("X")->dtype, DType::Float);
  EXPECT_EQ(fitted->find("label")->dtype, DType::Int64);
  auto b = fitted->batch(iota(5));
  EXPECT_EQ(b.at("X").dtype(), DType::Float);
  EXPECT_EQ(b.at("label").to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, -100, 1}));
  EXPECT_EQ(b.count("extra"), 0u);

  EXPECT_ERROR(check_inputs(*make_array_dataset({{"Z", Tensor(DType::Float, {5, 4})}, {"label", labels}}, "m.npz"), model),
               "m.npz has no array for model input 'X'", "it has: Z, label");
  EXPECT_ERROR(check_inputs(*make_array_dataset(model_data(DType::Float, {5, 5}, labels), "s.npz"), model),
               "s.npz: array 'X' has samples of shape [5]", "model input takes [N,4]", "dim 1: 5 vs 4");
  EXPECT_ERROR(check_inputs(*make_array_dataset(model_data(DType::Float, {5, 2, 3}, labels), "r.npz"), model),
               "rank 2 vs 1");
  // The same element count in another shape is served in the model's shape.
  auto flat = fit_to_model(make_array_dataset(model_data(DType::Float, {5, 4, 1}, labels), "u.npz"), model, LossOptions{});
  EXPECT_EQ(flat->find("X")->sample_shape, (Shape{4}));
  EXPECT_EQ(flat->batch(iota(5)).at("X").shape(), (Shape{5, 4}));
  EXPECT_ERROR(check_inputs(*make_array_dataset(model_data(DType::Int64, {5, 4}, labels), "t.npz"), model),
               "t.npz: array 'X' holds int64", "takes float");
}

TEST(DataChecks, LabelsInRangeWithTheRightDtypeAndShape) {
  Model model = Model::from_text(kClassifier);
  auto check = [&](Tensor label, LossOptions o = {}) {
    check_labels(*make_array_dataset(model_data(DType::Float, {label.dim(0), 4}, label), "l.npz"), model, o);
  };
  EXPECT_ERROR(check(Tensor::from_vector<int64_t>({4}, {0, 2, 1, 3})), "l.npz: label array 'label' sample 3",
               "class 3 is outside [0, 3)", "output 'Y' has 3 classes", "ignore_index -100");
  EXPECT_ERROR(check(Tensor::from_vector<int64_t>({2}, {0, -1})), "sample 1: class -1");
  EXPECT_ERROR(check(Tensor::from_vector<float>({2}, {0, 1})), "label array 'label' holds float",
               "cross_entropy loss takes integer class indices");
  EXPECT_ERROR(check(Tensor(DType::Int64, {2, 3})), "has samples of shape [3]", "takes labels of shape [] per sample");
  LossOptions ignore;
  ignore.ignore_index = 7;
  EXPECT_NO_THROW(check(Tensor::from_vector<int64_t>({2}, {7, 0}), ignore));
  LossOptions mse;
  mse.kind = "mse";
  EXPECT_NO_THROW(check(Tensor(DType::Double, {2, 3}), mse));
  EXPECT_ERROR(check(Tensor(DType::Float, {2}), mse), "the mse loss on output 'Y' [N,3]", "rank 0 vs 1");
  EXPECT_ERROR(check(Tensor(DType::Int64, {2, 3}), mse), "holds int64", "mse loss takes float");
  LossOptions other;
  other.target = "target";
  EXPECT_ERROR(check(Tensor(DType::Int64, {2}), other), "l.npz has no label array 'target'", "it has: X, extra, label");
  other = {};
  other.output = "Z";
  EXPECT_ERROR(check(Tensor(DType::Int64, {2}), other), "no output 'Z'", "outputs: Y");
  other = {};
  other.kind = "hinge";
  EXPECT_ERROR(check(Tensor(DType::Int64, {2}), other), "unknown loss 'hinge'");
  other = {};
  other.target = "";
  EXPECT_NO_THROW(check(Tensor(DType::Float, {2}), other));  // no labels: nothing to check
}

TEST(DataChecks, Conversions) {
  EXPECT_TRUE(converts_to(DType::Int32, DType::Int64));
  EXPECT_TRUE(converts_to(DType::UInt8, DType::Float));
  EXPECT_TRUE(converts_to(DType::Double, DType::Float));
  EXPECT_FALSE(converts_to(DType::Int64, DType::Float));
  EXPECT_FALSE(converts_to(DType::Int64, DType::Int32));
  EXPECT_FALSE(converts_to(DType::Float, DType::Int64));
  EXPECT_FALSE(converts_to(DType::UInt64, DType::Int64));
}

}  // namespace
