#pragma once
// Runs a Graph. The plan (step order, which values each step frees, which steps the
// requested outputs need) is computed once; kernels are built per node and input-shape
// signature and cached, so a new batch size builds new kernels once and reuses them after.
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "graph/ir.h"
#include "ops/registry.h"
#include "src/memory_pool.h"

namespace onnxtrain {

struct ExecutorOptions {
  uint64_t seed = 0;
};

class Executor {
 public:
  // `fetches` are the values run() returns, in this order.
  Executor(const graph::Graph& graph, std::vector<std::string> fetches, ExecutorOptions options = {});
  ~Executor();

  // Feeds are matched to graph inputs by name; every input the fetches need must be fed.
  std::vector<Tensor> run(const std::unordered_map<std::string, Tensor>& feeds);

  const MemoryPool& pool() const { return pool_; }
  std::mt19937_64& rng() { return rng_; }

 private:
  struct Step;
  void check_feed(const graph::Value& input, const Tensor& t) const;

  const graph::Graph& graph_;
  std::vector<std::string> fetch_names_;
  std::unordered_map<const graph::Value*, int> slot_of_;
  std::vector<const graph::Value*> slot_values_;
  std::vector<int> fetch_slots_;
  std::vector<std::pair<const graph::Value*, int>> input_slots_;
  std::vector<std::unique_ptr<Step>> steps_;
  MemoryPool pool_;
  std::mt19937_64 rng_;
  // ONNXTRAIN_PROFILE=1: time per op type, printed when the executor is destroyed.
  bool profile_ = false;
  std::unordered_map<std::string, std::pair<double, int64_t>> op_time_;
};

}  // namespace onnxtrain
