#pragma once
// A caching allocator for activations: freed blocks go back to size-classed free lists and
// are reused by later allocations, so a steady-state step allocates nothing from the OS.
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>

#include "ops/kernel.h"

namespace onnxtrain {

class MemoryPool final : public ops::Allocator {
 public:
  MemoryPool();
  ~MemoryPool() override;
  // Contents are uninitialised: kernels write every element of their outputs.
  Tensor allocate(DType dtype, const Shape& shape) override;
  void allocate_into(Tensor& out, DType dtype, std::span<const int64_t> shape) override;
  size_t bytes_in_use() const;
  size_t peak_bytes_in_use() const;
  size_t bytes_reserved() const;
  // Returns cached free blocks to the system.
  void release_cached();

 private:
  struct State;
  std::shared_ptr<std::byte> take_block(DType dtype, std::span<const int64_t> shape);
  std::shared_ptr<State> state_;  // shared with outstanding tensors' deleters
};

}  // namespace onnxtrain
