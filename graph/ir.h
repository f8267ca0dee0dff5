#pragma once
// onnxtrain's own graph IR. Value-centric: each Value has one producer (a node, a graph
// input or an initializer), a dtype and a shape whose dims are concrete or symbolic.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "onnxtrain/tensor.h"

namespace onnxtrain::graph {

inline constexpr const char* kOnnxDomain = "";
inline constexpr const char* kTrainingDomain = "ai.onnxtrain";
inline constexpr const char* kPreviewTrainingDomain = "ai.onnx.preview.training";

// Attributes named "__..." are plan-time markers a session puts on its own graph's nodes for
// their kernels (kComputeTypeAttr); the exporter leaves them out and the importer ignores
// them, so they never reach a file and a file cannot set them.
inline constexpr const char* kComputeTypeAttr = "__compute_type";  // "bf16": see TrainingOptions::precision
inline constexpr const char* kConvAlgorithmAttr = "__conv_algorithm";  // "direct": TrainingOptions::conv_algorithm
inline bool is_internal_attribute(const std::string& name) { return name.starts_with("__"); }

// One dimension: a known size, or a symbol (dim_param) or unknown (-1 and empty symbol).
struct Dim {
  int64_t value = -1;
  std::string symbol;
  bool known() const { return value >= 0; }
  bool operator==(const Dim&) const = default;
};
using Dims = std::vector<Dim>;
std::string dims_str(const Dims& dims);

// Initializer: a model initializer (trainable candidate). Constant: a folded Constant node.
enum class ValueKind { Intermediate, Input, Initializer, Constant };

class Node;

struct Value {
  std::string name;
  DType dtype = DType::Undefined;
  std::optional<Dims> dims;  // empty when the rank is unknown
  ValueKind kind = ValueKind::Intermediate;
  std::optional<Tensor> data;  // initializers and folded constants
  Node* producer = nullptr;
  int producer_output = -1;

  bool is_constant() const { return data.has_value(); }
};

using AttributeValue = std::variant<int64_t, float, std::string, Tensor, std::vector<int64_t>,
                                    std::vector<float>, std::vector<std::string>>;

class Node {
 public:
  std::string name;
  std::string domain;
  std::string op_type;
  int opset = 0;  // the model's opset version for `domain`
  std::map<std::string, AttributeValue> attributes;
  std::vector<Value*> inputs;  // nullptr marks an omitted optional input
  std::vector<Value*> outputs;  // nullptr marks an omitted optional output

  bool has_attr(const std::string& key) const { return attributes.count(key) != 0; }
  int64_t attr_int(const std::string& key, int64_t fallback) const;
  int64_t attr_int(const std::string& key) const;
  float attr_float(const std::string& key, float fallback) const;
  std::string attr_string(const std::string& key, const std::string& fallback) const;
  std::vector<int64_t> attr_ints(const std::string& key, std::vector<int64_t> fallback = {}) const;
  std::vector<float> attr_floats(const std::string& key, std::vector<float> fallback = {}) const;
  std::vector<std::string> attr_strings(const std::string& key) const;
  const Tensor* attr_tensor(const std::string& key) const;

  size_t num_inputs() const { return inputs.size(); }
  bool has_input(size_t i) const { return i < inputs.size() && inputs[i] != nullptr; }
  bool has_output(size_t i) const { return i < outputs.size() && outputs[i] != nullptr; }
  // "Conv 'conv1' (opset 13)" — used in every error message about this node.
  std::string describe() const;
};

class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  // A structural copy; constant tensors share storage with this graph's (Tensor copies
  // are shallow), so parameters updated in place are seen by both.
  std::unique_ptr<Graph> clone() const;

  std::string name;
  std::map<std::string, int> opsets;  // domain -> version
  // How the inputs' batch dim was treated at load (graph/relax_batch.h): what was relaxed,
  // or why a fixed batch stays fixed. Empty when the model's batch was already symbolic.
  std::string batch_note;
  std::vector<Value*> inputs;
  std::vector<Value*> outputs;

  Value* add_value(const std::string& name, DType dtype = DType::Undefined,
                   std::optional<Dims> dims = std::nullopt);
  Value* add_constant(const std::string& name, Tensor data);
  Value* find_value(const std::string& name) const;
  Value& value(const std::string& name) const;  // throws ModelError when missing
  std::string unique_name(const std::string& base);

  Node* add_node(std::string op_type, std::vector<Value*> inputs, std::vector<Value*> outputs,
                 std::string domain = kOnnxDomain, std::string name = {});
  const std::vector<std::unique_ptr<Node>>& nodes() const { return nodes_; }
  // Removes the given nodes; their outputs lose their producer.
  void remove_nodes(const std::vector<Node*>& dead);
  // Keeps only what the graph outputs need: removes the other nodes, then the inputs,
  // initializers and values nothing reads any more.
  void prune_to_outputs();
  std::vector<const Value*> initializers() const;
  std::vector<Value*> all_values() const;

  int opset(const std::string& domain) const;
  // Reorders nodes so every producer precedes its consumers; throws on cycles.
  void topological_sort();
  // consumer lists: value -> (node, input index)
  std::unordered_map<const Value*, std::vector<std::pair<Node*, int>>> uses() const;

 private:
  std::vector<std::unique_ptr<Value>> values_;
  std::unordered_map<std::string, Value*> by_name_;
  std::vector<std::unique_ptr<Node>> nodes_;
  int name_counter_ = 0;
};

}  // namespace onnxtrain::graph
