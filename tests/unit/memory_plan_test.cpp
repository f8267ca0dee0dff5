// The arena planner (src/arena_plan.h) and the pool's planned runs (src/memory_pool.h):
// blocks alive at the same time never share memory, whatever a later run does differently.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "src/arena_plan.h"
#include "src/memory_pool.h"

namespace onnxtrain {
namespace {

bool ranges_overlap(size_t a, size_t a_size, size_t b, size_t b_size) { return a < b + b_size && b < a + a_size; }
size_t round64(size_t n) { return (n + 63) / 64 * 64; }

// Random lifetimes over `events` events; about one in ten outlives the run.
std::vector<ArenaRequest> random_requests(std::mt19937& rng, int count) {
  std::vector<ArenaRequest> out;
  int64_t event = 0;
  for (int i = 0; i < count; ++i) {
    ArenaRequest r;
    r.bytes = 1 + rng() % 5000;
    r.born = event += 1 + rng() % 3;
    r.died = rng() % 10 == 0 ? -1 : r.born + 1 + static_cast<int64_t>(rng() % 60);
    out.push_back(r);
  }
  return out;
}

TEST(ArenaPlan, RequestsAliveTogetherGetDisjointRanges) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    const auto requests = random_requests(rng, 200);
    const ArenaLayout layout = plan_arena(requests);
    ASSERT_EQ(layout.offsets.size(), requests.size());
    size_t sum = 0;
    for (size_t i = 0; i < requests.size(); ++i) {
      if (requests[i].died < 0) {
        EXPECT_EQ(layout.offsets[i], ArenaLayout::kOutside) << "request " << i << " outlives the run";
        continue;
      }
      sum += round64(requests[i].bytes);
      EXPECT_EQ(layout.offsets[i] % 64, 0u);
      EXPECT_LE(layout.offsets[i] + requests[i].bytes, layout.bytes);
      for (size_t j = 0; j < i; ++j) {
        if (requests[j].died < 0) continue;
        const bool alive_together = requests[i].born <= requests[j].died && requests[j].born <= requests[i].died;
        const bool share = ranges_overlap(layout.offsets[i], requests[i].bytes, layout.offsets[j], requests[j].bytes);
        EXPECT_FALSE(alive_together && share) << "requests " << j << " and " << i;
        // The conflicts of i are exactly the earlier requests over its range.
        const auto begin = layout.conflicts.begin() + layout.conflict_begin[i];
        const auto end = layout.conflicts.begin() + layout.conflict_begin[i + 1];
        const bool listed = std::find(begin, end, static_cast<uint32_t>(j)) != end;
        const bool over = ranges_overlap(layout.offsets[i], round64(requests[i].bytes), layout.offsets[j],
                                         round64(requests[j].bytes));
        EXPECT_EQ(listed, over) << "conflict of " << i << " with " << j;
      }
    }
    EXPECT_LT(layout.bytes, sum) << "nothing shared memory";
  }
}

TEST(ArenaPlan, AChainOfLayersReusesTwoBuffers) {
  // x0 -> x1 -> x2 -> x3, each freed once the next exists: two 1 MiB ranges suffice.
  std::vector<ArenaRequest> chain;
  for (int64_t i = 0; i < 4; ++i) chain.push_back({1 << 20, 2 * i, 2 * i + 3});
  const ArenaLayout layout = plan_arena(chain);
  EXPECT_EQ(layout.bytes, size_t{2} << 20);
  EXPECT_EQ(layout.offsets[0], layout.offsets[2]);
  EXPECT_EQ(layout.offsets[1], layout.offsets[3]);
}

// A run of the pool as an executor makes it: blocks made and released in a fixed order,
// each filled with its own id and checked before release, so sharing memory while alive shows.
class PoolRun {
 public:
  explicit PoolRun(MemoryPool& pool) : pool_(pool) {}
  void make(int id, int64_t floats) {
    Tensor t = pool_.allocate(DType::Float, {floats});
    std::fill_n(t.data<float>(), floats, static_cast<float>(id));
    live_[id] = t;
  }
  void release(int id) {
    check(id);
    live_.erase(id);
  }
  void check(int id) const {
    const Tensor& t = live_.at(id);
    for (int64_t i = 0; i < t.numel(); ++i)
      ASSERT_EQ(t.data<float>()[i], static_cast<float>(id)) << "block " << id << " was overwritten at " << i;
  }
  Tensor hold(int id) const { return live_.at(id); }
  std::map<int, Tensor>& live() { return live_; }

 private:
  MemoryPool& pool_;
  std::map<int, Tensor> live_;
};

// Forward activations kept for the backward pass, then gradients of other sizes: the mix a
// size-classed cache holds twice.
void training_like_run(PoolRun& run, int64_t scale = 1) {
  for (int i = 0; i < 6; ++i) run.make(i, (10000 + 3000 * i) * scale);  // activations
  for (int i = 5; i >= 0; --i) {
    run.make(100 + i, (7000 + 5000 * i) * scale);  // gradient of activation i
    if (i < 5) run.release(100 + i + 1);
    run.release(i);
  }
  run.release(100);
}

TEST(MemoryPoolPlan, LaterRunsHoldAboutThePeakOfLiveBytes) {
  if (!MemoryPool::plans_runs()) GTEST_SKIP() << "sanitizer builds keep every block a heap allocation of its own";
  MemoryPool pool;
  const int plan = 0;
  size_t reserved_after_second = 0;
  for (int r = 0; r < 4; ++r) {
    PoolRun run(pool);
    pool.begin_run(&plan, 1);
    training_like_run(run);
    pool.end_run(true);
    EXPECT_EQ(pool.bytes_in_use(), 0u);
    if (r == 1) reserved_after_second = pool.bytes_reserved();
    if (r > 1) {
      EXPECT_EQ(pool.bytes_reserved(), reserved_after_second) << "a steady run maps nothing new";
    }
  }
  // Peak live: the six activations (10000..25000 floats) plus two gradients at worst.
  const size_t activations = (10000 + 13000 + 16000 + 19000 + 22000 + 25000) * 4;
  EXPECT_LE(reserved_after_second, activations + (32000 + 27000) * 4 + 64 * 20);
}

TEST(MemoryPoolPlan, ARunThatDiffersFromTheRecordStaysCorrect) {
  MemoryPool pool;
  const int plan = 0;
  for (int r = 0; r < 2; ++r) {
    PoolRun run(pool);
    pool.begin_run(&plan, 1);
    training_like_run(run);
    pool.end_run(true);
  }
  // Same plan and variant, other sizes and order (e.g. a data-dependent shape).
  for (int r = 0; r < 6; ++r) {
    PoolRun run(pool);
    pool.begin_run(&plan, 1);
    training_like_run(run, r % 2 ? 2 : 1);
    run.make(500, 12345);
    run.make(501, 999);
    run.release(500);
    run.release(501);
    pool.end_run(true);
  }
}

TEST(MemoryPoolPlan, ABlockKeptPastItsReleaseIsNeverReused) {
  // Recorded: A, then B of the same size once A is gone, so B is planned over A's range.
  MemoryPool pool;
  const int plan = 0;
  auto run_once = [&](bool keep_a) {
    PoolRun run(pool);
    pool.begin_run(&plan, 1);
    run.make(1, 5000);
    Tensor held;
    if (keep_a) held = run.hold(1);  // e.g. a kernel or the caller keeping A after the plan released it
    run.release(1);
    run.make(2, 5000);
    run.release(2);
    pool.end_run(true);
    return held;
  };
  run_once(false);
  run_once(false);
  const Tensor kept = run_once(true);
  for (int r = 0; r < 3; ++r) {
    run_once(false);
    for (int64_t i = 0; i < kept.numel(); ++i) ASSERT_EQ(kept.data<float>()[i], 1.f) << "after run " << r << ", at " << i;
  }
}

TEST(MemoryPoolPlan, ValuesFetchedFromARunOutliveIt) {
  MemoryPool pool;
  const int plan = 0;
  std::vector<Tensor> fetched;
  for (int r = 0; r < 4; ++r) {
    PoolRun run(pool);
    pool.begin_run(&plan, 1);
    training_like_run(run);
    run.make(900 + r, 20000);  // the run's result, alive after it
    fetched.push_back(run.hold(900 + r));
    run.live().clear();
    pool.end_run(true);
  }
  for (int r = 0; r < 4; ++r)
    for (int64_t i = 0; i < fetched[r].numel(); ++i) ASSERT_EQ(fetched[r].data<float>()[i], 900.f + r);
}

TEST(MemoryPoolPlan, AFailedRunLeavesThePoolUsable) {
  MemoryPool pool;
  const int plan = 0;
  {
    PoolRun run(pool);
    pool.begin_run(&plan, 1);
    run.make(1, 1000);
    pool.end_run(false);  // the run threw after its first block
  }
  for (int r = 0; r < 3; ++r) {
    PoolRun run(pool);
    pool.begin_run(&plan, 1);
    training_like_run(run);
    pool.end_run(true);
  }
}

}  // namespace
}  // namespace onnxtrain
