#include "src/memory_pool.h"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <vector>

namespace onnxtrain {

struct MemoryPool::State {
  std::mutex mutex;
  // capacity -> blocks; a size class keeps its (emptied) vector, so a steady step that
  // takes and returns the same blocks allocates nothing here.
  std::map<size_t, std::vector<std::byte*>> free_blocks;
  size_t in_use = 0, peak = 0, reserved = 0;

  void give_back(std::byte* p, size_t capacity) {
    std::lock_guard lock(mutex);
    in_use -= capacity;
    free_blocks[capacity].push_back(p);
  }
  void release() {
    for (auto& [cap, blocks] : free_blocks) {
      for (std::byte* p : blocks) std::free(p);
      reserved -= cap * blocks.size();
    }
    free_blocks.clear();
  }
};

namespace {

// The control blocks of the pool's shared_ptrs (one per tensor handed out) come from a free
// list instead of the heap: they all have one size, and a steady step returns as many as it
// takes. The list is never destroyed, since tensors may outlive every pool.
class ControlBlockCache {
 public:
  void* take(size_t bytes) {
    if (bytes <= kSize) {
      std::lock_guard lock(mutex_);
      if (head_) {
        Node* n = head_;
        head_ = n->next;
        return n;
      }
    }
    return ::operator new(std::max(bytes, kSize));
  }
  void give(void* p, size_t bytes) {
    if (bytes > kSize) return ::operator delete(p);
    std::lock_guard lock(mutex_);
    head_ = new (p) Node{head_};
  }
  static ControlBlockCache& instance() {
    static auto* cache = new ControlBlockCache;
    return *cache;
  }

 private:
  static constexpr size_t kSize = 64;  // larger than the pool's control block (checked on use)
  struct Node {
    Node* next;
  };
  std::mutex mutex_;
  Node* head_ = nullptr;
};

template <typename T>
struct ControlBlockAllocator {
  using value_type = T;
  ControlBlockAllocator() = default;
  template <typename U>
  ControlBlockAllocator(const ControlBlockAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(ControlBlockCache::instance().take(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { ControlBlockCache::instance().give(p, n * sizeof(T)); }
  template <typename U>
  bool operator==(const ControlBlockAllocator<U>&) const { return true; }
};

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
  return Tensor::from_storage(dtype, shape, take_block(dtype, shape));
}

void MemoryPool::allocate_into(Tensor& out, DType dtype, std::span<const int64_t> shape) {
  out.assign_storage(dtype, shape, take_block(dtype, shape));
}

std::shared_ptr<std::byte> MemoryPool::take_block(DType dtype, std::span<const int64_t> shape) {
  int64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0) throw ShapeError("negative dimension in " + shape_str(Shape(shape.begin(), shape.end())));
    numel *= d;
  }
  const size_t bytes = static_cast<size_t>(numel) * dtype_size(dtype);
  const size_t capacity = size_class(bytes);
  std::byte* block = nullptr;
  {
    std::lock_guard lock(state_->mutex);
    auto it = state_->free_blocks.find(capacity);
    if (it != state_->free_blocks.end() && !it->second.empty()) {
      block = it->second.back();
      it->second.pop_back();
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
                           shape_str(Shape(shape.begin(), shape.end())));
      }
    }
    std::lock_guard lock(state_->mutex);
    state_->reserved += capacity;
  }
  std::weak_ptr<State> weak = state_;
  return std::shared_ptr<std::byte>(
      block,
      [weak, capacity](std::byte* p) {
        if (auto s = weak.lock()) s->give_back(p, capacity);
        else std::free(p);
      },
      ControlBlockAllocator<std::byte>());
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
