#pragma once
// Loading, inspecting, running and saving ONNX models.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "onnxtrain/errors.h"
#include "onnxtrain/tensor.h"

namespace onnxtrain {

namespace graph {
class Graph;
}

struct ValueInfo {
  std::string name;
  DType dtype = DType::Undefined;
  std::vector<std::string> dims;  // "32", "batch", or "?"
  std::string shape_str() const;
};

struct ModelInfo {
  std::string source;
  std::string producer;
  int64_t ir_version = 0;
  std::map<std::string, int> opsets;  // domain ("" = ai.onnx) -> version
  std::vector<ValueInfo> inputs;
  std::vector<ValueInfo> outputs;
  int64_t parameter_count = 0;  // elements of float initializers
  int64_t parameter_bytes = 0;
  int64_t initializer_count = 0;
  std::map<std::string, int> op_histogram;  // op type -> node count
  // A fixed batch in the exported file: how it was relaxed to any batch, or why it could not
  // be (then only that batch size runs). Empty when the batch was symbolic already.
  std::string batch_note;
  // Operators used in a form newer than opset 17 (op type -> the opset of that form).
  std::map<std::string, int> newer_opset_ops;
  // Op types (with opset) that have no kernel, and the nodes that use them.
  std::map<std::string, std::vector<std::string>> missing_kernels;
  // Float operators (with opset) that have no gradient rule, and their nodes: training
  // fails if one of them lies between a trainable parameter and the loss.
  std::map<std::string, std::vector<std::string>> missing_gradients;
};

class Model {
 public:
  // The three front doors. Each runs the ONNX checker and shape inference.
  static Model load(const std::string& path);
  static Model from_bytes(const void* data, size_t size);
  static Model from_text(const std::string& onnx_text);

  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  ModelInfo info() const;
  std::vector<ValueInfo> inputs() const;
  std::vector<ValueInfo> outputs() const;

  // The model's metadata_props (key -> value).
  std::map<std::string, std::string> metadata() const;
  // Sets (or adds) one metadata_props entry; saved and exported files carry it.
  void set_metadata(const std::string& key, const std::string& value);

  // Current value of an initializer (parameters, buffers).
  Tensor initializer(const std::string& name) const;
  std::vector<std::string> initializer_names() const;
  // Replaces an initializer's value (same dtype and shape).
  void set_initializer(const std::string& name, const Tensor& value);

  // Writes the original model with the current initializer values: names, opsets,
  // metadata and every node survive unchanged. Written atomically.
  void save(const std::string& path) const;
  // The same, serialised to memory.
  std::string serialize() const;
  // Like save, for shipping a model trained from a training-form export (PyTorch TRAINING
  // mode): BatchNormalization and Dropout nodes are rewritten to their inference form
  // (running statistics, no dropout); what only they read is dropped.
  // `outputs` non-empty: see TrainingSession::export_inference_model.
  void save_inference(const std::string& path, const std::vector<std::string>& outputs = {}) const;

  // Internal: the IR that sessions execute.
  const graph::Graph& graph() const;

 private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct SessionOptions {
  // Threads, the one rule: oneDNN and our loops run on OpenMP's thread pool, whose size is
  // OpenMP's setting, not a session's. A session (this, or TrainingOptions::threads)
  // applies its `threads` when it is created, by set_num_threads on the creating thread;
  // 0 keeps the current count (at first OpenMP's default: all cores). Tools set threads
  // through the sessions' options only; code running kernels without a session calls
  // set_num_threads itself.
  int threads = 0;
  uint64_t seed = 0;
  // Evaluation semantics for models exported in training form: BatchNormalization uses
  // its running statistics and Dropout is off. False runs the graph exactly as written.
  bool inference_mode = false;
};

// Forward execution of a model; one session per thread. Plans and kernels are cached per input shapes.
class InferenceSession {
 public:
  explicit InferenceSession(const Model& model, SessionOptions options = {});
  ~InferenceSession();
  InferenceSession(InferenceSession&&) noexcept;

  // Runs the graph; returns the requested outputs (all model outputs when empty).
  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& feeds,
                                    const std::vector<std::string>& outputs = {});
  // Peak bytes of activations held at once during the last runs.
  size_t peak_activation_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Sets the number of threads oneDNN and our own loops use when started from the calling
// thread (0 = no change); sessions call it with their options' threads (see
// SessionOptions::threads).
void set_num_threads(int threads);

}  // namespace onnxtrain
