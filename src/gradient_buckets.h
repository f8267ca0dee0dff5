#pragma once
// Gradients summed across ranks in buckets (~25 MB, like PyTorch DDP): each gradient is
// copied, scaled, into its bucket's buffer as the backward pass produces it, and a bucket
// whose gradients are all in starts its non-blocking allreduce at once, so communication
// overlaps the rest of the backward pass. Buckets start strictly in order (every rank
// must start collectives in the same order); finish() waits and copies the sums back.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "onnxtrain/distributed.h"
#include "onnxtrain/tensor.h"

namespace onnxtrain {

inline constexpr size_t kBucketBytes = size_t{25} << 20;

class GradientBuckets {
 public:
  // One entry per gradient (dtype and element count, in the session's parameter order).
  // Buckets fill in reverse order, the order in which backward passes produce gradients.
  GradientBuckets(Distributed& world, const std::vector<DType>& dtypes, const std::vector<int64_t>& sizes,
                  size_t bucket_bytes = kBucketBytes);

  // A new round: every gradient is multiplied by `scale` as it is packed.
  void begin(double scale);
  // Gradient `index` is final: pack it, and start every leading bucket now complete.
  void ready(size_t index, const Tensor& gradient);
  // Packs what was not reported, starts the remaining buckets, waits for all and writes
  // the sums into `gradients` (same order and shapes as construction).
  void finish(std::vector<Tensor>& gradients);
  size_t bucket_count() const { return buckets_.size(); }

 private:
  struct Bucket {
    DType dtype = DType::Float;
    std::vector<double> storage;  // double-aligned bytes for either dtype
    std::vector<size_t> members;
    size_t missing = 0;
  };
  struct Slot {
    size_t bucket = 0;
    int64_t offset = 0, size = 0;  // in elements of the bucket's dtype
    bool packed = false;
  };
  void pack(size_t index, const Tensor& gradient);
  void start_ready_buckets();

  Distributed& world_;
  std::vector<Bucket> buckets_;
  std::vector<Slot> slots_;
  size_t next_bucket_ = 0;  // the first bucket not started this round
  double scale_ = 1;
};

}  // namespace onnxtrain
