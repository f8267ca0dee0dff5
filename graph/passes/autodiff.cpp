#include "graph/passes/autodiff.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "ops/rules.h"

namespace onnxtrain::graph {

namespace {

bool is_float_value(const Value* v) { return v && is_floating(v->dtype); }

// Old schemas without type inference leave outputs Undefined: treat them as possibly
// float while propagating, so a path through them fails loudly instead of giving zeros.
bool maybe_float(const Value* v) { return v && (v->dtype == DType::Undefined || is_floating(v->dtype)); }

bool known_equal_shapes(const Value* a, const Value* b) {
  if (!a->dims || !b->dims || a->dims->size() != b->dims->size()) return false;
  for (size_t i = 0; i < a->dims->size(); ++i) {
    const Dim& x = (*a->dims)[i];
    const Dim& y = (*b->dims)[i];
    bool same = (x.known() && y.known() && x.value == y.value) ||
                (!x.known() && !y.known() && !x.symbol.empty() && x.symbol == y.symbol);
    if (!same) return false;
  }
  return true;
}

// Unknown ops count as differentiable, so a path through them fails loudly (no rule)
// instead of silently giving no gradient.
bool input_is_differentiable(const std::optional<ops::GradientRuleInfo>& def, size_t i) {
  if (!def) return true;
  if (def->not_differentiable) return false;
  const auto& nd = *def->non_differentiable_inputs;
  return std::find(nd.begin(), nd.end(), static_cast<int>(i)) == nd.end();
}

}  // namespace

GradientGraph build_gradient_graph(Graph& graph, const std::string& loss_name, const std::vector<std::string>& wrt,
                                   bool warn_unreachable) {
  Value& loss = graph.value(loss_name);
  std::vector<Node*> forward;
  for (const auto& n : graph.nodes()) forward.push_back(n.get());
  GradientGraph result;
  auto grads = differentiate(graph, forward, loss, wrt, result.backward_nodes);
  std::vector<std::string> unreachable;
  for (const auto& name : wrt) {
    auto it = grads.find(name);
    if (it == grads.end()) {
      unreachable.push_back(name);
      continue;
    }
    Value& v = graph.value(name);
    // Name the final gradient <value>_grad with an Identity (a view, no copy).
    Value* named = graph.add_value(graph.unique_name(name + "_grad"), v.dtype, v.dims);
    graph.add_node("Identity", {it->second}, {named}, kOnnxDomain, graph.unique_name(name + "_grad_output"));
    graph.outputs.push_back(named);
    result.gradient_of[name] = named->name;
  }
  if (warn_unreachable && !unreachable.empty()) {
    std::string list;
    for (const auto& u : unreachable) list += (list.empty() ? "" : ", ") + u;
    spdlog::warn("the loss '{}' does not depend on: {}", loss_name, list);
  }
  graph.topological_sort();
  return result;
}

std::map<std::string, Value*> differentiate(Graph& graph, const std::vector<Node*>& forward, Value& loss,
                                            const std::vector<std::string>& wrt, size_t& backward_nodes) {
  const std::string& loss_name = loss.name;
  if (!is_float_value(&loss))
    throw ModelError("the loss '" + loss_name + "' must be a float tensor, it is " + dtype_name(loss.dtype));

  // Values that vary with some wrt value through differentiable inputs.
  std::unordered_set<const Value*> varying;
  for (const auto& name : wrt) {
    Value& v = graph.value(name);
    if (!is_float_value(&v))
      throw ModelError("cannot differentiate with respect to '" + name + "': it is " + dtype_name(v.dtype));
    varying.insert(&v);
  }
  for (Node* n : forward) {
    const auto def = ops::find_gradient_rule(n->domain, n->op_type, n->opset);
    bool any = false;
    for (size_t i = 0; i < n->inputs.size(); ++i)
      any = any || (n->inputs[i] && varying.count(n->inputs[i]) && input_is_differentiable(def, i));
    if (!any) continue;
    for (Value* out : n->outputs)
      if (maybe_float(out)) varying.insert(out);
  }
  // Values the loss depends on.
  std::unordered_set<const Value*> needed{&loss};
  for (auto it = forward.rbegin(); it != forward.rend(); ++it) {
    Node* n = *it;
    bool feeds_loss = false;
    for (Value* out : n->outputs) feeds_loss = feeds_loss || (out && needed.count(out));
    if (!feeds_loss) continue;
    for (Value* in : n->inputs)
      if (in) needed.insert(in);
  }

  std::unordered_map<const Value*, std::vector<Value*>> contributions;
  // Sums the contributions to `v` into one value (named <v>_grad when it is final).
  auto gradient_of = [&](const Value* v) -> Value* {
    auto it = contributions.find(v);
    if (it == contributions.end() || it->second.empty()) return nullptr;
    auto& list = it->second;
    if (list.size() == 1) return list[0];
    Value* sum = graph.add_value(graph.unique_name(v->name + "_grad_sum"), v->dtype, v->dims);
    graph.add_node("Sum", list, {sum}, kOnnxDomain, graph.unique_name(v->name + "_grad_accumulate"));
    list = {sum};
    return sum;
  };

  {
    // Seed: d loss / d loss = 1.
    Value* seed = graph.add_value(graph.unique_name(loss.name + "_grad_seed"), loss.dtype, loss.dims);
    graph.add_node("OnesLike", {&loss}, {seed}, kTrainingDomain, graph.unique_name(loss.name + "_grad_seed_node"));
    contributions[&loss].push_back(seed);
  }

  const size_t nodes_before = graph.nodes().size();
  for (auto it = forward.rbegin(); it != forward.rend(); ++it) {
    Node* n = *it;
    std::vector<Value*> output_grads;
    bool any_grad = false;
    for (Value* out : n->outputs) {
      Value* g = out && varying.count(out) && needed.count(out) ? gradient_of(out) : nullptr;
      output_grads.push_back(g);
      any_grad = any_grad || g;
    }
    if (!any_grad) continue;
    const auto def = ops::find_gradient_rule(n->domain, n->op_type, n->opset);
    std::vector<bool> needs(n->inputs.size(), false);
    bool any_need = false;
    for (size_t i = 0; i < n->inputs.size(); ++i) {
      needs[i] = n->inputs[i] && varying.count(n->inputs[i]) && input_is_differentiable(def, i);
      any_need = any_need || needs[i];
    }
    if (!any_need) continue;
    if (!def || !def->rule)
      throw UnsupportedOp("no gradient rule for " + n->describe() +
                          ": it lies on the path from a trainable value to the loss '" + loss_name + "'");
    ops::GradientBuilder builder(graph, *n, output_grads, needs);
    (*def->rule)(builder);
    const auto& grads = builder.input_grads();
    for (size_t i = 0; i < n->inputs.size(); ++i) {
      if (!needs[i]) continue;
      Value* g = i < grads.size() ? grads[i].grad : nullptr;
      if (!g) throw UnsupportedOp("the gradient rule of " + n->describe() + " gives no gradient for input " +
                                  std::to_string(i) + " ('" + n->inputs[i]->name + "')");
      Value* in = n->inputs[i];
      if (grads[i].broadcast && !known_equal_shapes(in, n->outputs[0])) g = builder.sum_to_shape_of(g, in);
      if (g->dtype == DType::Undefined) g->dtype = in->dtype;
      contributions[in].push_back(g);
    }
  }

  std::map<std::string, Value*> result;
  for (const auto& name : wrt)
    if (Value* g = gradient_of(&graph.value(name))) result[name] = g;
  backward_nodes = graph.nodes().size() - nodes_before;
  return result;
}

}  // namespace onnxtrain::graph
