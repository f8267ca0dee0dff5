#pragma once
// TrainingSession's state, shared by its translation units: the training graph and its
// executor (training_session.cpp), the optimizer stage (training_optimizer.cpp),
// checkpoints (training_checkpoint.cpp) and evaluation/export (training_eval.cpp).
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "onnxtrain/training.h"
#include "src/executor.h"

namespace onnxtrain {

struct TrainingSession::Impl {
  Model* model = nullptr;
  TrainingOptions options;
  std::unique_ptr<graph::Graph> graph;  // model + loss + backward
  std::string loss;
  std::vector<std::string> trainable, gradient_values;
  int64_t trainable_elements = 0;
  size_t backward_nodes = 0;
  std::unique_ptr<Executor> executor;

  // BatchNormalization running statistics: graph output -> the initializer it replaces.
  struct RunningStat {
    std::string output, initializer, input_shape;  // input_shape: Shape(X), for N
    double momentum = 0.9;
    bool variance = false;
  };
  std::vector<RunningStat> running_stats;
  size_t running_stat_fetch = 0;  // index of the first running-stat fetch
  void find_running_stats();
  void write_back_running_stats(const std::vector<Tensor>& values);

  // Forward + backward: the loss and one gradient per trainable parameter (each with its
  // own storage), running statistics written back.
  double run_backward(const std::map<std::string, Tensor>& feeds, std::vector<Tensor>& gradients);

  // The optimizer stage: a graph of fused ai.onnxtrain update nodes (one per parameter
  // group) whose parameter and state inputs share storage with the training graph's
  // initializers, updated in place.
  struct Bucket {
    std::string lr_input;
    double lr_ratio = 1;  // of the scheduled base lr
  };
  std::vector<Bucket> buckets;
  std::unique_ptr<graph::Graph> optimizer_graph;
  std::unique_ptr<Executor> optimizer;
  std::optional<LrSchedule> schedule;
  int64_t step = 0;
  // Continuing from an exported training model: optimizer state comes from the model's
  // "<parameter>.<state>" initializers (shared, so they stay current) and its step count.
  bool resume_from_model = false;
  void restore_from_model();  // step and random generator state, when the model has them
  void build_optimizer();
  // Clipping, schedule and the update; `gradients` follow `trainable`'s order.
  StepResult apply_update(std::vector<Tensor>& gradients);

  // Gradient accumulation: sum of weight * gradient over the pending micro-batches.
  std::vector<Tensor> accumulated;
  int pending = 0;
  double pending_weight = 0;
  double batch_weight(const std::map<std::string, Tensor>& feeds) const;

  // Evaluation: the model with evaluation semantics plus the loss, one executor per
  // requested output set.
  std::unique_ptr<graph::Graph> eval_graph;
  std::string eval_loss;
  // The model (sharing parameter storage, so always current) with evaluation semantics and
  // the loss as an extra output; sets `loss_name`.
  std::unique_ptr<graph::Graph> build_eval_graph(std::string& loss_name) const;
  std::map<std::vector<std::string>, std::unique_ptr<Executor>> eval_executors;
};

// The initializer holding the optimizer step count in exported training models.
inline constexpr const char* kStepInitializer = "onnxtrain.step";

}  // namespace onnxtrain
