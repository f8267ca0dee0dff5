#include "graph/passes/running_stats.h"

#include "ops/batch_norm.h"

namespace onnxtrain::graph {

namespace {

Value* scalar_like(Graph& g, const std::string& name, double value, DType dtype) {
  Value* v = g.add_constant(g.unique_name(name),
                            dtype == DType::Double ? Tensor::scalar<double>(value) : Tensor::scalar<float>(static_cast<float>(value)));
  return v;
}

// torch's variance update from ONNX's: new = m*old + (new_onnx - m*old) * n/max(n-1, 1).
Value* unbiased_update(Graph& g, const Node& bn, Value* x, Value* old, Value* onnx_update) {
  const std::string p = bn.name.empty() ? "batchnorm" : bn.name;
  const DType t = old->dtype;
  auto value = [&](const std::string& suffix, DType dtype, std::optional<Dims> dims = Dims{}) {
    return g.add_value(g.unique_name(p + "/running_var/" + suffix), dtype, std::move(dims));
  };
  auto node = [&](const std::string& op, std::vector<Value*> in, Value* out) {
    g.add_node(op, std::move(in), {out}, kOnnxDomain, g.unique_name(p + "/running_var/" + op));
    return out;
  };
  Value* total = node("Size", {x}, value("size_x", DType::Int64));
  Value* channels = node("Size", {old}, value("channels", DType::Int64));
  Node* cast_total = g.add_node("Cast", {total}, {value("size_x_f", t)}, kOnnxDomain, g.unique_name(p + "/running_var/Cast"));
  cast_total->attributes["to"] = static_cast<int64_t>(t);
  Node* cast_channels = g.add_node("Cast", {channels}, {value("channels_f", t)}, kOnnxDomain, g.unique_name(p + "/running_var/Cast"));
  cast_channels->attributes["to"] = static_cast<int64_t>(t);
  Value* n = node("Div", {cast_total->outputs[0], cast_channels->outputs[0]}, value("n", t));
  Value* n_1 = node("Sub", {n, scalar_like(g, p + "/running_var/one", 1, t)}, value("n_minus_1", t));
  Value* denominator = node("Max", {n_1, scalar_like(g, p + "/running_var/one", 1, t)}, value("denominator", t));
  Value* factor = node("Div", {n, denominator}, value("factor", t));
  Value* m = scalar_like(g, p + "/running_var/momentum", bn.attr_float("momentum", 0.9f), t);
  Value* kept = node("Mul", {old, m}, value("kept", t, old->dims));
  Value* added = node("Sub", {onnx_update, kept}, value("added", t, old->dims));
  Value* scaled = node("Mul", {added, factor}, value("added_unbiased", t, old->dims));
  return node("Add", {kept, scaled}, value("updated", t, old->dims));
}

}  // namespace

std::vector<std::pair<std::string, std::string>> bind_running_statistics(Graph& g, bool unbiased_variance) {
  std::vector<Node*> bns;
  for (const auto& n : g.nodes())
    if (n->domain.empty() && n->op_type == "BatchNormalization" && ops::batchnorm_trains(*n) && n->inputs.size() >= 5)
      bns.push_back(n.get());
  std::vector<std::pair<std::string, std::string>> bindings;
  for (Node* n : bns) {
    for (int i = 1; i <= 2; ++i) {
      Value* stat = n->inputs[2 + i];
      if (!stat || stat->kind != ValueKind::Initializer) continue;
      // The running-stat outputs exist in the training form.
      if (i >= static_cast<int>(n->outputs.size()) || !n->outputs[i]) continue;
      Value* updated = n->outputs[i];
      updated->dtype = stat->dtype;
      updated->dims = stat->dims;
      if (i == 2 && unbiased_variance) updated = unbiased_update(g, *n, n->inputs[0], stat, updated);
      bindings.emplace_back(stat->name, updated->name);
    }
  }
  return bindings;
}

}  // namespace onnxtrain::graph
