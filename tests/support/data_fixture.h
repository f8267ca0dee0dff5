#pragma once
// What the data tests share: a fixture with a temporary directory, sample datasets and
// their readers, and EXPECT_ERROR(expr, parts...) for the messages of DataError.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

#define EXPECT_ERROR(expr, ...)                                                            \
  do {                                                                                     \
    const std::string message = onnxtrain::test::error_of([&] { (void)(expr); });          \
    for (const char* part : {__VA_ARGS__}) EXPECT_NE(message.find(part), std::string::npos) \
        << "'" << part << "' not in: " << message;                                         \
  } while (0)

namespace onnxtrain::test::data {

namespace fs = std::filesystem;

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

inline std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}
// x[i] = (i, i + 0.5) per sample, label[i] = i % 3.
inline std::map<std::string, Tensor> numbered(int64_t n) {
  std::vector<float> x;
  std::vector<int64_t> y;
  for (int64_t i = 0; i < n; ++i) {
    x.push_back(static_cast<float>(i));
    x.push_back(static_cast<float>(i) + 0.5f);
    y.push_back(i % 3);
  }
  return {{"x", Tensor::from_vector<float>({n, 2}, x)}, {"label", Tensor::from_vector<int64_t>({n}, y)}};
}

inline std::vector<float> features(const DatasetPtr& d, const std::string& name = "input") {
  return d->batch(iota(d->size())).at(name).to_vector<float>();
}
inline std::vector<int64_t> labels(const DatasetPtr& d, const std::string& name = "label") {
  return d->batch(iota(d->size())).at(name).to_vector<int64_t>();
}

}  // namespace onnxtrain::test::data
