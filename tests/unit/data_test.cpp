// Array and CSV datasets. Fixtures are written to a temporary directory by each test;
// expected values are computed by hand. Image folders: data_image_test.cpp; views, the
// DataLoader and the model-fit checks: data_loader_test.cpp.
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

using namespace onnxtrain;
using namespace onnxtrain::test::data;
namespace fs = std::filesystem;

namespace {

// ---- Arrays -------------------------------------------------------------------------------

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

}  // namespace
