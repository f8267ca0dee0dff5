#include "src/executor.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_set>

#include "graph/passes/kernel_check.h"
#include "ops/dnnl_utils.h"
#include "src/anomaly.h"
#include "src/op_flops.h"

namespace onnxtrain {

using graph::Node;
using graph::Value;
using graph::ValueKind;

// A node's kernels by input signature, each with the oneDNN memory objects it binds;
// `last` short-cuts the common case of an unchanged signature.
struct Executor::NodeKernels {
  struct Entry {
    std::unique_ptr<ops::Kernel> kernel;
    ops::MemoryBindings bindings;
  };
  const ops::OpDef* def = nullptr;
  std::map<std::vector<int64_t>, Entry> by_signature;
  std::vector<int64_t> last_signature;
  Entry* last = nullptr;
};

struct Executor::Plan {
  struct Step {
    const Node* node = nullptr;
    NodeKernels* kernels = nullptr;
    std::vector<int> inputs;   // slot per input, -1 when omitted
    std::vector<int> outputs;  // slot per output, -1 when omitted
    std::vector<int> release;  // slots whose last use is this step
    std::vector<std::pair<int, size_t>> fetched;  // (output slot, fetch index) for the fetch hook
    // Kept between runs so a steady-state run reuses their capacity (no heap allocation).
    std::vector<const Tensor*> input_tensors;
    std::vector<Tensor> output_tensors;
  };
  std::vector<std::string> fetches, cuts;  // the plan's key (cuts sorted)
  std::vector<const Value*> slot_values;
  std::vector<Tensor> slots;  // values during a run; emptied (capacity kept) after it
  std::vector<std::pair<const Value*, int>> fed_slots;  // graph inputs and fed intermediates
  std::vector<int> fetch_slots;
  std::vector<Step> steps;
};

namespace {

bool is_fixed(const Value& v) {
  // Float initializers may change (training); integer ones and folded constants never do.
  return v.kind == ValueKind::Constant || (v.kind == ValueKind::Initializer && !is_floating(v.dtype));
}

bool has_signature(const std::vector<const Tensor*>& inputs, const std::vector<int64_t>& sig) {
  size_t at = 0;
  for (const Tensor* t : inputs) {
    if (!t) {
      if (at >= sig.size() || sig[at++] != -1) return false;
      continue;
    }
    if (at + 2 + t->rank() > sig.size() || sig[at] != static_cast<int64_t>(t->dtype()) ||
        sig[at + 1] != static_cast<int64_t>(t->rank()))
      return false;
    at += 2;
    for (int64_t d : t->shape())
      if (sig[at++] != d) return false;
  }
  return at == sig.size();
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

// Counts the layout conversions of one kernel run while profiling (ops::ReorderClock).
struct ReorderTiming {
  explicit ReorderTiming(bool on) : on(on) {
    if (!on) return;
    ops::ReorderClock::enabled = true;
    ops::ReorderClock::ns = 0;
  }
  ~ReorderTiming() {
    if (on) ops::ReorderClock::enabled = false;
  }
  const bool on;
};

}  // namespace

Executor::Executor(const graph::Graph& graph, ExecutorOptions options)
    : graph_(graph), rng_(options.seed), detect_anomaly_(options.detect_anomaly) {
  const char* profile = std::getenv("ONNXTRAIN_PROFILE");
  print_profile_ = profile && *profile && std::string(profile) != "0";
  profile_ = print_profile_;
  graph::require_kernels(graph, graph.name.empty() ? "graph" : "graph '" + graph.name + "'");
  for (const auto& n : graph.nodes()) {
    auto k = std::make_unique<NodeKernels>();
    k->def = ops::Registry::instance().find(n->domain, n->op_type, n->opset);
    kernels_.emplace(n.get(), std::move(k));
  }
}

Executor::Executor(const graph::Graph& graph, std::vector<std::string> fetches, ExecutorOptions options)
    : Executor(graph, options) {
  default_fetches_ = std::move(fetches);
  for (const auto& name : default_fetches_) graph.value(name);  // unknown names fail here, not at run
}

Executor::~Executor() {
  if (!print_profile_ || profile_records_.empty()) return;
  std::unordered_map<std::string, std::pair<double, int64_t>> by_op;  // ms, calls
  for (const auto& [node, p] : profile_records_) {
    auto& entry = by_op[node->domain.empty() ? node->op_type : node->domain + "." + node->op_type];
    entry.first += p.ns * 1e-6;
    entry.second += p.calls;
    if (p.reorder_ns) {
      by_op["Reorder"].first += p.reorder_ns * 1e-6;
      by_op["Reorder"].second += p.calls;
    }
  }
  std::vector<std::pair<std::string, std::pair<double, int64_t>>> rows(by_op.begin(), by_op.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  double total = 0;
  for (const auto& r : rows) total += r.second.first;
  std::fprintf(stderr, "onnxtrain profile: %.3f ms in kernels\n", total);
  for (const auto& [op, t] : rows)
    std::fprintf(stderr, "  %-40s %10.3f ms %5.1f%% %8lld calls\n", op.c_str(), t.first, 100 * t.first / total,
                 static_cast<long long>(t.second));
}

void Executor::set_profiling(bool on) {
  profile_ = on;
  if (on) profile_records_.clear();
}

Executor::Plan* Executor::find_plan(const std::unordered_map<std::string, Tensor>& feeds,
                                    const std::vector<std::string>& fetches) const {
  size_t cut_count = 0;
  for (const auto& [name, t] : feeds) {
    const Value* v = graph_.find_value(name);
    if (v && v->producer) ++cut_count;
  }
  for (const auto& [key, plan] : plans_) {
    if (plan->fetches != fetches || plan->cuts.size() != cut_count) continue;
    bool same = true;
    for (const auto& [name, t] : feeds) {
      const Value* v = graph_.find_value(name);
      if (v && v->producer && !std::binary_search(plan->cuts.begin(), plan->cuts.end(), name)) same = false;
    }
    if (same) return plan.get();
  }
  return nullptr;
}

Executor::Plan& Executor::plan_for(const std::unordered_map<std::string, Tensor>& feeds,
                                   const std::vector<std::string>& fetches) {
  // Every run looks its plan up; only a new one builds the key below.
  if (Plan* known = find_plan(feeds, fetches)) return *known;
  // Fed intermediates cut the graph; fed graph inputs are part of every plan that needs them.
  std::vector<std::string> cuts;
  for (const auto& [name, t] : feeds) {
    const Value* v = graph_.find_value(name);
    if (v && v->producer) cuts.push_back(name);
  }
  std::sort(cuts.begin(), cuts.end());
  auto& slot_plan = plans_[{fetches, cuts}];
  if (slot_plan) return *slot_plan;

  auto plan = std::make_unique<Plan>();
  plan->fetches = fetches;
  plan->cuts = cuts;
  std::unordered_map<const Value*, int> slot_of;
  auto slot = [&](const Value* v) {
    auto [it, inserted] = slot_of.try_emplace(v, static_cast<int>(plan->slot_values.size()));
    if (inserted) plan->slot_values.push_back(v);
    return it->second;
  };
  std::unordered_set<const Value*> cut;
  for (const auto& name : cuts) cut.insert(&graph_.value(name));
  // Walk back from the fetches to keep only the nodes they need.
  std::unordered_set<const Value*> needed;
  std::vector<const Value*> stack;
  for (const auto& name : fetches) stack.push_back(&graph_.value(name));
  while (!stack.empty()) {
    const Value* v = stack.back();
    stack.pop_back();
    if (!needed.insert(v).second) continue;
    if (v->producer && !cut.count(v))
      for (const Value* in : v->producer->inputs)
        if (in) stack.push_back(in);
  }
  for (const Value* in : graph_.inputs)
    if (needed.count(in)) plan->fed_slots.push_back({in, slot(in)});
  for (const Value* v : cut)
    if (needed.count(v)) plan->fed_slots.push_back({v, slot(v)});
  for (const auto& n : graph_.nodes()) {
    bool used = false;
    for (const Value* out : n->outputs) used = used || (out && needed.count(out) && !cut.count(out));
    if (!used) continue;
    Plan::Step step;
    step.node = n.get();
    step.kernels = kernels_.at(n.get()).get();
    for (const Value* in : n->inputs) step.inputs.push_back(in ? slot(in) : -1);
    // A fed output is not overwritten: its step writes a slot of its own.
    for (const Value* out : n->outputs) step.outputs.push_back(out && !cut.count(out) ? slot(out) : -1);
    plan->steps.push_back(std::move(step));
  }
  for (const auto& name : fetches) plan->fetch_slots.push_back(slot(&graph_.value(name)));
  for (auto& step : plan->steps)
    for (int out : step.outputs)
      for (size_t f = 0; f < plan->fetch_slots.size(); ++f)
        if (out >= 0 && plan->fetch_slots[f] == out) step.fetched.push_back({out, f});

  // Lifetimes: a slot is released after its last consuming step, unless it is fetched,
  // fed (the caller owns it) or a constant.
  std::vector<int> last_use(plan->slot_values.size(), -1);
  for (size_t s = 0; s < plan->steps.size(); ++s)
    for (int in : plan->steps[s].inputs)
      if (in >= 0) last_use[in] = static_cast<int>(s);
  std::unordered_set<int> keep(plan->fetch_slots.begin(), plan->fetch_slots.end());
  for (const auto& [v, s] : plan->fed_slots) keep.insert(s);
  for (size_t i = 0; i < plan->slot_values.size(); ++i) {
    if (keep.count(static_cast<int>(i)) || plan->slot_values[i]->data) continue;
    if (last_use[i] >= 0) plan->steps[last_use[i]].release.push_back(static_cast<int>(i));
  }
  // Outputs nobody reads (e.g. BatchNormalization's saved statistics) die right after their step.
  for (auto& step : plan->steps)
    for (int out : step.outputs)
      if (out >= 0 && last_use[out] < 0 && !keep.count(out)) step.release.push_back(out);
  plan->slots.resize(plan->slot_values.size());
  for (auto& step : plan->steps) {
    step.input_tensors.reserve(step.inputs.size());
    step.output_tensors.resize(step.outputs.size());
  }
  slot_plan = std::move(plan);
  return *slot_plan;
}

void Executor::check_feed(const Value& value, const Tensor& t) const {
  auto expected = [&] {
    return dtype_name(value.dtype) + (value.dims ? graph::dims_str(*value.dims) : std::string("[?]"));
  };
  const std::string what = value.kind == ValueKind::Input ? "input" : "value";
  if (value.dtype != DType::Undefined && t.dtype() != value.dtype)
    throw DataError(what + " '" + value.name + "': expected " + expected() + ", got " + dtype_name(t.dtype()) +
                    shape_str(t.shape()));
  if (!value.dims) return;
  bool ok = value.dims->size() == t.rank();
  for (size_t i = 0; ok && i < t.rank(); ++i)
    if ((*value.dims)[i].known() && (*value.dims)[i].value != t.dim(i)) ok = false;
  if (!ok) {
    const bool batch_differs = value.kind == ValueKind::Input && t.rank() > 0 && value.dims->size() == t.rank() &&
                               (*value.dims)[0].known() && (*value.dims)[0].value != t.dim(0);
    throw DataError(what + " '" + value.name + "': expected " + expected() + ", got " + dtype_name(t.dtype()) +
                    shape_str(t.shape()) + (batch_differs && !graph_.batch_note.empty() ? "; " + graph_.batch_note : ""));
  }
}

std::vector<Tensor> Executor::run(const std::unordered_map<std::string, Tensor>& feeds,
                                  const std::vector<std::string>& fetches) {
  std::vector<Tensor> result;
  run(feeds, fetches, result);
  return result;
}

void Executor::run(const std::unordered_map<std::string, Tensor>& feeds, const std::vector<std::string>& fetches,
                   std::vector<Tensor>& result) {
  Plan& plan = plan_for(feeds, fetches);
  std::vector<Tensor>& slots = plan.slots;
  // Emptied slots keep their shapes' capacity: filling them again allocates nothing.
  struct EmptyAfterRun {
    std::vector<Tensor>& slots;
    ~EmptyAfterRun() {
      for (Tensor& t : slots) t.reset();
    }
  } empty_after{slots};
  for (Tensor& t : slots) t.reset();
  for (size_t i = 0; i < plan.slot_values.size(); ++i)
    if (plan.slot_values[i]->data) slots[i] = *plan.slot_values[i]->data;
  int64_t fed_elements = 0;
  for (const auto& [value, slot] : plan.fed_slots) {
    auto it = feeds.find(value->name);
    if (it == feeds.end()) throw DataError("input '" + value->name + "' was not fed");
    check_feed(*value, it->second);
    slots[slot] = it->second;
    fed_elements += it->second.numel();
  }
  // The pool plans this run's allocations from an earlier one of the same plan and sizes.
  struct PoolRun {
    MemoryPool& pool;
    bool completed = false;
    ~PoolRun() { pool.end_run(completed); }
  } pool_run{pool_};
  pool_.begin_run(&plan, fed_elements);

  for (auto& step : plan.steps) {
    const Node& node = *step.node;
    NodeKernels& k = *step.kernels;
    std::vector<const Tensor*>& inputs = step.input_tensors;
    std::vector<Tensor>& outputs = step.output_tensors;
    inputs.clear();
    for (int s : step.inputs) inputs.push_back(s >= 0 ? &slots[s] : nullptr);
    if (!k.last || !has_signature(inputs, k.last_signature)) {
      auto signature = signature_of(inputs);
      auto& entry = k.by_signature[signature];
      if (!entry.kernel) {
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
          entry.kernel = k.def->kernel(node, infos);
        } catch (const dnnl::error& e) {
          throw BackendError(node.describe() + ": oneDNN cannot build a kernel: " + e.what());
        }
      }
      k.last = &entry;
      k.last_signature = std::move(signature);
    }
    for (Tensor& t : outputs) t.reset();
    ops::scratch_arena().reset();  // the previous node's converted layouts are dead
    ops::KernelContext ctx(node, inputs, outputs, pool_, rng_);
    ctx.set_collective(collective_);
    const auto start = profile_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    ReorderTiming reorders(profile_);
    try {
      ops::MemoryBindings::Scope bindings(k.last->bindings);
      k.last->kernel->run(ctx);
    } catch (const dnnl::error& e) {
      throw BackendError(node.describe() + ": oneDNN failed: " + e.what());
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw BackendError(node.describe() + ": " + e.what());
    }
    if (profile_) {
      const int64_t ns =
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
      NodeProfile& p = profile_records_[&node];
      p.ns += ns - ops::ReorderClock::ns;
      p.reorder_ns += ops::ReorderClock::ns;
      ++p.calls;
      p.flops += forward_flops(node, inputs, outputs);
    }
    for (size_t i = 0; i < step.outputs.size(); ++i) {
      if (step.outputs[i] < 0) continue;
      if (!outputs[i].defined())
        throw BackendError(node.describe() + ": kernel produced no value for output " + std::to_string(i));
      if (detect_anomaly_) check_finite(node, i, outputs[i], inputs);
      // A swap keeps both objects' shape capacity; the slot's old (empty) tensor comes back
      // to the step for the next run.
      std::swap(slots[step.outputs[i]], outputs[i]);
      outputs[i].reset();
    }
    for (Tensor& t : outputs) t.reset();  // outputs the plan does not keep
    if (fetch_hook_)
      for (const auto& [slot, f] : step.fetched) fetch_hook_(f, slots[slot]);
    for (int s : step.release) slots[s].reset();
  }
  result.resize(plan.fetch_slots.size());
  for (size_t i = 0; i < plan.fetch_slots.size(); ++i) result[i] = slots[plan.fetch_slots[i]];
  pool_run.completed = true;
}

}  // namespace onnxtrain
