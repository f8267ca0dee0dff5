#include "src/memory_pool.h"

#include <algorithm>
#include <cstdlib>

namespace onnxtrain {

struct MemoryPool::State {
  std::mutex mutex;
  std::multimap<size_t, std::byte*> free_blocks;  // capacity -> block
  size_t in_use = 0, peak = 0, reserved = 0;

  void give_back(std::byte* p, size_t capacity) {
    std::lock_guard lock(mutex);
    in_use -= capacity;
    free_blocks.emplace(capacity, p);
  }
  void release() {
    for (auto& [cap, p] : free_blocks) {
      std::free(p);
      reserved -= cap;
    }
    free_blocks.clear();
  }
};

namespace {
// Size classes keep reuse high without wasting more than ~12% on large blocks.
size_t size_class(size_t bytes) {
  bytes = std::max<size_t>(bytes, 64);
  if (bytes <= 4096) return (bytes + 63) / 64 * 64;
  size_t step = size_t{1} << (63 - __builtin_clzll(bytes) - 3);
  return (bytes + step - 1) / step * step;
}
}  // namespace

MemoryPool::MemoryPool() : state_(std::make_shared<State>()) {}

MemoryPool::~MemoryPool() {
  std::lock_guard lock(state_->mutex);
  state_->release();
}

Tensor MemoryPool::allocate(DType dtype, const Shape& shape) {
  for (int64_t d : shape)
    if (d < 0) throw ShapeError("negative dimension in " + shape_str(shape));
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  const size_t capacity = size_class(bytes);
  std::byte* block = nullptr;
  {
    std::lock_guard lock(state_->mutex);
    auto it = state_->free_blocks.find(capacity);
    if (it != state_->free_blocks.end()) {
      block = it->second;
      state_->free_blocks.erase(it);
    }
    state_->in_use += capacity;
    state_->peak = std::max(state_->peak, state_->in_use);
  }
  if (!block) {
    block = static_cast<std::byte*>(std::aligned_alloc(64, capacity));
    if (!block) {
      std::lock_guard lock(state_->mutex);
      state_->release();  // retry once after dropping the cache
      block = static_cast<std::byte*>(std::aligned_alloc(64, capacity));
      if (!block) {
        state_->in_use -= capacity;
        throw BackendError("out of memory allocating " + std::to_string(bytes) + " bytes for " +
                           shape_str(shape));
      }
    }
    std::lock_guard lock(state_->mutex);
    state_->reserved += capacity;
  }
  std::weak_ptr<State> weak = state_;
  std::shared_ptr<std::byte> owner(block, [weak, capacity](std::byte* p) {
    if (auto s = weak.lock()) s->give_back(p, capacity);
    else std::free(p);
  });
  return Tensor::from_storage(dtype, shape, std::move(owner));
}

size_t MemoryPool::bytes_in_use() const {
  std::lock_guard lock(state_->mutex);
  return state_->in_use;
}

size_t MemoryPool::peak_bytes_in_use() const {
  std::lock_guard lock(state_->mutex);
  return state_->peak;
}

size_t MemoryPool::bytes_reserved() const {
  std::lock_guard lock(state_->mutex);
  return state_->reserved;
}

void MemoryPool::release_cached() {
  std::lock_guard lock(state_->mutex);
  state_->release();
}

}  // namespace onnxtrain
