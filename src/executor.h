#pragma once
// Runs a Graph. A run names what it wants (fetches) and what it is given (feeds: graph
// inputs, or intermediate values whose producers are then skipped). Each distinct
// (fetches, fed names) pair gets a plan — step order, which values each step frees —
// computed once and cached. Kernels belong to the executor, not to a plan: they are built
// per node and input-shape signature and shared by every plan that runs the node, so a
// new batch size builds new kernels once. All plans draw on one memory pool.
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "graph/ir.h"
#include "ops/registry.h"
#include "src/memory_pool.h"

namespace onnxtrain {

// One node's record while profiling is on: kernel time (layout conversions inside oneDNN
// kernels excluded, counted in reorder_ns), runs, and forward FLOPs (src/op_flops.h).
struct NodeProfile {
  int64_t ns = 0, reorder_ns = 0, calls = 0;
  double flops = 0;
};

struct ExecutorOptions {
  uint64_t seed = 0;
  // Anomaly mode (TrainingOptions::detect_anomaly): after each node, its float outputs are
  // scanned and the first node in schedule order producing NaN or Inf is named in a
  // NonFiniteLoss. Off: one branch per node.
  bool detect_anomaly = false;
};

class Executor {
 public:
  Executor(const graph::Graph& graph, ExecutorOptions options = {});
  // An executor with default fetches for run(feeds).
  Executor(const graph::Graph& graph, std::vector<std::string> fetches, ExecutorOptions options = {});
  ~Executor();

  // Returns the fetched values in the order asked. Feeds are matched to values by name:
  // every graph input the fetches need must be fed; a fed intermediate value replaces
  // what its producer would compute.
  std::vector<Tensor> run(const std::unordered_map<std::string, Tensor>& feeds, const std::vector<std::string>& fetches);
  std::vector<Tensor> run(const std::unordered_map<std::string, Tensor>& feeds) { return run(feeds, default_fetches_); }
  // The same into `result` (resized to the fetches), reusing its tensors' capacity: with
  // the same feeds and fetches as an earlier run, a run allocates nothing on the heap
  // outside kernels that do (tests/reliability/alloc_count_test.cpp).
  void run(const std::unordered_map<std::string, Tensor>& feeds, const std::vector<std::string>& fetches,
           std::vector<Tensor>& result);

  // Called during a run as each fetched value is produced (its index in the fetches, the
  // value; the run goes on once it returns), e.g. to start sending gradients while the
  // backward pass continues. Fetches no step produces (fed values, initializers) are not
  // reported. Unset (the default) costs one branch per step.
  using FetchHook = std::function<void(size_t fetch, const Tensor& value)>;
  void set_fetch_hook(FetchHook hook) { fetch_hook_ = std::move(hook); }

  // Kernels that support it (training-mode BatchNormalization) take their statistics over
  // every process's batch through `c`; null (the default) keeps them local.
  void set_collective(ops::Collective* c) { collective_ = c; }

  const MemoryPool& pool() const { return pool_; }
  // Opt-in per-node timing (off: one branch per step). Turning it on clears the records.
  void set_profiling(bool on);
  const std::unordered_map<const graph::Node*, NodeProfile>& profile() const { return profile_records_; }
  std::mt19937_64& rng() { return rng_; }

 private:
  struct NodeKernels;
  struct Plan;
  Plan* find_plan(const std::unordered_map<std::string, Tensor>& feeds, const std::vector<std::string>& fetches) const;
  Plan& plan_for(const std::unordered_map<std::string, Tensor>& feeds, const std::vector<std::string>& fetches);
  void check_feed(const graph::Value& value, const Tensor& t) const;

  const graph::Graph& graph_;
  std::vector<std::string> default_fetches_;
  std::unordered_map<const graph::Node*, std::unique_ptr<NodeKernels>> kernels_;
  std::map<std::pair<std::vector<std::string>, std::vector<std::string>>, std::unique_ptr<Plan>> plans_;
  MemoryPool pool_;
  std::mt19937_64 rng_;
  bool profile_ = false;
  FetchHook fetch_hook_;
  ops::Collective* collective_ = nullptr;
  bool detect_anomaly_ = false;
  std::unordered_map<const graph::Node*, NodeProfile> profile_records_;
  // ONNXTRAIN_PROFILE=1 profiles from the start and prints time per op type when the
  // executor is destroyed.
  bool print_profile_ = false;
};

}  // namespace onnxtrain
