#include "src/executor.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_set>

#include "graph/passes/kernel_check.h"

namespace onnxtrain {

using graph::Node;
using graph::Value;
using graph::ValueKind;

struct Executor::Step {
  const Node* node = nullptr;
  const ops::OpDef* def = nullptr;
  std::vector<int> inputs;   // slot per input, -1 when omitted
  std::vector<int> outputs;  // slot per output, -1 when omitted
  std::vector<int> release;  // slots whose last use is this step
  // Kernels by input signature; `last` short-cuts the common case of an unchanged signature.
  std::map<std::vector<int64_t>, std::unique_ptr<ops::Kernel>> kernels;
  std::vector<int64_t> last_signature;
  ops::Kernel* last = nullptr;
};

namespace {

bool is_fixed(const Value& v) {
  // Float initializers may change (training); integer ones and folded constants never do.
  return v.kind == ValueKind::Constant || (v.kind == ValueKind::Initializer && !is_floating(v.dtype));
}

std::vector<int64_t> signature_of(const std::vector<const Tensor*>& inputs) {
  std::vector<int64_t> sig;
  for (const Tensor* t : inputs) {
    if (!t) {
      sig.push_back(-1);
      continue;
    }
    sig.push_back(static_cast<int64_t>(t->dtype()));
    sig.push_back(static_cast<int64_t>(t->rank()));
    sig.insert(sig.end(), t->shape().begin(), t->shape().end());
  }
  return sig;
}

}  // namespace

Executor::Executor(const graph::Graph& graph, std::vector<std::string> fetches, ExecutorOptions options)
    : graph_(graph), fetch_names_(std::move(fetches)), rng_(options.seed) {
  const char* profile = std::getenv("ONNXTRAIN_PROFILE");
  profile_ = profile && *profile && std::string(profile) != "0";
  auto slot = [&](const Value* v) {
    auto [it, inserted] = slot_of_.try_emplace(v, static_cast<int>(slot_values_.size()));
    if (inserted) slot_values_.push_back(v);
    return it->second;
  };
  // Walk back from the fetches to keep only the nodes they need.
  std::unordered_set<const Value*> needed;
  std::vector<const Value*> stack;
  for (const auto& name : fetch_names_) {
    const Value& v = graph.value(name);
    stack.push_back(&v);
  }
  while (!stack.empty()) {
    const Value* v = stack.back();
    stack.pop_back();
    if (!needed.insert(v).second) continue;
    if (v->producer)
      for (const Value* in : v->producer->inputs)
        if (in) stack.push_back(in);
  }
  std::vector<const Node*> order;
  for (const auto& n : graph.nodes()) {
    bool used = false;
    for (const Value* out : n->outputs) used = used || (out && needed.count(out));
    if (used) order.push_back(n.get());
  }
  graph::require_kernels(graph, graph.name.empty() ? "graph" : "graph '" + graph.name + "'");

  for (const Value* in : graph.inputs)
    if (needed.count(in)) input_slots_.push_back({in, slot(in)});
  for (const Node* n : order) {
    auto step = std::make_unique<Step>();
    step->node = n;
    step->def = ops::Registry::instance().find(n->domain, n->op_type, n->opset);
    for (const Value* in : n->inputs) step->inputs.push_back(in ? slot(in) : -1);
    for (const Value* out : n->outputs) step->outputs.push_back(out ? slot(out) : -1);
    steps_.push_back(std::move(step));
  }
  for (const auto& name : fetch_names_) fetch_slots_.push_back(slot(&graph.value(name)));

  // Lifetimes: a slot is released after its last consuming step, unless it is fetched,
  // a graph input (the caller owns it) or a constant.
  std::vector<int> last_use(slot_values_.size(), -1);
  for (size_t s = 0; s < steps_.size(); ++s)
    for (int in : steps_[s]->inputs)
      if (in >= 0) last_use[in] = static_cast<int>(s);
  std::unordered_set<int> keep(fetch_slots_.begin(), fetch_slots_.end());
  for (size_t i = 0; i < slot_values_.size(); ++i) {
    const Value* v = slot_values_[i];
    if (keep.count(static_cast<int>(i)) || v->data || v->kind == ValueKind::Input) continue;
    if (last_use[i] >= 0) steps_[last_use[i]]->release.push_back(static_cast<int>(i));
  }
  // Outputs nobody reads (e.g. BatchNormalization's saved statistics) die right after their step.
  for (size_t s = 0; s < steps_.size(); ++s)
    for (int out : steps_[s]->outputs)
      if (out >= 0 && last_use[out] < 0 && !keep.count(out)) steps_[s]->release.push_back(out);
}

Executor::~Executor() {
  if (!profile_ || op_time_.empty()) return;
  std::vector<std::pair<std::string, std::pair<double, int64_t>>> rows(op_time_.begin(), op_time_.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  double total = 0;
  for (const auto& r : rows) total += r.second.first;
  std::fprintf(stderr, "onnxtrain profile: %.3f ms in kernels\n", total);
  for (const auto& [op, t] : rows)
    std::fprintf(stderr, "  %-40s %10.3f ms %5.1f%% %8lld calls\n", op.c_str(), t.first, 100 * t.first / total,
                 static_cast<long long>(t.second));
}

void Executor::check_feed(const Value& input, const Tensor& t) const {
  auto expected = [&] {
    return dtype_name(input.dtype) + (input.dims ? graph::dims_str(*input.dims) : std::string("[?]"));
  };
  if (input.dtype != DType::Undefined && t.dtype() != input.dtype)
    throw DataError("input '" + input.name + "': expected " + expected() + ", got " +
                    dtype_name(t.dtype()) + shape_str(t.shape()));
  if (!input.dims) return;
  bool ok = input.dims->size() == t.rank();
  for (size_t i = 0; ok && i < t.rank(); ++i)
    if ((*input.dims)[i].known() && (*input.dims)[i].value != t.dim(i)) ok = false;
  if (!ok)
    throw DataError("input '" + input.name + "': expected " + expected() + ", got " +
                    dtype_name(t.dtype()) + shape_str(t.shape()));
}

std::vector<Tensor> Executor::run(const std::unordered_map<std::string, Tensor>& feeds) {
  std::vector<Tensor> slots(slot_values_.size());
  for (size_t i = 0; i < slot_values_.size(); ++i)
    if (slot_values_[i]->data) slots[i] = *slot_values_[i]->data;
  for (const auto& [value, slot] : input_slots_) {
    auto it = feeds.find(value->name);
    if (it == feeds.end()) throw DataError("input '" + value->name + "' was not fed");
    check_feed(*value, it->second);
    slots[slot] = it->second;
  }

  std::vector<const Tensor*> inputs;
  std::vector<Tensor> outputs;
  for (auto& step : steps_) {
    const Node& node = *step->node;
    inputs.clear();
    for (int s : step->inputs) inputs.push_back(s >= 0 ? &slots[s] : nullptr);
    auto signature = signature_of(inputs);
    if (!step->last || signature != step->last_signature) {
      auto& kernel = step->kernels[signature];
      if (!kernel) {
        std::vector<ops::InputInfo> infos;
        for (size_t i = 0; i < inputs.size(); ++i) {
          ops::InputInfo info;
          if (inputs[i]) {
            info.present = true;
            info.dtype = inputs[i]->dtype();
            info.shape = inputs[i]->shape();
            const Value* v = node.inputs[i];
            if (is_fixed(*v)) info.constant = &*v->data;
          }
          infos.push_back(std::move(info));
        }
        try {
          kernel = step->def->kernel(node, infos);
        } catch (const dnnl::error& e) {
          throw BackendError(node.describe() + ": oneDNN cannot build a kernel: " + e.what());
        }
      }
      step->last = kernel.get();
      step->last_signature = std::move(signature);
    }
    outputs.assign(step->outputs.size(), Tensor());
    ops::KernelContext ctx(node, inputs, outputs, pool_, rng_);
    const auto start = profile_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    try {
      step->last->run(ctx);
    } catch (const dnnl::error& e) {
      throw BackendError(node.describe() + ": oneDNN failed: " + e.what());
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw BackendError(node.describe() + ": " + e.what());
    }
    if (profile_) {
      auto& entry = op_time_[node.domain.empty() ? node.op_type : node.domain + "." + node.op_type];
      entry.first += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      ++entry.second;
    }
    for (size_t i = 0; i < step->outputs.size(); ++i) {
      if (step->outputs[i] < 0) continue;
      if (!outputs[i].defined())
        throw BackendError(node.describe() + ": kernel produced no value for output " + std::to_string(i));
      slots[step->outputs[i]] = std::move(outputs[i]);
    }
    for (int s : step->release) slots[s] = Tensor();
  }
  std::vector<Tensor> result;
  for (int s : fetch_slots_) result.push_back(slots[s]);
  return result;
}

}  // namespace onnxtrain
