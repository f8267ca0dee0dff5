// Datasets that re-index another one: subsets and the train/validation split.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "onnxtrain/data.h"
#include "src/data_internal.h"

namespace onnxtrain {
namespace {

class SubsetDataset final : public Dataset {
 public:
  SubsetDataset(DatasetPtr base, std::vector<int64_t> indices, std::string source)
      : base_(std::move(base)), indices_(std::move(indices)), source_(std::move(source)) {}

  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  const std::vector<ArrayInfo>& arrays() const override { return base_->arrays(); }
  const std::string& source() const override { return source_; }
  std::vector<std::string> class_names() const override { return base_->class_names(); }

 protected:
  // Augmentations see the base dataset's sample index, so a sample is augmented the same way
  // whichever view reads it.
  std::map<std::string, Tensor> read(std::span<const int64_t> indices, const std::vector<std::string>& names,
                                     const BatchOptions& options) const override {
    std::vector<int64_t> mapped(indices.size());
    for (size_t i = 0; i < indices.size(); ++i) mapped[i] = indices_[indices[i]];
    BatchOptions o = options;
    o.arrays = names;
    return base_->batch(mapped, o);
  }

 private:
  DatasetPtr base_;
  std::vector<int64_t> indices_;
  std::string source_;
};

}  // namespace

DatasetPtr subset(DatasetPtr data, std::vector<int64_t> indices) {
  if (!data) throw DataError("subset: no dataset");
  for (int64_t i : indices)
    if (i < 0 || i >= data->size())
      throw DataError(data->source() + ": subset index " + std::to_string(i) + " is outside [0, " +
                      std::to_string(data->size()) + ")");
  if (indices.empty()) throw DataError(data->source() + ": an empty subset");
  std::string source = data->source();
  return std::make_shared<SubsetDataset>(std::move(data), std::move(indices), std::move(source));
}

Split split(DatasetPtr data, double val_fraction, uint64_t seed) {
  if (!data) throw DataError("split: no dataset");
  const int64_t n = data->size();
  const std::string fraction = (std::ostringstream() << val_fraction).str();
  if (!(val_fraction > 0 && val_fraction < 1))
    throw DataError(data->source() + ": the validation fraction must be in (0, 1), got " + fraction);
  const auto val_count = static_cast<int64_t>(std::llround(static_cast<double>(n) * val_fraction));
  if (val_count < 1 || val_count > n - 1)
    throw DataError(data->source() + ": a validation fraction of " + fraction + " of " +
                    std::to_string(n) + " samples leaves " + (val_count < 1 ? "no validation" : "no training") +
                    " samples");
  std::vector<int64_t> perm = data::permutation(n, data::combine(seed, 0x73706c6974ull /* "split" */));
  std::vector<int64_t> val(perm.begin(), perm.begin() + val_count), train(perm.begin() + val_count, perm.end());
  std::sort(val.begin(), val.end());
  std::sort(train.begin(), train.end());
  const std::string source = data->source();
  Split out;
  out.train = std::make_shared<SubsetDataset>(data, std::move(train), source + " (training part)");
  out.val = std::make_shared<SubsetDataset>(data, std::move(val), source + " (validation part)");
  return out;
}

}  // namespace onnxtrain
