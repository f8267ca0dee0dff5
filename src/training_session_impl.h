#pragma once
// TrainingSession's state, shared by its translation units: the training graph and its
// runs (training_session.cpp), the update step (training_optimizer.cpp), checkpoints
// (training_checkpoint.cpp), evaluation (training_eval.cpp) and export
// (training_export.cpp).
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "graph/ir.h"
#include "graph/loss.h"
#include "graph/passes/optimizer.h"
#include "onnxtrain/training.h"
#include "src/executor.h"
#include "src/gradient_buckets.h"

namespace onnxtrain {

struct TrainingSession::Impl {
  Model* model = nullptr;
  TrainingOptions options;
  // One graph: forward, loss, backward, clipping and the optimizer update. A backward run
  // and an update run are two plans of one executor over it (the update run is fed the
  // gradients), so a non-finite loss can be refused before anything changes and
  // micro-batches can be accumulated between them.
  std::unique_ptr<graph::Graph> graph;
  std::unique_ptr<Executor> executor;
  std::string loss;
  std::vector<std::string> trainable, gradient_values;
  int64_t trainable_elements = 0;
  size_t backward_nodes = 0;
  // BatchNormalization running statistics: initializer <- value, written back after every
  // training-mode forward pass.
  std::vector<std::pair<std::string, std::string>> running_stats;
  std::vector<std::string> backward_fetches;  // loss, gradients, running statistics, loss parts
  // The loss's named parts (detection kinds), fetched last by the backward run; the values
  // of the latest run.
  graph::LossParts parts;
  std::vector<std::pair<std::string, double>> last_parts;
  graph::OptimizerStage stage;
  std::vector<std::pair<std::string, std::string>> update_binding;  // the stage's, without the step
  std::vector<std::string> update_fetches;  // grad norm (when clipping), then update_binding's values
  std::optional<LrSchedule> schedule;
  int64_t step = 0;
  // Kept between steps so a steady-state step allocates nothing on the heap (their tensors
  // are emptied after each run, keeping capacity): the runs' feeds and fetched values, the
  // gradients handed from the backward run to the update, the lr and step inputs.
  std::unordered_map<std::string, Tensor> backward_feeds, update_feeds;
  std::vector<Tensor> backward_values, update_values, step_gradients;
  Tensor lr_input, step_input;
  // Profiling's phases: the model and loss nodes are "forward", the autodiff pass's
  // "backward"; nodes in neither set (clipping, the update) are "optimizer".
  std::unordered_set<const graph::Node*> forward_nodes, backward_nodes_set;

  // Forward + backward: the loss and one gradient per trainable parameter (each with its
  // own storage), running statistics written back.
  double run_backward(const std::map<std::string, Tensor>& feeds, std::vector<Tensor>& gradients);
  // The update run on `gradients` (in `trainable`'s order): clipping, the scheduled
  // learning rate and the optimizer nodes; parameters and state change in place.
  StepResult apply_update(std::vector<Tensor>& gradients);
  // Continuing an exported training model: its step count (read before the optimizer pass
  // turns the stored step into the step input) and random generator state.
  bool resume_from_model = false;
  void restore_from_model();
  void restore_rng_from_model();

  // Gradient accumulation: sum of weight * gradient over the pending micro-batches.
  std::vector<Tensor> accumulated;
  int pending = 0;
  double pending_weight = 0;
  double batch_weight(const std::map<std::string, Tensor>& feeds) const;

  // Data parallelism (training_distributed.cpp); null: this process alone.
  Distributed* world = nullptr;
  std::unique_ptr<GradientBuckets> buckets;
  // Synchronized BatchNorm (TrainingOptions::sync_batchnorm): the executor's kernels sum
  // their batch statistics across the world through this.
  std::unique_ptr<ops::Collective> batch_statistics;
  bool distributed() const { return world && world->size() > 1; }
  // train_step without accumulation across ranks: the backward run with the gradients'
  // allreduce overlapped, then the global check of the loss. Returns the local loss.
  double run_backward_allreduced(const std::map<std::string, Tensor>& feeds, std::vector<Tensor>& gradients);
  // Sums the accumulated weighted gradients and pending_weight over the ranks.
  void allreduce_accumulated();
  // Whether the loss is finite on every rank (all ranks must ask together).
  bool finite_everywhere(double loss) const;

  // Evaluation: the model with evaluation semantics plus the loss (different semantics,
  // so a graph of its own, sharing parameter storage), one executor.
  std::unique_ptr<graph::Graph> eval_graph;
  std::string eval_loss;
  graph::LossParts eval_parts;
  std::unique_ptr<Executor> eval_executor;
  // The model (sharing parameter storage, so always current) with evaluation semantics and
  // the loss as an extra output; sets `loss_name` and `parts`.
  std::unique_ptr<graph::Graph> build_eval_graph(std::string& loss_name, graph::LossParts* parts = nullptr) const;
};

// The loss parts' names with their values (`values` holds one per name).
std::vector<std::pair<std::string, double>> named_loss_parts(const graph::LossParts& parts, const Tensor& values);

// The NonFiniteLoss message of a rank whose own loss was finite but another's was not.
std::string non_finite_elsewhere(int64_t step);

// Copies each bound value into the initializer it replaces, unless it already is that
// initializer's storage (in-place updates).
void write_back(graph::Graph& graph, const std::vector<std::pair<std::string, std::string>>& bindings,
                std::span<const Tensor> values);

// The first value of a numeric tensor as a double (the loss, a gradient norm).
double first_value(const Tensor& t);

}  // namespace onnxtrain
