#include "src/memory_pool.h"

#include <spdlog/spdlog.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "src/arena_plan.h"
#include "src/sanitizers.h"

// Sanitizer builds keep every block a heap allocation of its own, so AddressSanitizer's
// redzones and use-after-free checks see each tensor; the arena's bookkeeping is tested in
// the regular build (tests/unit/memory_plan_test.cpp).
constexpr bool kPlanRuns = !ONNXTRAIN_ASAN && !ONNXTRAIN_TSAN;

namespace onnxtrain {

namespace {

constexpr size_t kMapThreshold = 64 * 1024;  // recorded blocks this large are mapped, so freeing returns them

size_t round64(size_t bytes) { return (std::max<size_t>(bytes, 1) + 63) / 64 * 64; }

std::byte* map_bytes(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<std::byte*>(p);
}

// One mapping holding a planned run's blocks. Reference-counted by hand (the pool's reference
// plus one per live block) so a block released after its pool still finds it.
struct ArenaBuffer {
  std::byte* base = nullptr;
  size_t bytes = 0;
  std::atomic<int64_t> refs{1};
  std::atomic<size_t> in_use{0};
  // Per request of the current run: its range is free again (released, or never placed).
  std::unique_ptr<std::atomic<uint8_t>[]> released;
  size_t flag_capacity = 0;

  void unref() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    munmap(base, bytes);
    delete this;
  }
};

// A plan's allocations: recorded on its first run, then placed in the arena (arena_plan.h).
struct PlanRecord {
  enum class Mode { Recording, Planned, Off } mode = Mode::Recording;
  std::vector<ArenaRequest> requests;  // while recording
  std::vector<size_t> sizes;           // exact bytes per request, once planned
  ArenaLayout layout;
  int replans = 0;
};

// A plan whose allocations keep changing (data-dependent shapes) stops being planned.
constexpr int kMaxReplans = 3;

}  // namespace

struct MemoryPool::State {
  std::mutex mutex;
  // capacity -> blocks; a size class keeps its (emptied) vector, so a steady step that
  // takes and returns the same blocks allocates nothing here.
  std::map<size_t, std::vector<std::byte*>> free_blocks;
  size_t in_use = 0, peak = 0, reserved = 0;

  std::map<std::pair<const void*, int64_t>, PlanRecord> plans;
  PlanRecord* current = nullptr;  // set between begin_run and end_run
  uint64_t run_id = 0;
  int64_t event = 0;
  uint32_t next_request = 0;
  bool deviated = false;
  ArenaBuffer* arena = nullptr;

  ~State() {
    release();
    drop_arena();
  }
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
  void drop_arena() {
    if (arena) arena->unref();
    arena = nullptr;
  }
  size_t arena_in_use() const { return arena ? arena->in_use.load(std::memory_order_relaxed) : 0; }
  void note_use(size_t bytes) {
    in_use += bytes;
    peak = std::max(peak, in_use + arena_in_use());
  }
  // An arena that fits `record` with no block of an earlier run still in it.
  bool prepare_arena(const PlanRecord& record) {
    const size_t n = record.sizes.size();
    if (arena && (arena->bytes < record.layout.bytes || arena->refs.load(std::memory_order_acquire) != 1))
      drop_arena();
    if (!arena) {
      auto* a = new ArenaBuffer;
      a->bytes = std::max<size_t>(record.layout.bytes, 64);
      a->base = map_bytes(a->bytes);
      if (!a->base) {
        delete a;
        return false;
      }
      arena = a;
    }
    if (arena->flag_capacity < n) {
      arena->released = std::make_unique<std::atomic<uint8_t>[]>(n);
      arena->flag_capacity = n;
    }
    for (size_t k = 0; k < n; ++k) arena->released[k].store(0, std::memory_order_relaxed);
    return true;
  }
};

MemoryPool::MemoryPool() : state_(std::make_shared<State>()) {}

MemoryPool::~MemoryPool() = default;

Tensor MemoryPool::allocate(DType dtype, const Shape& shape) {
  return Tensor::from_storage(dtype, shape, take_block(dtype, shape));
}

void MemoryPool::allocate_into(Tensor& out, DType dtype, std::span<const int64_t> shape) {
  out.assign_storage(dtype, shape, take_block(dtype, shape));
}

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
  static constexpr size_t kSize = 64;  // larger than the pool's control blocks (checked on use)
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

// Releases a planned block: its range is free for the requests placed over it.
struct ArenaDeleter {
  ArenaBuffer* arena;
  uint32_t request;
  uint32_t units;  // size in 64-byte units
  void operator()(std::byte* p) const {
    arena->in_use.fetch_sub(size_t{units} * 64, std::memory_order_relaxed);
    arena->released[request].store(1, std::memory_order_release);
    arena->unref();
  }
};

void free_recorded(std::byte* p, size_t bytes) {
  if (bytes >= kMapThreshold) munmap(p, bytes);
  else std::free(p);
}

}  // namespace

void MemoryPool::begin_run(const void* plan, int64_t variant) {
  State& s = *state_;
  std::lock_guard lock(s.mutex);
  s.current = nullptr;
  if (!kPlanRuns) return;
  PlanRecord& r = s.plans[{plan, variant}];
  if (r.mode == PlanRecord::Mode::Off) return;
  if (r.mode == PlanRecord::Mode::Planned && !s.prepare_arena(r)) return;
  // A recorded run maps each block on its own, so the arena (refilled later) is not needed.
  if (r.mode == PlanRecord::Mode::Recording && s.arena && s.arena->refs.load() == 1) s.drop_arena();
  s.current = &r;
  ++s.run_id;
  s.event = 0;
  s.next_request = 0;
  s.deviated = false;
}

bool MemoryPool::plans_runs() { return kPlanRuns; }

void MemoryPool::end_run(bool completed) {
  State& s = *state_;
  std::lock_guard lock(s.mutex);
  PlanRecord* r = s.current;
  s.current = nullptr;
  ++s.run_id;  // recorded blocks released from now on are not part of the run
  if (!r) return;
  if (r->mode == PlanRecord::Mode::Recording) {
    if (completed) {
      r->layout = plan_arena(r->requests);
      r->sizes.clear();
      for (const auto& q : r->requests) r->sizes.push_back(q.bytes);
      r->mode = PlanRecord::Mode::Planned;
    }
    std::vector<ArenaRequest>().swap(r->requests);
    return;
  }
  if (!completed || (!s.deviated && s.next_request == r->sizes.size())) return;
  r->mode = ++r->replans > kMaxReplans ? PlanRecord::Mode::Off : PlanRecord::Mode::Recording;
  spdlog::debug("memory plan: a run made {} allocations, {} recorded{}; {}", s.next_request, r->sizes.size(),
                s.deviated ? ", some of other sizes or order" : "",
                r->mode == PlanRecord::Mode::Off ? "this plan's runs use the block cache from now on"
                                                 : "recording it again");
}

std::shared_ptr<std::byte> MemoryPool::take_block(DType dtype, std::span<const int64_t> shape) {
  int64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0) throw ShapeError("negative dimension in " + shape_str(Shape(shape.begin(), shape.end())));
    numel *= d;
  }
  const size_t bytes = static_cast<size_t>(numel) * dtype_size(dtype);
  State& s = *state_;
  std::unique_lock lock(s.mutex);
  if (PlanRecord* r = s.current) {
    const uint32_t k = s.next_request++;
    if (r->mode == PlanRecord::Mode::Recording) {
      const size_t size = round64(bytes);
      std::byte* p = size >= kMapThreshold ? map_bytes(size) : static_cast<std::byte*>(std::aligned_alloc(64, size));
      if (!p)
        throw BackendError("out of memory allocating " + std::to_string(bytes) + " bytes for " +
                           shape_str(Shape(shape.begin(), shape.end())));
      r->requests.push_back({size, ++s.event, -1});
      s.note_use(size);
      std::weak_ptr<State> weak = state_;
      const uint64_t run = s.run_id;
      return std::shared_ptr<std::byte>(p, [weak, k, size, run](std::byte* q) {
        if (auto st = weak.lock()) {
          std::lock_guard l(st->mutex);
          st->in_use -= size;
          if (st->run_id == run && st->current && k < st->current->requests.size())
            st->current->requests[k].died = ++st->event;
        }
        free_recorded(q, size);
      }, ControlBlockAllocator<std::byte>());
    }
    // Planned: the k-th request of the run goes where the recorded k-th went, if it is the
    // same size and every request placed over that range has been released.
    const size_t n = r->sizes.size();
    bool placed = k < n && r->sizes[k] == round64(bytes) && r->layout.offsets[k] != ArenaLayout::kOutside;
    if (placed) {
      for (uint32_t c = r->layout.conflict_begin[k]; placed && c < r->layout.conflict_begin[k + 1]; ++c)
        placed = s.arena->released[r->layout.conflicts[c]].load(std::memory_order_acquire) != 0;
    }
    const bool outside_by_plan = k < n && r->layout.offsets[k] == ArenaLayout::kOutside && r->sizes[k] == round64(bytes);
    if (!placed && !outside_by_plan) {
      s.deviated = true;
      if (k < n) s.arena->released[k].store(1, std::memory_order_relaxed);
    }
    if (placed) {
      std::byte* p = s.arena->base + r->layout.offsets[k];
      const size_t size = r->sizes[k];
      s.arena->refs.fetch_add(1, std::memory_order_relaxed);
      s.arena->in_use.fetch_add(size, std::memory_order_relaxed);
      s.note_use(0);
      return std::shared_ptr<std::byte>(p, ArenaDeleter{s.arena, k, static_cast<uint32_t>(size / 64)},
                                        ControlBlockAllocator<std::byte>());
    }
  }

  const size_t capacity = size_class(bytes);
  std::byte* block = nullptr;
  auto it = s.free_blocks.find(capacity);
  if (it != s.free_blocks.end() && !it->second.empty()) {
    block = it->second.back();
    it->second.pop_back();
  }
  s.note_use(capacity);
  if (!block) {
    block = static_cast<std::byte*>(std::aligned_alloc(64, capacity));
    if (!block) {
      s.release();  // retry once after dropping the cache
      block = static_cast<std::byte*>(std::aligned_alloc(64, capacity));
      if (!block) {
        s.in_use -= capacity;
        throw BackendError("out of memory allocating " + std::to_string(bytes) + " bytes for " +
                           shape_str(Shape(shape.begin(), shape.end())));
      }
    }
    s.reserved += capacity;
  }
  lock.unlock();
  std::weak_ptr<State> weak = state_;
  return std::shared_ptr<std::byte>(
      block,
      [weak, capacity](std::byte* p) {
        if (auto st = weak.lock()) st->give_back(p, capacity);
        else std::free(p);
      },
      ControlBlockAllocator<std::byte>());
}

size_t MemoryPool::bytes_in_use() const {
  std::lock_guard lock(state_->mutex);
  return state_->in_use + state_->arena_in_use();
}

size_t MemoryPool::peak_bytes_in_use() const {
  std::lock_guard lock(state_->mutex);
  return state_->peak;
}

size_t MemoryPool::bytes_reserved() const {
  std::lock_guard lock(state_->mutex);
  return state_->reserved + (state_->arena ? state_->arena->bytes : 0);
}

void MemoryPool::release_cached() {
  std::lock_guard lock(state_->mutex);
  state_->release();
  if (!state_->current && state_->arena && state_->arena->refs.load() == 1) state_->drop_arena();
}

}  // namespace onnxtrain
