#include "graph/passes/optimizer.h"

#include <cmath>
#include <map>
#include <optional>
#include <regex>

#include "onnxtrain/option_choices.h"

namespace onnxtrain::graph {

namespace {

struct OptimizerSpec {
  const char* op;
  std::vector<std::string> states;
};

OptimizerSpec optimizer_spec(const OptimizerOptions& o, std::map<std::string, AttributeValue>& attrs) {
  auto f = [](double v) { return AttributeValue(static_cast<float>(v)); };
  auto b = [](bool v) { return AttributeValue(static_cast<int64_t>(v)); };
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

// The (lr, weight decay) setting of a parameter: its group's, or the defaults. Each
// distinct setting becomes one update node.
struct Setting {
  double lr, weight_decay;
  auto operator<=>(const Setting&) const = default;
};

std::map<Setting, std::vector<size_t>> group_by_setting(const Graph& graph, const std::vector<std::string>& parameters,
                                                       const OptimizerOptions& o) {
  std::vector<std::regex> patterns;
  for (const ParamGroup& group : o.groups) {
    try {
      patterns.emplace_back(group.pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      throw DataError("invalid parameter group pattern '" + group.pattern + "': " + e.what());
    }
  }
  std::map<Setting, std::vector<size_t>> by_setting;
  for (size_t p = 0; p < parameters.size(); ++p) {
    const std::string& name = parameters[p];
    Setting s{o.lr, o.weight_decay};
    bool explicit_decay = false;
    for (size_t i = 0; i < o.groups.size(); ++i)
      if (std::regex_search(name, patterns[i])) {
        if (o.groups[i].lr) s.lr = *o.groups[i].lr;
        if (o.groups[i].weight_decay) s.weight_decay = *o.groups[i].weight_decay;
        explicit_decay = o.groups[i].weight_decay.has_value();
        break;
      }
    if (o.no_decay_on_bias_and_norm && !explicit_decay && graph.value(name).data->rank() <= 1) s.weight_decay = 0;
    if (o.lr == 0 && s.lr != 0)
      throw DataError("a parameter group sets lr " + std::to_string(s.lr) + " while the base lr is 0");
    by_setting[s].push_back(p);
  }
  return by_setting;
}

Value* scalar_input(Graph& g, const std::string& name, DType dtype) {
  if (g.find_value(name)) throw ModelError("the model already has a value named '" + name + "'");
  Value* v = g.add_value(name, dtype, Dims{});
  v->kind = ValueKind::Input;
  g.inputs.push_back(v);
  return v;
}

// The step counter. A training model being continued stores it as an initializer: it
// becomes the input again (the session reads its value first).
Value* step_input(Graph& g, bool reuse) {
  Value* v = g.find_value(kStepInput);
  if (!v || !reuse) return scalar_input(g, kStepInput, DType::Int64);
  if (v->kind != ValueKind::Initializer || v->dtype != DType::Int64)
    throw ModelError("'" + std::string(kStepInput) + "' in the model is not an int64 initializer");
  v->kind = ValueKind::Input;
  v->data.reset();
  g.inputs.push_back(v);
  return v;
}

Value* state_initializer(Graph& g, const std::string& name, const Tensor& parameter, bool reuse) {
  if (Value* saved = g.find_value(name)) {
    if (!reuse || saved->kind != ValueKind::Initializer)
      throw ModelError("the model already has a value named '" + name + "', the name of an optimizer state");
    if (saved->data->dtype() != parameter.dtype() || saved->data->shape() != parameter.shape())
      throw ModelError("optimizer state '" + name + "' in the model does not match its parameter");
    return saved;
  }
  Value* v = g.add_constant(name, Tensor(parameter.dtype(), parameter.shape()));
  v->kind = ValueKind::Initializer;
  return v;
}

}  // namespace

OptimizerStage append_optimizer_stage(Graph& g, const std::vector<std::string>& parameters,
                                      const std::vector<std::string>& gradients, const OptimizerStageOptions& options) {
  const OptimizerOptions& o = options.optimizer;
  if (!(o.lr >= 0) || !std::isfinite(o.lr)) throw DataError("the learning rate must be >= 0, got " + std::to_string(o.lr));
  if (g.opsets.find(kTrainingDomain) == g.opsets.end()) g.opsets[kTrainingDomain] = 1;
  OptimizerStage stage;
  Value* lr = scalar_input(g, kLearningRateInput, DType::Double);
  Value* step = step_input(g, options.reuse_state);
  Value* one = g.add_constant(g.unique_name("onnxtrain.one"), Tensor::scalar<int64_t>(1));
  Value* next_step = g.add_value(std::string(kStepInput) + ".next", DType::Int64, Dims{});
  g.add_node("Add", {step, one}, {next_step}, kOnnxDomain, "optimizer/next_step");
  stage.learning_rate = lr->name;
  stage.step = step->name;
  stage.next_step = next_step->name;
  stage.update_binding.emplace_back(step->name, next_step->name);

  std::vector<Value*> grads;
  for (const auto& name : gradients) grads.push_back(&g.value(name));
  if (options.clip_grad_norm > 0) {
    std::vector<Value*> clipped;
    for (size_t i = 0; i < grads.size(); ++i)
      clipped.push_back(g.add_value(g.unique_name(parameters[i] + "_grad.clipped"), grads[i]->dtype, grads[i]->dims));
    Value* norm = g.add_value(g.unique_name("optimizer/grad_norm"), DType::Double, Dims{});
    std::vector<Value*> outputs = clipped;
    outputs.push_back(norm);
    Node* clip = g.add_node("ClipGradNorm", grads, outputs, kTrainingDomain, "optimizer/clip_grad_norm");
    clip->attributes["max_norm"] = static_cast<float>(options.clip_grad_norm);
    grads = clipped;
    stage.grad_norm = norm->name;
  }

  int node_index = 0;
  for (const auto& [setting, members] : group_by_setting(g, parameters, o)) {
    OptimizerOptions group_options = o;
    group_options.weight_decay = setting.weight_decay;
    std::map<std::string, AttributeValue> attrs;
    const OptimizerSpec spec = optimizer_spec(group_options, attrs);
    const std::string prefix = "optimizer/" + std::to_string(node_index++);
    Value* group_lr = lr;
    const double ratio = o.lr > 0 ? setting.lr / o.lr : 0;
    if (ratio != 1) {
      Value* r = g.add_constant(g.unique_name(prefix + "/lr_ratio"), Tensor::scalar<double>(ratio));
      group_lr = g.add_value(g.unique_name(prefix + "/lr"), DType::Double, Dims{});
      g.add_node("Mul", {lr, r}, {group_lr}, kOnnxDomain, prefix + "/scale_lr");
    }
    std::vector<Value*> inputs{group_lr, next_step}, outputs;
    for (size_t p : members) inputs.push_back(&g.value(parameters[p]));
    for (size_t p : members) inputs.push_back(grads[p]);
    std::vector<std::string> replaced;
    for (size_t p : members) replaced.push_back(parameters[p]);
    for (const auto& state : spec.states)
      for (size_t p : members) {
        Value* s = state_initializer(g, parameters[p] + "." + state, *g.value(parameters[p]).data, options.reuse_state);
        inputs.push_back(s);
        replaced.push_back(s->name);
        stage.states.push_back(s->name);
      }
    for (const auto& name : replaced) {
      const Value& source = g.value(name);
      Value* out = g.add_value(name + ".updated", source.dtype, source.dims);
      outputs.push_back(out);
      stage.update_outputs.push_back(out->name);
      stage.update_binding.emplace_back(name, out->name);
    }
    Node* n = g.add_node(spec.op, inputs, outputs, kTrainingDomain, prefix);
    n->attributes = attrs;
  }
  return stage;
}

}  // namespace onnxtrain::graph
