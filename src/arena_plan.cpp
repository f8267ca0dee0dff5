#include "src/arena_plan.h"

#include <algorithm>
#include <utility>

namespace onnxtrain {

namespace {

constexpr size_t kAlignment = 64;  // oneDNN's and AVX-512's

size_t aligned(size_t bytes) { return (std::max<size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment; }

bool lifetimes_overlap(const ArenaRequest& a, const ArenaRequest& b) { return a.born <= b.died && b.born <= a.died; }

}  // namespace

ArenaLayout plan_arena(const std::vector<ArenaRequest>& requests) {
  const size_t n = requests.size();
  ArenaLayout layout;
  layout.offsets.assign(n, ArenaLayout::kOutside);
  std::vector<size_t> order;
  for (size_t i = 0; i < n; ++i)
    if (requests[i].died >= 0) order.push_back(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return aligned(requests[a].bytes) > aligned(requests[b].bytes); });

  std::vector<size_t> placed;
  std::vector<std::pair<size_t, size_t>> busy;  // (offset, end) of placed requests alive with the current one
  for (size_t i : order) {
    const size_t size = aligned(requests[i].bytes);
    busy.clear();
    for (size_t p : placed)
      if (lifetimes_overlap(requests[i], requests[p])) busy.push_back({layout.offsets[p], layout.offsets[p] + aligned(requests[p].bytes)});
    std::sort(busy.begin(), busy.end());
    size_t best = ArenaLayout::kOutside, best_waste = ArenaLayout::kOutside, end = 0;
    for (const auto& [offset, stop] : busy) {
      if (offset > end && offset - end >= size && offset - end - size < best_waste) {
        best = end;
        best_waste = offset - end - size;
      }
      end = std::max(end, stop);
    }
    layout.offsets[i] = best != ArenaLayout::kOutside ? best : end;
    layout.bytes = std::max(layout.bytes, layout.offsets[i] + size);
    placed.push_back(i);
  }

  layout.conflict_begin.assign(n + 1, 0);
  for (size_t k = 0; k < n; ++k) {
    layout.conflict_begin[k] = static_cast<uint32_t>(layout.conflicts.size());
    if (layout.offsets[k] == ArenaLayout::kOutside) continue;
    const size_t k_end = layout.offsets[k] + aligned(requests[k].bytes);
    for (size_t j = 0; j < n; ++j) {
      if (j == k || layout.offsets[j] == ArenaLayout::kOutside || requests[j].born >= requests[k].born) continue;
      const size_t j_end = layout.offsets[j] + aligned(requests[j].bytes);
      if (layout.offsets[j] < k_end && layout.offsets[k] < j_end) layout.conflicts.push_back(static_cast<uint32_t>(j));
    }
  }
  layout.conflict_begin[n] = static_cast<uint32_t>(layout.conflicts.size());
  return layout;
}

}  // namespace onnxtrain
