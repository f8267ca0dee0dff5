#include "graph/passes/inference_mode.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <unordered_set>

#include "onnxtrain/errors.h"
#include "ops/batch_norm.h"

namespace onnxtrain::graph {

int to_inference_mode(Graph& graph, InferenceModeOptions options) {
  auto uses = graph.uses();
  std::unordered_set<const Value*> graph_outputs(graph.outputs.begin(), graph.outputs.end());
  auto drop_outputs_from = [&](Node& n, size_t first) {
    for (size_t i = first; i < n.outputs.size(); ++i) {
      Value* v = n.outputs[i];
      if (!v) continue;
      if (uses.count(v) || graph_outputs.count(v))
        throw ModelError(n.describe() + ": its training output '" + v->name +
                         "' is used, so the node cannot run in inference mode");
      v->producer = nullptr;
      n.outputs[i] = nullptr;
    }
    while (n.outputs.size() > first && !n.outputs.back()) n.outputs.pop_back();
  };
  int changed = 0;
  Value* false_value = nullptr;
  for (const auto& node : graph.nodes()) {
    Node& n = *node;
    if (!n.domain.empty()) continue;
    if (options.batchnorm && n.op_type == "BatchNormalization" && ops::batchnorm_trains(n)) {
      if (n.opset < 7) n.attributes["is_test"] = int64_t{1};
      else if (n.opset >= 14) n.attributes["training_mode"] = int64_t{0};
      drop_outputs_from(n, 1);
      ++changed;
    } else if (options.dropout && n.op_type == "Dropout") {
      if (n.opset < 7 && n.attr_int("is_test", 0) == 0) {
        n.attributes["is_test"] = int64_t{1};
        ++changed;
      } else if (n.opset >= 12 && n.has_input(2)) {
        if (!false_value) false_value = graph.add_constant(graph.unique_name("inference_mode_false"), Tensor::scalar<bool>(false));
        n.inputs[2] = false_value;
        ++changed;
      }
    }
  }
  return changed;
}

int batchnorm_to_training_mode(Graph& graph) {
  std::vector<Node*> targets;
  for (const auto& node : graph.nodes())
    if (node->domain.empty() && node->op_type == "BatchNormalization" && !ops::batchnorm_trains(*node)) {
      if (node->opset < 7)
        throw ModelError(node->describe() + ": BatchNormalization before opset 7 cannot be switched to training mode");
      targets.push_back(node.get());
    }
  for (Node* n : targets) {
    if (n->opset >= 14) n->attributes["training_mode"] = int64_t{1};
    n->outputs.resize(std::max<size_t>(n->outputs.size(), 3), nullptr);
    const char* names[] = {"", "running_mean", "running_var"};
    for (int i = 1; i <= 2; ++i) {
      if (n->outputs[i]) continue;
      Value* stat = n->inputs.size() > static_cast<size_t>(2 + i) ? n->inputs[2 + i] : nullptr;
      Value* out = graph.add_value(graph.unique_name(n->name + "/" + names[i]), n->outputs[0]->dtype,
                                   stat ? stat->dims : std::nullopt);
      out->producer = n;
      n->outputs[i] = out;
    }
  }
  return static_cast<int>(targets.size());
}

namespace {

int default_opset(const onnx::ModelProto& model) {
  for (const auto& o : model.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") return static_cast<int>(o.version());
  return 1;
}

void set_int_attribute(onnx::NodeProto& node, const std::string& name, int64_t value) {
  for (auto& a : *node.mutable_attribute())
    if (a.name() == name) {
      a.set_i(value);
      return;
    }
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

int64_t int_attribute(const onnx::NodeProto& node, const std::string& name, int64_t fallback) {
  for (const auto& a : node.attribute())
    if (a.name() == name) return a.i();
  return fallback;
}

}  // namespace

int to_inference_form(onnx::ModelProto& model) {
  onnx::GraphProto& g = *model.mutable_graph();
  const int opset = default_opset(model);
  std::unordered_set<std::string> read;
  for (const auto& n : g.node())
    for (const auto& in : n.input()) read.insert(in);
  for (const auto& o : g.output()) read.insert(o.name());

  std::vector<std::string> released;  // inputs the rewrite stopped reading
  auto trim_outputs = [&](onnx::NodeProto& n, int keep) {
    for (int i = keep; i < n.output_size(); ++i)
      if (!n.output(i).empty() && read.count(n.output(i)))
        throw ModelError("node '" + n.name() + "' (" + n.op_type() + "): its training output '" + n.output(i) +
                         "' is used, so the node has no inference form");
    while (n.output_size() > keep) n.mutable_output()->RemoveLast();
  };
  int changed = 0;
  for (auto& n : *g.mutable_node()) {
    if (!n.domain().empty() && n.domain() != "ai.onnx") continue;
    if (n.op_type() == "BatchNormalization") {
      bool trains = opset < 7    ? int_attribute(n, "is_test", 0) == 0
                    : opset < 14 ? std::any_of(n.output().begin() + std::min(1, n.output_size()), n.output().end(),
                                               [](const std::string& s) { return !s.empty(); })
                                 : int_attribute(n, "training_mode", 0) != 0;
      if (!trains) continue;
      if (opset < 7) set_int_attribute(n, "is_test", 1);
      if (opset >= 14) set_int_attribute(n, "training_mode", 0);
      trim_outputs(n, 1);
      ++changed;
    } else if (n.op_type() == "Dropout") {
      const bool trains = opset < 7 ? int_attribute(n, "is_test", 0) == 0 : opset >= 12 && n.input_size() >= 3 &&
                                                                                !n.input(2).empty();
      if (opset < 7 && trains) set_int_attribute(n, "is_test", 1);
      if (opset >= 12 && n.input_size() >= 3) {
        released.push_back(n.input(2));
        n.mutable_input()->RemoveLast();
        if (n.input(1).empty()) {
          n.mutable_input()->RemoveLast();
        }
      }
      if (n.output_size() > 1 && !read.count(n.output(1))) trim_outputs(n, 1);
      changed += trains;
    }
  }
  // Drop what only the rewritten inputs read (PyTorch writes training_mode as a Constant).
  std::unordered_set<std::string> still_read;
  for (const auto& n : g.node())
    for (const auto& in : n.input()) still_read.insert(in);
  for (const auto& o : g.output()) still_read.insert(o.name());
  for (const auto& name : released) {
    if (name.empty() || still_read.count(name)) continue;
    auto* inits = g.mutable_initializer();
    for (int i = 0; i < inits->size(); ++i)
      if (inits->Get(i).name() == name) {
        bool is_input = std::any_of(g.input().begin(), g.input().end(), [&](const auto& v) { return v.name() == name; });
        if (!is_input) inits->DeleteSubrange(i, 1);
        break;
      }
    auto* nodes = g.mutable_node();
    for (int i = 0; i < nodes->size(); ++i)
      if (nodes->Get(i).op_type() == "Constant" && nodes->Get(i).output_size() == 1 && nodes->Get(i).output(0) == name) {
        nodes->DeleteSubrange(i, 1);
        break;
      }
  }
  return changed;
}

}  // namespace onnxtrain::graph
