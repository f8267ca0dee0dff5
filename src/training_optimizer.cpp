// The optimizer stage of a TrainingSession: fused in-place ai.onnxtrain update nodes, one
// per parameter group, fed the scheduled learning rate and the gradients.
#include <cmath>
#include <regex>

#include "onnxtrain/clipping.h"
#include "src/training_session_impl.h"

namespace onnxtrain {

namespace {

struct OptimizerSpec {
  const char* op;
  std::vector<std::string> states;
};

OptimizerSpec optimizer_spec(const OptimizerOptions& o, std::map<std::string, graph::AttributeValue>& attrs) {
  auto f = [](double v) { return graph::AttributeValue(static_cast<float>(v)); };
  auto b = [](bool v) { return graph::AttributeValue(static_cast<int64_t>(v)); };
  if (o.eps) attrs["eps"] = f(*o.eps);
  attrs["weight_decay"] = f(o.weight_decay);
  if (o.kind == "sgd") {
    attrs["momentum"] = f(o.momentum);
    attrs["dampening"] = f(o.dampening);
    attrs["nesterov"] = b(o.nesterov);
    attrs.erase("eps");
    if (o.momentum != 0) return {"SGD", {"momentum_buffer"}};
    return {"SGD", {}};
  }
  if (o.kind == "adam" || o.kind == "adamw") {
    attrs["beta1"] = f(o.beta1);
    attrs["beta2"] = f(o.beta2);
    attrs["amsgrad"] = b(o.amsgrad);
    std::vector<std::string> states{"exp_avg", "exp_avg_sq"};
    if (o.amsgrad) states.push_back("max_exp_avg_sq");
    return {o.kind == "adam" ? "Adam" : "AdamW", states};
  }
  if (o.kind == "adagrad") {
    attrs["lr_decay"] = f(o.lr_decay);
    attrs["initial_accumulator_value"] = f(o.initial_accumulator_value);
    return {"Adagrad", {"sum"}};
  }
  if (o.kind == "rmsprop") {
    attrs["alpha"] = f(o.alpha);
    attrs["momentum"] = f(o.momentum);
    attrs["centered"] = b(o.centered);
    std::vector<std::string> states{"square_avg"};
    if (o.centered) states.push_back("grad_avg");
    if (o.momentum > 0) states.push_back("momentum_buffer");
    return {"RMSprop", states};
  }
  kOptimizerKinds.check(o.kind);
  throw DataError("optimizer '" + o.kind + "' has no update rule");
}

// The (lr, weight decay) setting of each parameter: its group's, or the defaults.
struct Setting {
  double lr, weight_decay;
  auto operator<=>(const Setting&) const = default;
};

}  // namespace

void TrainingSession::Impl::build_optimizer() {
  const OptimizerOptions& o = options.optimizer;
  if (!(o.lr >= 0) || !std::isfinite(o.lr)) throw DataError("the learning rate must be >= 0, got " + std::to_string(o.lr));
  std::vector<std::regex> patterns;
  for (const ParamGroup& group : o.groups) {
    try {
      patterns.emplace_back(group.pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      throw DataError("invalid parameter group pattern '" + group.pattern + "': " + e.what());
    }
  }
  // Parameters in order of their setting: each distinct setting becomes one update node.
  std::map<Setting, std::vector<std::string>> by_setting;
  for (const auto& name : trainable) {
    Setting s{o.lr, o.weight_decay};
    bool explicit_decay = false;
    for (size_t i = 0; i < o.groups.size(); ++i)
      if (std::regex_search(name, patterns[i])) {
        if (o.groups[i].lr) s.lr = *o.groups[i].lr;
        if (o.groups[i].weight_decay) s.weight_decay = *o.groups[i].weight_decay;
        explicit_decay = o.groups[i].weight_decay.has_value();
        break;
      }
    if (o.no_decay_on_bias_and_norm && !explicit_decay && graph->value(name).data->rank() <= 1) s.weight_decay = 0;
    by_setting[s].push_back(name);
  }

  auto g = std::make_unique<graph::Graph>();
  g->opsets = {{"", 17}, {graph::kTrainingDomain, 1}};
  auto input = [&](const std::string& name, DType dtype, std::optional<graph::Dims> dims) {
    graph::Value* v = g->add_value(name, dtype, dims);
    v->kind = graph::ValueKind::Input;
    g->inputs.push_back(v);
    return v;
  };
  graph::Value* step_input = input("step", DType::Int64, graph::Dims{});
  std::vector<std::string> fetches;
  for (const auto& [setting, names] : by_setting) {
    OptimizerOptions group_options = o;
    group_options.weight_decay = setting.weight_decay;
    std::map<std::string, graph::AttributeValue> attrs;
    OptimizerSpec spec = optimizer_spec(group_options, attrs);
    Bucket bucket{"lr/" + std::to_string(buckets.size()), o.lr > 0 ? setting.lr / o.lr : 0};
    if (o.lr == 0 && setting.lr != 0)
      throw DataError("a parameter group sets lr " + std::to_string(setting.lr) + " while the base lr is 0");
    std::vector<graph::Value*> inputs{input(bucket.lr_input, DType::Double, graph::Dims{}), step_input};
    std::vector<graph::Value*> params, grads, outputs;
    for (const auto& name : names) {
      // Shares storage with the training graph (and the model): updates land in place.
      graph::Value* p = g->add_constant(name, *graph->value(name).data);
      p->kind = graph::ValueKind::Initializer;
      params.push_back(p);
      const graph::Value& pv = graph->value(name);
      grads.push_back(input(name + "_grad", pv.dtype, pv.dims));
    }
    inputs.insert(inputs.end(), params.begin(), params.end());
    inputs.insert(inputs.end(), grads.begin(), grads.end());
    for (const auto& state : spec.states)
      for (const auto& name : names) {
        const Tensor& p = *graph->value(name).data;
        const graph::Value* saved = resume_from_model ? graph->find_value(name + "." + state) : nullptr;
        if (saved && saved->kind == graph::ValueKind::Initializer &&
            (saved->data->dtype() != p.dtype() || saved->data->shape() != p.shape()))
          throw ModelError("optimizer state '" + saved->name + "' in the model does not match its parameter");
        graph::Value* s = g->add_constant(name + "." + state, saved && saved->kind == graph::ValueKind::Initializer
                                                                  ? *saved->data
                                                                  : Tensor(p.dtype(), p.shape()));
        s->kind = graph::ValueKind::Initializer;
        inputs.push_back(s);
      }
    for (const auto& name : names) outputs.push_back(g->add_value(name + ".updated"));
    for (const auto& state : spec.states)
      for (const auto& name : names) outputs.push_back(g->add_value(name + "." + state + ".updated"));
    graph::Node* n = g->add_node(spec.op, inputs, outputs, graph::kTrainingDomain, "optimizer/" + std::to_string(buckets.size()));
    n->attributes = attrs;
    for (auto* out : outputs) {
      fetches.push_back(out->name);
      g->outputs.push_back(out);
    }
    buckets.push_back(bucket);
  }
  optimizer_graph = std::move(g);
  optimizer = std::make_unique<Executor>(*optimizer_graph, fetches);
  schedule.emplace(options.schedule, o.lr, options.total_steps);
}

StepResult TrainingSession::Impl::apply_update(std::vector<Tensor>& gradients) {
  StepResult result;
  if (options.clip_grad_norm > 0) {
    std::vector<Tensor*> grads;
    for (Tensor& g : gradients) grads.push_back(&g);
    result.grad_norm = clip_grad_norm(grads, options.clip_grad_norm);
  }
  result.step = step + 1;
  result.lr = schedule->lr(step);
  std::unordered_map<std::string, Tensor> feeds{{"step", Tensor::scalar<int64_t>(result.step)}};
  for (const Bucket& b : buckets) feeds.emplace(b.lr_input, Tensor::scalar<double>(result.lr * b.lr_ratio));
  for (size_t i = 0; i < trainable.size(); ++i) feeds.emplace(trainable[i] + "_grad", std::move(gradients[i]));
  optimizer->run(feeds);
  step = result.step;
  return result;
}

double TrainingSession::current_lr() const { return impl_->schedule->lr(impl_->step); }

}  // namespace onnxtrain
