#include "src/gradient_buckets.h"

#include <cstring>

namespace onnxtrain {

GradientBuckets::GradientBuckets(Distributed& world, const std::vector<DType>& dtypes,
                                 const std::vector<int64_t>& sizes, size_t bucket_bytes)
    : world_(world), slots_(dtypes.size()) {
  // One open bucket per dtype; a bucket closes once it holds bucket_bytes.
  std::vector<std::pair<DType, size_t>> open;  // dtype -> index into buckets_
  for (size_t k = dtypes.size(); k-- > 0;) {
    if (dtypes[k] != DType::Float && dtypes[k] != DType::Double)
      throw DataError("distributed training averages float and double gradients, not " + dtype_name(dtypes[k]));
    size_t b = buckets_.size();
    for (auto& [dtype, index] : open)
      if (dtype == dtypes[k]) b = index;
    if (b == buckets_.size()) {
      buckets_.push_back({.dtype = dtypes[k]});
      open.push_back({dtypes[k], b});
    }
    Bucket& bucket = buckets_[b];
    int64_t used = 0;
    for (size_t m : bucket.members) used += slots_[m].size;
    slots_[k] = {.bucket = b, .offset = used, .size = sizes[k]};
    bucket.members.push_back(k);
    const size_t bytes = static_cast<size_t>(used + sizes[k]) * dtype_size(dtypes[k]);
    if (bytes >= bucket_bytes)
      for (auto it = open.begin(); it != open.end(); ++it)
        if (it->first == dtypes[k]) {
          open.erase(it);
          break;
        }
  }
  for (Bucket& bucket : buckets_) {
    int64_t elements = 0;
    for (size_t m : bucket.members) elements += slots_[m].size;
    bucket.storage.resize((static_cast<size_t>(elements) * dtype_size(bucket.dtype) + 7) / 8);
  }
}

void GradientBuckets::begin(double scale) {
  scale_ = scale;
  next_bucket_ = 0;
  for (Bucket& bucket : buckets_) bucket.missing = bucket.members.size();
  for (Slot& slot : slots_) slot.packed = false;
}

void GradientBuckets::pack(size_t index, const Tensor& gradient) {
  Slot& slot = slots_.at(index);
  if (slot.packed) return;
  Bucket& bucket = buckets_[slot.bucket];
  if (gradient.dtype() != bucket.dtype || gradient.numel() != slot.size)
    throw DataError("gradient " + std::to_string(index) + " is " + dtype_name(gradient.dtype()) +
                    shape_str(gradient.shape()) + ", its bucket expects " + std::to_string(slot.size) + " " +
                    dtype_name(bucket.dtype) + " values");
  auto copy = [&](auto* dst) {
    using T = std::remove_pointer_t<decltype(dst)>;
    const T* src = gradient.data<T>();
    const T s = static_cast<T>(scale_);
    dst += slot.offset;
    if (scale_ == 1) std::memcpy(dst, src, static_cast<size_t>(slot.size) * sizeof(T));
    else
      for (int64_t i = 0; i < slot.size; ++i) dst[i] = src[i] * s;
  };
  if (bucket.dtype == DType::Float) copy(reinterpret_cast<float*>(bucket.storage.data()));
  else copy(bucket.storage.data());
  slot.packed = true;
  --bucket.missing;
}

void GradientBuckets::start_ready_buckets() {
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].missing == 0) {
    Bucket& bucket = buckets_[next_bucket_++];
    int64_t elements = 0;
    for (size_t m : bucket.members) elements += slots_[m].size;
    world_.start_allreduce_sum(bucket.storage.data(), elements, bucket.dtype);
  }
}

void GradientBuckets::ready(size_t index, const Tensor& gradient) {
  pack(index, gradient);
  start_ready_buckets();
}

void GradientBuckets::finish(std::vector<Tensor>& gradients) {
  for (size_t k = 0; k < slots_.size(); ++k) pack(k, gradients.at(k));
  start_ready_buckets();
  world_.wait_all();
  for (size_t k = 0; k < slots_.size(); ++k) {
    const Slot& slot = slots_[k];
    const Bucket& bucket = buckets_[slot.bucket];
    const auto* src = reinterpret_cast<const char*>(bucket.storage.data()) + slot.offset * dtype_size(bucket.dtype);
    std::memcpy(gradients[k].raw(), src, gradients[k].nbytes());
  }
}

}  // namespace onnxtrain
