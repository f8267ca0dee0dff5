#pragma once
// Arrays from an .npz split into batches along the first dimension.
#include <algorithm>
#include <cstring>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "onnxtrain/onnxtrain.h"

namespace onnxtrain::cli {

class Dataset {
 public:
  // Checks that every array has the same first dimension and that `required` are present.
  Dataset(std::map<std::string, Tensor> arrays, const std::string& source, const std::vector<std::string>& required)
      : arrays_(std::move(arrays)) {
    for (const auto& name : required)
      if (!arrays_.count(name)) {
        std::string have;
        for (const auto& [k, t] : arrays_) have += (have.empty() ? "" : ", ") + k;
        throw DataError(source + " has no array named '" + name + "' (it has: " + (have.empty() ? "nothing" : have) + ")");
      }
    for (const auto& [name, t] : arrays_) {
      if (t.rank() == 0) throw DataError(source + ": array '" + name + "' is a scalar; samples go along the first dimension");
      if (samples_ < 0) samples_ = t.dim(0);
      if (t.dim(0) != samples_)
        throw DataError(source + ": array '" + name + "' has " + std::to_string(t.dim(0)) + " samples, others have " +
                        std::to_string(samples_));
    }
    if (samples_ <= 0) throw DataError(source + " holds no samples");
  }

  int64_t size() const { return samples_; }

  // The rows `indices` of every array.
  std::map<std::string, Tensor> batch(const std::vector<int64_t>& indices) const {
    std::map<std::string, Tensor> out;
    for (const auto& [name, t] : arrays_) {
      Shape shape = t.shape();
      shape[0] = static_cast<int64_t>(indices.size());
      Tensor b(t.dtype(), shape);
      const size_t row = t.nbytes() / static_cast<size_t>(samples_);
      for (size_t i = 0; i < indices.size(); ++i)
        std::memcpy(static_cast<char*>(b.raw()) + i * row, static_cast<const char*>(t.raw()) + indices[i] * row, row);
      out[name] = std::move(b);
    }
    return out;
  }

  // Sample order for one epoch: shuffled with `rng`, or in file order.
  std::vector<std::vector<int64_t>> batches(int64_t batch_size, std::mt19937_64* rng) const {
    std::vector<int64_t> order(samples_);
    std::iota(order.begin(), order.end(), 0);
    if (rng) std::shuffle(order.begin(), order.end(), *rng);
    std::vector<std::vector<int64_t>> out;
    for (int64_t i = 0; i < samples_; i += batch_size)
      out.emplace_back(order.begin() + i, order.begin() + std::min(samples_, i + batch_size));
    return out;
  }

 private:
  std::map<std::string, Tensor> arrays_;
  int64_t samples_ = -1;
};

// Fraction of rows whose argmax over the class axis (1) equals the integer label.
inline std::pair<int64_t, int64_t> count_correct(const Tensor& logits, const Tensor& labels) {
  if (logits.rank() < 2) throw DataError("accuracy needs [N, C] outputs, got " + shape_str(logits.shape()));
  const int64_t n = logits.dim(0), c = logits.dim(1);
  const int64_t inner = logits.numel() / (n * c);
  auto scores = logits.as_double();
  auto label = labels.as_int64();
  if (static_cast<int64_t>(label.size()) != n * inner)
    throw DataError("labels " + shape_str(labels.shape()) + " do not match outputs " + shape_str(logits.shape()));
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < inner; ++k) {
      int64_t best = 0;
      for (int64_t j = 1; j < c; ++j)
        if (scores[(i * c + j) * inner + k] > scores[(i * c + best) * inner + k]) best = j;
      correct += best == label[i * inner + k];
    }
  return {correct, n * inner};
}

}  // namespace onnxtrain::cli
