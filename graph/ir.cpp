#include "graph/ir.h"

#include <algorithm>
#include <sstream>
#include <unordered_set>

#include "onnxtrain/errors.h"

namespace onnxtrain::graph {

std::string dims_str(const Dims& dims) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) out << ',';
    if (dims[i].known()) out << dims[i].value;
    else out << (dims[i].symbol.empty() ? "?" : dims[i].symbol);
  }
  out << ']';
  return out.str();
}

namespace {
template <typename T>
const T* get_attr(const Node& node, const std::string& key) {
  auto it = node.attributes.find(key);
  if (it == node.attributes.end()) return nullptr;
  if (const T* v = std::get_if<T>(&it->second)) return v;
  throw ModelError(node.describe() + ": attribute '" + key + "' has an unexpected type");
}
}  // namespace

int64_t Node::attr_int(const std::string& key, int64_t fallback) const {
  const int64_t* v = get_attr<int64_t>(*this, key);
  return v ? *v : fallback;
}

int64_t Node::attr_int(const std::string& key) const {
  const int64_t* v = get_attr<int64_t>(*this, key);
  if (!v) throw ModelError(describe() + ": required attribute '" + key + "' is missing");
  return *v;
}

float Node::attr_float(const std::string& key, float fallback) const {
  const float* v = get_attr<float>(*this, key);
  return v ? *v : fallback;
}

std::string Node::attr_string(const std::string& key, const std::string& fallback) const {
  const std::string* v = get_attr<std::string>(*this, key);
  return v ? *v : fallback;
}

std::vector<int64_t> Node::attr_ints(const std::string& key, std::vector<int64_t> fallback) const {
  const auto* v = get_attr<std::vector<int64_t>>(*this, key);
  return v ? *v : fallback;
}

std::vector<float> Node::attr_floats(const std::string& key, std::vector<float> fallback) const {
  const auto* v = get_attr<std::vector<float>>(*this, key);
  return v ? *v : fallback;
}

std::vector<std::string> Node::attr_strings(const std::string& key) const {
  const auto* v = get_attr<std::vector<std::string>>(*this, key);
  return v ? *v : std::vector<std::string>{};
}

const Tensor* Node::attr_tensor(const std::string& key) const { return get_attr<Tensor>(*this, key); }

std::string Node::describe() const {
  std::string d = domain.empty() ? op_type : domain + "." + op_type;
  return d + " '" + name + "' (opset " + std::to_string(opset) + ")";
}

std::unique_ptr<Graph> Graph::clone() const {
  auto g = std::make_unique<Graph>();
  g->name = name;
  g->opsets = opsets;
  g->name_counter_ = name_counter_;
  std::unordered_map<const Value*, Value*> map;
  for (const auto& v : values_) {
    Value* c = g->add_value(v->name, v->dtype, v->dims);
    c->kind = v->kind;
    c->data = v->data;
    map[v.get()] = c;
  }
  auto remap = [&](const std::vector<Value*>& list) {
    std::vector<Value*> out;
    for (Value* v : list) out.push_back(v ? map.at(v) : nullptr);
    return out;
  };
  for (const auto& n : nodes_) {
    Node* c = g->add_node(n->op_type, remap(n->inputs), remap(n->outputs), n->domain, n->name);
    c->opset = n->opset;
    c->attributes = n->attributes;
  }
  g->inputs = remap(inputs);
  g->outputs = remap(outputs);
  return g;
}

Value* Graph::add_value(const std::string& value_name, DType dtype, std::optional<Dims> dims) {
  if (by_name_.count(value_name))
    throw ModelError("value '" + value_name + "' is defined more than once");
  auto v = std::make_unique<Value>();
  v->name = value_name;
  v->dtype = dtype;
  v->dims = std::move(dims);
  Value* raw = v.get();
  values_.push_back(std::move(v));
  by_name_[value_name] = raw;
  return raw;
}

Value* Graph::add_constant(const std::string& value_name, Tensor data) {
  Dims dims;
  for (int64_t d : data.shape()) dims.push_back({d, {}});
  Value* v = add_value(value_name, data.dtype(), dims);
  v->kind = ValueKind::Constant;
  v->data = std::move(data);
  return v;
}

Value* Graph::find_value(const std::string& value_name) const {
  auto it = by_name_.find(value_name);
  return it == by_name_.end() ? nullptr : it->second;
}

Value& Graph::value(const std::string& value_name) const {
  Value* v = find_value(value_name);
  if (!v) throw ModelError("graph has no value named '" + value_name + "'");
  return *v;
}

std::string Graph::unique_name(const std::string& base) {
  if (!by_name_.count(base)) return base;
  std::string candidate;
  do {
    candidate = base + "__" + std::to_string(++name_counter_);
  } while (by_name_.count(candidate));
  return candidate;
}

Node* Graph::add_node(std::string op_type, std::vector<Value*> node_inputs,
                      std::vector<Value*> node_outputs, std::string domain, std::string node_name) {
  auto n = std::make_unique<Node>();
  n->op_type = std::move(op_type);
  n->domain = std::move(domain);
  n->name = std::move(node_name);
  n->opset = opset(n->domain);
  n->inputs = std::move(node_inputs);
  n->outputs = std::move(node_outputs);
  for (size_t i = 0; i < n->outputs.size(); ++i) {
    if (!n->outputs[i]) continue;
    if (n->outputs[i]->producer || n->outputs[i]->kind != ValueKind::Intermediate)
      throw ModelError("value '" + n->outputs[i]->name + "' has more than one producer");
    n->outputs[i]->producer = n.get();
    n->outputs[i]->producer_output = static_cast<int>(i);
  }
  Node* raw = n.get();
  nodes_.push_back(std::move(n));
  return raw;
}

void Graph::remove_nodes(const std::vector<Node*>& dead) {
  std::unordered_set<Node*> kill(dead.begin(), dead.end());
  for (Node* n : dead)
    for (Value* out : n->outputs)
      if (out) out->producer = nullptr;
  std::erase_if(nodes_, [&](const std::unique_ptr<Node>& n) { return kill.count(n.get()) != 0; });
}

void Graph::prune_to_outputs() {
  std::unordered_set<const Value*> needed;
  std::vector<const Value*> stack(outputs.begin(), outputs.end());
  while (!stack.empty()) {
    const Value* v = stack.back();
    stack.pop_back();
    if (!v || !needed.insert(v).second) continue;
    if (v->producer)
      for (const Value* in : v->producer->inputs) stack.push_back(in);
  }
  std::vector<Node*> dead;
  for (const auto& n : nodes_) {
    bool used = false;
    for (const Value* out : n->outputs) used = used || (out && needed.count(out));
    if (!used) dead.push_back(n.get());
  }
  remove_nodes(dead);
  std::erase_if(inputs, [&](const Value* v) { return !needed.count(v); });
  // Unread outputs of kept nodes (e.g. saved statistics) stay: their node refers to them.
  for (const auto& n : nodes_)
    for (const Value* out : n->outputs)
      if (out) needed.insert(out);
  std::erase_if(values_, [&](const std::unique_ptr<Value>& v) {
    if (needed.count(v.get())) return false;
    by_name_.erase(v->name);
    return true;
  });
}

std::vector<const Value*> Graph::initializers() const {
  std::vector<const Value*> out;
  for (const auto& v : values_)
    if (v->kind == ValueKind::Initializer) out.push_back(v.get());
  return out;
}

std::vector<Value*> Graph::all_values() const {
  std::vector<Value*> out;
  for (const auto& v : values_) out.push_back(v.get());
  return out;
}

int Graph::opset(const std::string& domain) const {
  auto it = opsets.find(domain);
  if (it != opsets.end()) return it->second;
  if (domain == "ai.onnx") return opset("");
  return 1;
}

void Graph::topological_sort() {
  std::unordered_map<const Node*, int> pending;
  std::unordered_map<const Value*, std::vector<Node*>> consumers;
  for (const auto& n : nodes_) {
    int count = 0;
    for (Value* in : n->inputs)
      if (in && in->producer) {
        ++count;
        consumers[in].push_back(n.get());
      }
    pending[n.get()] = count;
  }
  std::vector<Node*> ready, order;
  for (const auto& n : nodes_)
    if (pending[n.get()] == 0) ready.push_back(n.get());
  // Keep the original order among ready nodes, so sorting a sorted graph is a no-op.
  std::unordered_map<const Node*, size_t> position;
  for (size_t i = 0; i < nodes_.size(); ++i) position[nodes_[i].get()] = i;
  auto later = [&](Node* a, Node* b) { return position[a] > position[b]; };
  std::make_heap(ready.begin(), ready.end(), later);
  while (!ready.empty()) {
    std::pop_heap(ready.begin(), ready.end(), later);
    Node* n = ready.back();
    ready.pop_back();
    order.push_back(n);
    for (Value* out : n->outputs) {
      if (!out) continue;
      for (Node* c : consumers[out])
        if (--pending[c] == 0) {
          ready.push_back(c);
          std::push_heap(ready.begin(), ready.end(), later);
        }
    }
  }
  if (order.size() != nodes_.size()) throw ModelError("graph '" + name + "' contains a cycle");
  std::unordered_map<Node*, std::unique_ptr<Node>> owned;
  for (auto& n : nodes_) owned[n.get()] = std::move(n);
  nodes_.clear();
  for (Node* n : order) nodes_.push_back(std::move(owned[n]));
}

std::unordered_map<const Value*, std::vector<std::pair<Node*, int>>> Graph::uses() const {
  std::unordered_map<const Value*, std::vector<std::pair<Node*, int>>> out;
  for (const auto& n : nodes_)
    for (size_t i = 0; i < n->inputs.size(); ++i)
      if (n->inputs[i]) out[n->inputs[i]].push_back({n.get(), static_cast<int>(i)});
  return out;
}

}  // namespace onnxtrain::graph
