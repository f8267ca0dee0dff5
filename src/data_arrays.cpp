// The Dataset base class, shared helpers, and datasets of in-memory arrays (.npz, .npy).
#include <cstring>
#include <filesystem>
#include <fstream>

#include "onnxtrain/data.h"
#include "onnxtrain/npy.h"
#include "src/data_internal.h"

namespace onnxtrain {

namespace data {

uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t Rng::below(uint64_t n) {
  unsigned __int128 m = static_cast<unsigned __int128>(next()) * n;
  if (static_cast<uint64_t>(m) < n) {
    const uint64_t threshold = -n % n;  // 2^64 mod n
    while (static_cast<uint64_t>(m) < threshold) m = static_cast<unsigned __int128>(next()) * n;
  }
  return static_cast<uint64_t>(m >> 64);
}

std::vector<int64_t> permutation(int64_t n, uint64_t key) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  Rng rng(key);
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[rng.below(static_cast<uint64_t>(i) + 1)]);
  return p;
}

std::string quoted(const std::string& path) { return "'" + path + "'"; }

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "nothing" : out;
}

std::vector<std::string> array_names(const Dataset& data) {
  std::vector<std::string> names;
  for (const auto& a : data.arrays()) names.push_back(a.name);
  return names;
}

void throw_no_array(const Dataset& data, const std::string& name) {
  throw DataError(data.source() + " has no array named '" + name + "' (it has: " + join_names(array_names(data)) + ")");
}

namespace {

class ArrayDataset final : public Dataset {
 public:
  ArrayDataset(std::map<std::string, Tensor> arrays, std::string source, std::vector<std::string> classes)
      : arrays_(std::move(arrays)), source_(std::move(source)), classes_(std::move(classes)) {
    if (arrays_.empty()) throw DataError(source_ + " holds no arrays");
    std::string first;
    for (const auto& [name, t] : arrays_) {
      if (t.dtype() == DType::String || t.dtype() == DType::Undefined)
        throw DataError(source_ + ": array '" + name + "' holds " + dtype_name(t.dtype()) + ", not numbers");
      if (t.rank() == 0)
        throw DataError(source_ + ": array '" + name + "' is a scalar; samples go along the first dimension");
      if (first.empty()) {
        first = name;
        size_ = t.dim(0);
      } else if (t.dim(0) != size_) {
        throw DataError(source_ + ": array '" + name + "' has " + std::to_string(t.dim(0)) + " samples, array '" +
                        first + "' has " + std::to_string(size_) + " (samples go along the first dimension)");
      }
      schema_.push_back({name, t.dtype(), Shape(t.shape().begin() + 1, t.shape().end())});
    }
    if (size_ == 0) throw DataError(source_ + " holds no samples (the arrays' first dimension is 0)");
  }

  int64_t size() const override { return size_; }
  const std::vector<ArrayInfo>& arrays() const override { return schema_; }
  const std::string& source() const override { return source_; }
  std::vector<std::string> class_names() const override { return classes_; }

 protected:
  std::map<std::string, Tensor> read(std::span<const int64_t> indices, const std::vector<std::string>& names,
                                     const BatchOptions&) const override {
    std::map<std::string, Tensor> out;
    for (const auto& name : names) {
      const Tensor& t = arrays_.at(name);
      Shape shape = t.shape();
      shape[0] = static_cast<int64_t>(indices.size());
      Tensor b(t.dtype(), std::move(shape));
      const size_t row = t.nbytes() / static_cast<size_t>(size_);
      auto* dst = static_cast<std::byte*>(b.raw());
      const auto* src = static_cast<const std::byte*>(t.raw());
      for (size_t i = 0; i < indices.size(); ++i) std::memcpy(dst + i * row, src + indices[i] * row, row);
      out.emplace(name, std::move(b));
    }
    return out;
  }

 private:
  std::map<std::string, Tensor> arrays_;
  std::string source_;
  std::vector<std::string> classes_;
  std::vector<ArrayInfo> schema_;
  int64_t size_ = 0;
};

}  // namespace

DatasetPtr make_array_dataset(std::map<std::string, Tensor> arrays, const std::string& source,
                              std::vector<std::string> class_names) {
  return std::make_shared<ArrayDataset>(std::move(arrays), source, std::move(class_names));
}

}  // namespace data

std::map<std::string, Tensor> Dataset::batch(std::span<const int64_t> indices, const BatchOptions& options) const {
  const int64_t n = size();
  for (int64_t i : indices)
    if (i < 0 || i >= n)
      throw DataError(source() + ": sample index " + std::to_string(i) + " is outside [0, " + std::to_string(n) + ")");
  std::vector<std::string> names = options.arrays;
  if (names.empty()) {
    for (const auto& a : arrays()) names.push_back(a.name);
  } else {
    for (const auto& name : names)
      if (!find(name)) data::throw_no_array(*this, name);
  }
  return read(indices, names, options);
}

const ArrayInfo* Dataset::find(const std::string& name) const {
  for (const auto& a : arrays())
    if (a.name == name) return &a;
  return nullptr;
}

DatasetPtr make_array_dataset(std::map<std::string, Tensor> arrays, const std::string& source) {
  return data::make_array_dataset(std::move(arrays), source, {});
}

DatasetPtr open_arrays(const std::string& path, const std::string& npy_name) {
  std::string magic(6, '\0');
  {
    std::ifstream in(path, std::ios::binary);
    in.read(magic.data(), static_cast<std::streamsize>(magic.size()));
  }
  if (magic == "\x93NUMPY") {
    const std::string name = npy_name.empty() ? std::filesystem::path(path).stem().string() : npy_name;
    std::map<std::string, Tensor> arrays;
    arrays.emplace(name, read_npy(path));
    return make_array_dataset(std::move(arrays), data::quoted(path));
  }
  return make_array_dataset(read_arrays(path), data::quoted(path));  // .npz, or the error for neither
}

}  // namespace onnxtrain
