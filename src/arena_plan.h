#pragma once
// Where each allocation of a run goes in one arena, from the sizes and lifetimes recorded on
// an earlier run of the same plan (MemoryPool): allocations whose lifetimes overlap get
// disjoint ranges, the others may share memory, so the arena needs about the run's peak of
// live bytes instead of the sum a size-classed cache holds after forward and backward
// passes have wanted different sizes.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace onnxtrain {

struct ArenaRequest {
  size_t bytes = 0;
  int64_t born = 0;   // event number of the allocation
  int64_t died = -1;  // event number of the release; -1: still alive when the run ended
};

struct ArenaLayout {
  static constexpr size_t kOutside = std::numeric_limits<size_t>::max();
  // Per request: its offset (a multiple of 64), or kOutside for one that outlives the run.
  std::vector<size_t> offsets;
  size_t bytes = 0;  // the arena's size
  // Request k's range overlaps those of conflicts[conflict_begin[k] .. conflict_begin[k+1]),
  // all made earlier and released before k was made on the recorded run; a later run may
  // place k only once they are released again.
  std::vector<uint32_t> conflict_begin;
  std::vector<uint32_t> conflicts;
};

// Greedy by size: the largest request first, each at the lowest-waste gap among the placed
// requests whose lifetimes overlap its own.
ArenaLayout plan_arena(const std::vector<ArenaRequest>& requests);

}  // namespace onnxtrain
