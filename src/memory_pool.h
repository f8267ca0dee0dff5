#pragma once
// The allocator of activations and gradients. Within a run of an executor plan
// (begin_run/end_run), the first run records each allocation's size and lifetime (blocks
// mapped one by one, so that run holds only what is live), and later runs place every
// allocation at its planned offset in one arena (arena_plan.h): the memory a step holds is
// about its peak of live bytes. Allocations that outlive the run (fetched values), runs that
// deviate from the record, and allocations outside runs use size-classed free lists of
// cached blocks. A steady-state step allocates nothing from the OS either way. Sanitizer
// builds use the block cache only (plans_runs()).
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
  // Brackets one run of `plan` (an executor plan; `variant` tells apart its feed sizes, e.g.
  // a smaller last batch). Not nested. end_run(false) after a failed run drops its record.
  void begin_run(const void* plan, int64_t variant);
  // False in sanitizer builds, whose pools keep every block a heap allocation of its own.
  static bool plans_runs();
  void end_run(bool completed);
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
