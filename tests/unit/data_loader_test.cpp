// Dataset views (split, subset), the DataLoader (shuffle, drop_last, seek, background
// errors) and the checks of a dataset against a model.
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
