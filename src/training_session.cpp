#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <regex>
#include <set>
#include <sstream>

#include "graph/autodiff.h"
#include "graph/exporter.h"
#include "graph/loss.h"
#include "onnxtrain/clipping.h"
#include "onnxtrain/npy.h"
#include "onnxtrain/training.h"
#include "src/executor.h"

namespace onnxtrain {

struct TrainingSession::Impl {
  Model* model = nullptr;
  TrainingOptions options;
  std::unique_ptr<graph::Graph> graph;  // model + loss + backward
  std::string loss;
  std::vector<std::string> trainable, gradient_values;
  int64_t trainable_elements = 0;
  size_t backward_nodes = 0;
  std::unique_ptr<Executor> executor;

  // BatchNormalization running statistics: graph output -> the initializer it replaces.
  struct RunningStat {
    std::string output, initializer, input_shape;  // input_shape: Shape(X), for N
    double momentum = 0.9;
    bool variance = false;
  };
  std::vector<RunningStat> running_stats;
  size_t running_stat_fetch = 0;  // index of the first running-stat fetch
  void find_running_stats();
  void write_back_running_stats(const std::vector<Tensor>& values);

  // The optimizer stage: a graph of one fused ai.onnxtrain update node whose parameter
  // and state inputs share storage with the training graph's initializers, updated in place.
  std::unique_ptr<graph::Graph> optimizer_graph;
  std::unique_ptr<Executor> optimizer;
  std::vector<std::string> optimizer_fetches;
  std::optional<LrSchedule> schedule;
  int64_t step = 0;

  void build_optimizer();
};

namespace {

struct OptimizerSpec {
  const char* op;
  std::vector<std::string> states;
  graph::Node* node = nullptr;
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
  throw DataError("unknown optimizer '" + o.kind + "' (sgd, adam, adamw, adagrad, rmsprop)");
}

}  // namespace

void TrainingSession::Impl::find_running_stats() {
  std::vector<graph::Node*> bns;
  for (const auto& n : graph->nodes())
    if (n->domain.empty() && n->op_type == "BatchNormalization") bns.push_back(n.get());
  for (graph::Node* n : bns) {
    const bool training = n->opset >= 14 ? n->attr_int("training_mode", 0) != 0 : n->outputs.size() > 1;
    if (!training || n->inputs.size() < 5) continue;
    for (int i = 1; i <= 2; ++i) {
      graph::Value* stat = n->inputs[2 + i];
      if (!stat || stat->kind != graph::ValueKind::Initializer) continue;
      // The running-stat outputs exist (training form); make them fetchable.
      if (i >= static_cast<int>(n->outputs.size()) || !n->outputs[i]) continue;
      RunningStat rs;
      rs.output = n->outputs[i]->name;
      rs.initializer = stat->name;
      rs.momentum = n->attr_float("momentum", 0.9f);
      rs.variance = i == 2;
      if (rs.variance) {
        graph::Value* shape = graph->add_value(graph->unique_name(n->name + "/input_shape"), DType::Int64);
        graph->add_node("Shape", {n->inputs[0]}, {shape}, graph::kOnnxDomain, graph->unique_name(n->name + "/shape"));
        rs.input_shape = shape->name;
      }
      running_stats.push_back(rs);
    }
  }
}

void TrainingSession::Impl::write_back_running_stats(const std::vector<Tensor>& values) {
  const bool unbiased = options.bn_running_var == "pytorch";
  size_t k = running_stat_fetch;
  for (const RunningStat& rs : running_stats) {
    const Tensor& updated = values[k++];
    Tensor& target = *graph->value(rs.initializer).data;
    if (updated.dtype() != target.dtype() || updated.numel() != target.numel())
      throw ModelError("BatchNormalization running statistic '" + rs.initializer + "' changed type or size");
    if (!rs.variance || !unbiased) {
      std::memcpy(target.raw(), updated.raw(), target.nbytes());
      if (rs.variance) ++k;
      continue;
    }
    // ONNX: new = m*old + (1-m)*var_pop. torch: new = m*old + (1-m)*var_pop*N/(N-1).
    auto shape = values[k++].as_int64();
    const int64_t channels = target.numel();
    int64_t total = 1;
    for (int64_t d : shape) total *= d;
    const double n = channels ? static_cast<double>(total) / static_cast<double>(channels) : 0;
    const double factor = n > 1 ? n / (n - 1) : 1;
    const double m = rs.momentum;
    auto blend = [&](auto* dst, const auto* src) {
      for (int64_t c = 0; c < channels; ++c) dst[c] = static_cast<std::remove_reference_t<decltype(dst[c])>>(
          m * dst[c] + (src[c] - m * dst[c]) * factor);
    };
    if (target.dtype() == DType::Double) blend(target.data<double>(), updated.data<double>());
    else blend(target.data<float>(), updated.data<float>());
  }
}

void TrainingSession::Impl::build_optimizer() {
  std::map<std::string, graph::AttributeValue> attrs;
  OptimizerSpec spec = optimizer_spec(options.optimizer, attrs);
  auto g = std::make_unique<graph::Graph>();
  g->opsets = {{"", 17}, {graph::kTrainingDomain, 1}};
  auto input = [&](const std::string& name, DType dtype) {
    graph::Value* v = g->add_value(name, dtype, graph::Dims{});
    v->kind = graph::ValueKind::Input;
    g->inputs.push_back(v);
    return v;
  };
  std::vector<graph::Value*> inputs{input("lr", DType::Double), input("step", DType::Int64)};
  std::vector<graph::Value*> params, grads, outputs;
  for (const auto& name : trainable) {
    // Shares storage with the training graph (and the model): updates land in place.
    graph::Value* p = g->add_constant(name, *graph->value(name).data);
    p->kind = graph::ValueKind::Initializer;
    params.push_back(p);
    const graph::Value& pv = graph->value(name);
    grads.push_back(g->add_value(name + "_grad", pv.dtype, pv.dims));
    grads.back()->kind = graph::ValueKind::Input;
    g->inputs.push_back(grads.back());
  }
  inputs.insert(inputs.end(), params.begin(), params.end());
  inputs.insert(inputs.end(), grads.begin(), grads.end());
  for (const auto& state : spec.states)
    for (const auto& name : trainable) {
      const Tensor& p = *graph->value(name).data;
      graph::Value* s = g->add_constant(name + "." + state, Tensor(p.dtype(), p.shape()));
      s->kind = graph::ValueKind::Initializer;
      inputs.push_back(s);
    }
  for (const auto& name : trainable) outputs.push_back(g->add_value(name + ".updated"));
  for (const auto& state : spec.states)
    for (const auto& name : trainable) outputs.push_back(g->add_value(name + "." + state + ".updated"));
  graph::Node* n = g->add_node(spec.op, inputs, outputs, graph::kTrainingDomain, "optimizer");
  n->attributes = attrs;
  for (auto* o : outputs) optimizer_fetches.push_back(o->name);
  g->outputs = outputs;
  optimizer_graph = std::move(g);
  optimizer = std::make_unique<Executor>(*optimizer_graph, optimizer_fetches);
  schedule.emplace(options.schedule, options.optimizer.lr, options.total_steps);
}

TrainingSession::TrainingSession(Model& model, TrainingOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->model = &model;
  impl_->options = options;
  set_num_threads(options.threads);
  auto g = model.graph().clone();
  const size_t nodes_before = g->nodes().size();
  graph::Value* loss = graph::attach_loss(*g, options.loss);
  impl_->loss = loss->name;
  g->outputs.push_back(loss);

  std::optional<std::regex> keep, freeze;
  try {
    if (!options.trainable.empty()) keep.emplace(options.trainable, std::regex::ECMAScript);
    if (!options.freeze.empty()) freeze.emplace(options.freeze, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw DataError(std::string("invalid parameter regex: ") + e.what());
  }
  std::vector<std::string> candidates;
  for (const graph::Value* v : g->initializers()) {
    if (!is_floating(v->dtype)) continue;
    if (keep && !std::regex_search(v->name, *keep)) continue;
    if (freeze && std::regex_search(v->name, *freeze)) continue;
    candidates.push_back(v->name);
  }
  // Parameters the loss does not reach through differentiable inputs drop out here.
  auto grads = graph::build_gradient_graph(*g, loss->name, candidates, /*warn_unreachable=*/false);
  for (const auto& name : candidates) {
    auto it = grads.gradient_of.find(name);
    if (it == grads.gradient_of.end()) continue;
    impl_->trainable.push_back(name);
    impl_->gradient_values.push_back(it->second);
    impl_->trainable_elements += g->value(name).data->numel();
  }
  if (impl_->trainable.empty())
    throw DataError("no trainable parameter reaches the loss (check the trainable/freeze patterns)");
  impl_->backward_nodes = g->nodes().size() - nodes_before;
  if (options.bn_running_var != "onnx" && options.bn_running_var != "pytorch")
    throw DataError("bn_running_var must be 'onnx' or 'pytorch', got '" + options.bn_running_var + "'");
  impl_->graph = std::move(g);
  impl_->find_running_stats();
  std::vector<std::string> fetches{loss->name};
  fetches.insert(fetches.end(), impl_->gradient_values.begin(), impl_->gradient_values.end());
  impl_->running_stat_fetch = fetches.size();
  for (const auto& rs : impl_->running_stats) {
    fetches.push_back(rs.output);
    if (!rs.input_shape.empty()) fetches.push_back(rs.input_shape);
  }
  impl_->executor = std::make_unique<Executor>(*impl_->graph, fetches, ExecutorOptions{options.seed});
  impl_->build_optimizer();
}

TrainingSession::~TrainingSession() = default;
TrainingSession::TrainingSession(TrainingSession&&) noexcept = default;

StepGradients TrainingSession::compute_gradients(const std::map<std::string, Tensor>& feeds) {
  for (const auto& [name, t] : feeds) {
    const graph::Value* v = impl_->graph->find_value(name);
    if (!v || v->kind != graph::ValueKind::Input)
      throw DataError("the training graph has no input named '" + name + "'");
  }
  std::unordered_map<std::string, Tensor> feed_map(feeds.begin(), feeds.end());
  auto values = impl_->executor->run(feed_map);
  impl_->write_back_running_stats(values);
  StepGradients out;
  out.loss = values[0].as_double().at(0);
  for (size_t i = 0; i < impl_->trainable.size(); ++i) out.gradients[impl_->trainable[i]] = std::move(values[i + 1]);
  return out;
}

void TrainingSession::export_training_graph(const std::string& path) const {
  onnx::ModelProto proto;
  graph::export_graph(*impl_->graph, proto);
  graph::save_model_file(proto, path);
}

const std::string& TrainingSession::loss_name() const { return impl_->loss; }

StepResult TrainingSession::train_step(const std::map<std::string, Tensor>& feeds) {
  StepGradients grads = compute_gradients(feeds);
  if (!std::isfinite(grads.loss))
    throw DataError("the loss is " + std::to_string(grads.loss) + " at step " + std::to_string(impl_->step + 1) +
                    "; parameters were not updated (try a lower learning rate)");
  StepResult result;
  result.loss = grads.loss;
  // Two parameters may receive one shared gradient tensor (e.g. both operands of an Add):
  // give each its own storage before anything scales or reads them in place.
  std::set<const void*> seen;
  for (auto& [name, g] : grads.gradients)
    if (!seen.insert(g.raw()).second) g = g.clone();
  if (impl_->options.clip_grad_norm > 0) result.grad_norm = clip_grad_norm(grads.gradients, impl_->options.clip_grad_norm);
  const int64_t step = impl_->step + 1;
  result.lr = impl_->schedule->lr(step - 1);
  result.step = step;
  std::unordered_map<std::string, Tensor> opt_feeds{{"lr", Tensor::scalar<double>(result.lr)},
                                                    {"step", Tensor::scalar<int64_t>(step)}};
  for (auto& [name, g] : grads.gradients) opt_feeds[name + "_grad"] = std::move(g);
  impl_->optimizer->run(opt_feeds);
  impl_->step = step;
  return result;
}

int64_t TrainingSession::step() const { return impl_->step; }

namespace {

constexpr const char* kCheckpointFormat = "onnxtrain-checkpoint-1";

Tensor text_tensor(const std::string& text) {
  Tensor t(DType::UInt8, {static_cast<int64_t>(text.size())});
  std::memcpy(t.raw(), text.data(), text.size());
  return t;
}

std::string tensor_text(const Tensor& t) {
  return std::string(static_cast<const char*>(t.raw()), static_cast<size_t>(t.numel()));
}

// What must agree between the session that saved and the one that loads.
std::string optimizer_signature(const TrainingOptions& o) {
  std::ostringstream s;
  s << o.optimizer.kind << " momentum=" << o.optimizer.momentum << " nesterov=" << o.optimizer.nesterov
    << " amsgrad=" << o.optimizer.amsgrad << " centered=" << o.optimizer.centered;
  return s.str();
}

}  // namespace

void TrainingSession::save_checkpoint(const std::string& path) const {
  std::map<std::string, Tensor> arrays;
  arrays["meta.format"] = text_tensor(kCheckpointFormat);
  arrays["meta.step"] = Tensor::scalar<int64_t>(impl_->step);
  arrays["meta.optimizer"] = text_tensor(optimizer_signature(impl_->options));
  std::ostringstream rng;
  rng << impl_->executor->rng();
  arrays["meta.rng"] = text_tensor(rng.str());
  for (const graph::Value* v : impl_->graph->initializers())
    if (is_floating(v->dtype)) arrays["init." + v->name] = *v->data;
  for (const graph::Value* v : impl_->optimizer_graph->initializers())
    if (v->name.find('.') != std::string::npos && !impl_->graph->find_value(v->name))
      arrays["optim." + v->name] = *v->data;
  write_npz(path, arrays, /*compress=*/false);
}

void TrainingSession::load_checkpoint(const std::string& path) {
  auto arrays = read_npz(path);
  auto need = [&](const std::string& key) -> const Tensor& {
    auto it = arrays.find(key);
    if (it == arrays.end()) throw DataError(path + " is not an onnxtrain checkpoint (no '" + key + "')");
    return it->second;
  };
  if (tensor_text(need("meta.format")) != kCheckpointFormat)
    throw DataError(path + ": unsupported checkpoint format '" + tensor_text(need("meta.format")) + "'");
  const std::string saved_optimizer = tensor_text(need("meta.optimizer"));
  if (saved_optimizer != optimizer_signature(impl_->options))
    throw DataError(path + " was saved with optimizer '" + saved_optimizer + "', this session uses '" +
                    optimizer_signature(impl_->options) + "'");
  // Validate everything before changing anything, so a bad file leaves the session as it was.
  std::vector<std::pair<Tensor*, const Tensor*>> copies;
  auto plan_copy = [&](graph::Graph& g, const std::string& key, const std::string& name) {
    const Tensor& src = need(key);
    Tensor& dst = *g.value(name).data;
    if (src.dtype() != dst.dtype() || src.shape() != dst.shape())
      throw DataError(path + ": '" + name + "' is " + dtype_name(src.dtype()) + shape_str(src.shape()) +
                      ", the model has " + dtype_name(dst.dtype()) + shape_str(dst.shape()));
    copies.push_back({&dst, &src});
  };
  for (graph::Value* v : impl_->graph->all_values())
    if (v->kind == graph::ValueKind::Initializer && is_floating(v->dtype)) plan_copy(*impl_->graph, "init." + v->name, v->name);
  for (graph::Value* v : impl_->optimizer_graph->all_values())
    if (v->kind == graph::ValueKind::Initializer && v->name.find('.') != std::string::npos &&
        !impl_->graph->find_value(v->name))
      plan_copy(*impl_->optimizer_graph, "optim." + v->name, v->name);
  std::istringstream rng(tensor_text(need("meta.rng")));
  std::mt19937_64 restored;
  if (!(rng >> restored)) throw DataError(path + ": corrupt random generator state");
  const int64_t step = need("meta.step").as_int64().at(0);
  for (auto& [dst, src] : copies) std::memcpy(dst->raw(), src->raw(), dst->nbytes());
  impl_->executor->rng() = restored;
  impl_->step = step;
}

const std::vector<std::string>& TrainingSession::trainable() const { return impl_->trainable; }
int64_t TrainingSession::trainable_elements() const { return impl_->trainable_elements; }
size_t TrainingSession::backward_nodes() const { return impl_->backward_nodes; }
size_t TrainingSession::peak_activation_bytes() const { return impl_->executor->pool().peak_bytes_in_use(); }

}  // namespace onnxtrain
