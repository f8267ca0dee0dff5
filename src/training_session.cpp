// TrainingSession: the training graph (model + loss + backward), forward/backward runs,
// gradient accumulation and BatchNormalization running statistics.
#include <onnx/onnx_pb.h>
#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <cstring>
#include <regex>

#include "graph/passes/autocast.h"
#include "graph/passes/autodiff.h"
#include "graph/exporter.h"
#include "graph/loss.h"
#include "graph/passes/inference_mode.h"
#include "graph/passes/running_stats.h"
#include "ops/dnnl_utils.h"
#include "ops/op_utils.h"
#include "src/model_file.h"
#include "src/training_session_impl.h"

namespace onnxtrain {

void write_back(graph::Graph& graph, const std::vector<std::pair<std::string, std::string>>& bindings,
                std::span<const Tensor> values) {
  for (size_t i = 0; i < bindings.size(); ++i) {
    const Tensor& updated = values[i];
    Tensor& target = *graph.value(bindings[i].first).data;
    if (updated.raw() == target.raw()) continue;
    if (updated.dtype() != target.dtype() || updated.numel() != target.numel())
      throw ModelError("'" + bindings[i].second + "' cannot replace '" + bindings[i].first + "': it is " +
                       dtype_name(updated.dtype()) + shape_str(updated.shape()) + ", the initializer " +
                       dtype_name(target.dtype()) + shape_str(target.shape()));
    std::memcpy(target.raw(), updated.raw(), target.nbytes());
  }
}

double first_value(const Tensor& t) {
  if (t.numel() < 1) throw DataError("expected a value, got an empty " + dtype_name(t.dtype()) + " tensor");
  switch (t.dtype()) {
    case DType::Float: return t.data<float>()[0];
    case DType::Double: return t.data<double>()[0];
    default: return t.as_double().at(0);
  }
}

namespace {

// Points `feeds` at `values` (same names: assignment keeps each entry's capacity).
template <typename Map>
void refill_feeds(std::unordered_map<std::string, Tensor>& feeds, const Map& values) {
  bool same = feeds.size() == values.size();
  if (same)
    for (const auto& [name, t] : values) {
      auto it = feeds.find(name);
      if (it == feeds.end()) {
        same = false;
        break;
      }
      it->second = t;
    }
  if (!same) feeds = std::unordered_map<std::string, Tensor>(values.begin(), values.end());
}

bool all_finite(const Tensor& t) {
  auto check = [](const auto* p, int64_t n) {
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(p[i])) return false;
    return true;
  };
  if (t.dtype() == DType::Float) return check(t.data<float>(), t.numel());
  if (t.dtype() == DType::Double) return check(t.data<double>(), t.numel());
  const std::vector<double> values = t.as_double();  // float16/bfloat16: small in practice
  return check(values.data(), static_cast<int64_t>(values.size()));
}

}  // namespace

TrainingSession::TrainingSession(Model& model, TrainingOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->model = &model;
  impl_->options = options;
  set_num_threads(options.threads);
  if (options.accumulate < 1) throw DataError("accumulate must be at least 1, got " + std::to_string(options.accumulate));
  kBnRunningVars.check(options.bn_running_var);
  kBatchNormModes.check(options.batchnorm);
  kPrecisions.check(options.precision);
  if (options.precision == "bf16") ops::require_bf16_cpu();
  kConvAlgorithms.check(options.conv_algorithm);
  auto g = model.graph().clone();
  if (options.batchnorm == "frozen") {
    int n = graph::to_inference_mode(*g, {.batchnorm = true, .dropout = false});
    spdlog::debug("batchnorm frozen: {} training-form BatchNormalization nodes use their running statistics", n);
  } else if (options.batchnorm == "train") {
    int n = graph::batchnorm_to_training_mode(*g);
    spdlog::debug("batchnorm train: {} inference-form BatchNormalization nodes switched to batch statistics", n);
  }
  const size_t nodes_before = g->nodes().size();
  std::unordered_set<const graph::Node*> model_nodes;  // mixed precision leaves the loss in float32
  for (const auto& n : g->nodes()) model_nodes.insert(n.get());
  graph::Value* loss = graph::attach_loss(*g, options.loss, model.metadata());
  impl_->loss = loss->name;
  impl_->parts = graph::loss_parts(*loss, options.loss);
  g->outputs.push_back(loss);
  for (const auto& n : g->nodes()) impl_->forward_nodes.insert(n.get());

  std::optional<std::regex> keep, freeze;
  try {
    if (!options.trainable.empty()) keep.emplace(options.trainable, std::regex::ECMAScript);
    if (!options.freeze.empty()) freeze.emplace(options.freeze, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw DataError(std::string("invalid parameter regex: ") + e.what());
  }
  std::vector<std::string> candidates, constant_buffers;
  for (const graph::Value* v : g->initializers()) {
    if (!is_floating(v->dtype)) continue;
    // A value holding inf or NaN cannot be a parameter: it is a buffer the exporter wrote
    // as an initializer (an attention mask of -inf), and an update would corrupt it.
    if (!all_finite(*v->data)) {
      constant_buffers.push_back(v->name);
      continue;
    }
    if (keep && !std::regex_search(v->name, *keep)) continue;
    if (freeze && std::regex_search(v->name, *freeze)) continue;
    candidates.push_back(v->name);
  }
  if (!constant_buffers.empty())
    spdlog::info("not trained (they hold inf or NaN, like attention masks): {}", fmt::join(constant_buffers, ", "));
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
  for (const auto& n : g->nodes())
    if (!impl_->forward_nodes.count(n.get())) impl_->backward_nodes_set.insert(n.get());
  if (options.precision == "bf16") {
    const int n = graph::mark_bf16_compute(*g, [&](const graph::Node& node) {
      return model_nodes.count(&node) || impl_->backward_nodes_set.count(&node);
    });
    spdlog::debug("precision bf16: {} Conv/ConvTranspose/MatMul/Gemm nodes and gradients compute in bfloat16", n);
  }
  if (options.conv_algorithm == "direct") {
    const int n = graph::mark_direct_conv_gradients(*g);
    spdlog::debug("conv_algorithm direct: {} ConvGrad nodes keep oneDNN's direct algorithm", n);
  }
  impl_->running_stats = graph::bind_running_statistics(*g, options.bn_running_var == "pytorch");
  impl_->graph = std::move(g);
  impl_->restore_from_model();
  impl_->stage = graph::append_optimizer_stage(
      *impl_->graph, impl_->trainable, impl_->gradient_values,
      {.optimizer = options.optimizer, .clip_grad_norm = options.clip_grad_norm, .reuse_state = impl_->resume_from_model});
  impl_->schedule.emplace(options.schedule, options.optimizer.lr, options.total_steps);

  auto& s = *impl_;
  s.backward_fetches = {loss->name};
  s.backward_fetches.insert(s.backward_fetches.end(), s.gradient_values.begin(), s.gradient_values.end());
  for (const auto& [stat, value] : s.running_stats) s.backward_fetches.push_back(value);
  if (!s.parts.value.empty()) s.backward_fetches.push_back(s.parts.value);
  if (!s.stage.grad_norm.empty()) s.update_fetches.push_back(s.stage.grad_norm);
  // The session counts steps itself; parameters and state are bound to their new values.
  for (const auto& binding : s.stage.update_binding)
    if (binding.first != s.stage.step) {
      s.update_binding.push_back(binding);
      s.update_fetches.push_back(binding.second);
    }
  s.executor = std::make_unique<Executor>(*s.graph, ExecutorOptions{.seed = options.seed, .detect_anomaly = options.detect_anomaly});
  s.restore_rng_from_model();
}

TrainingSession::~TrainingSession() = default;
TrainingSession::TrainingSession(TrainingSession&&) noexcept = default;

std::vector<std::string> TrainingSession::input_names() const {
  std::vector<std::string> names;
  for (const graph::Value* v : impl_->graph->inputs)
    if (v && v->name != impl_->stage.learning_rate && v->name != impl_->stage.step) names.push_back(v->name);
  return names;
}

std::vector<std::string> TrainingSession::loss_part_names() const { return impl_->parts.names; }

double TrainingSession::Impl::run_backward(const std::map<std::string, Tensor>& feeds, std::vector<Tensor>& gradients) {
  for (const auto& [name, t] : feeds) {
    const graph::Value* v = graph->find_value(name);
    if (!v || v->kind != graph::ValueKind::Input || name == stage.learning_rate || name == stage.step)
      throw DataError("the training graph has no input named '" + name + "'");
  }
  refill_feeds(backward_feeds, feeds);
  std::vector<Tensor>& values = backward_values;
  executor->run(backward_feeds, backward_fetches, values);
  for (auto& [name, t] : backward_feeds) t.reset();  // the caller's tensors are not held
  const bool has_parts = !parts.value.empty();
  last_parts = has_parts ? named_loss_parts(parts, values.back()) : decltype(last_parts){};
  write_back(*graph, running_stats,
             std::span<const Tensor>(values).subspan(1 + trainable.size(),
                                                     values.size() - 1 - trainable.size() - (has_parts ? 1 : 0)));
  gradients.resize(trainable.size());
  // Two parameters may receive one shared gradient tensor (e.g. both operands of an Add):
  // give each its own storage before anything scales or updates them in place.
  for (size_t i = 0; i < trainable.size(); ++i) {
    const Tensor& g = values[i + 1];
    bool shared = false;
    for (size_t j = 0; j < i && !shared; ++j) shared = gradients[j].raw() == g.raw();
    if (shared) gradients[i] = g.clone();
    else gradients[i] = g;  // assignment (not a move) keeps both tensors' capacity
  }
  const double loss = first_value(values[0]);
  for (Tensor& t : values) t.reset();
  return loss;
}

StepGradients TrainingSession::compute_gradients(const std::map<std::string, Tensor>& feeds) {
  std::vector<Tensor> gradients;
  StepGradients out;
  out.loss = impl_->run_backward(feeds, gradients);
  for (size_t i = 0; i < impl_->trainable.size(); ++i) out.gradients[impl_->trainable[i]] = std::move(gradients[i]);
  return out;
}

namespace {


void refuse_non_finite(double loss, int64_t step) {
  if (!std::isfinite(loss))
    throw NonFiniteLoss("the loss is " + std::to_string(loss) + " at step " + std::to_string(step) +
                    "; parameters were not updated (try a lower learning rate)");
}

// dst += w * src
void add_scaled(Tensor& dst, const Tensor& src, double w) {
  auto run = [&](auto* d, const auto* s) {
    using T = std::remove_reference_t<decltype(*d)>;
    const T wt = static_cast<T>(w);
    ops::parallel_for(dst.numel(), [&](int64_t i) { d[i] += wt * s[i]; });
  };
  if (dst.dtype() == DType::Double) run(dst.data<double>(), src.data<double>());
  else if (dst.dtype() == DType::Float) run(dst.data<float>(), src.data<float>());
  else throw DataError("gradient accumulation supports float and double parameters, not " + dtype_name(dst.dtype()));
}

void scale(Tensor& t, double w) {
  auto run = [&](auto* d) {
    using T = std::remove_reference_t<decltype(*d)>;
    const T wt = static_cast<T>(w);
    ops::parallel_for(t.numel(), [&](int64_t i) { d[i] *= wt; });
  };
  if (t.dtype() == DType::Double) run(t.data<double>());
  else if (t.dtype() == DType::Float) run(t.data<float>());
  else throw DataError("gradient accumulation supports float and double parameters, not " + dtype_name(t.dtype()));
}

}  // namespace

// A mean-reduced loss of one batch of n samples weighs n; k micro-batches then average to
// the gradient of their union. A summed loss adds up as it is.
double TrainingSession::Impl::batch_weight(const std::map<std::string, Tensor>& feeds) const {
  if (options.loss.reduction == "sum") return 1;
  auto it = feeds.find(graph::loss_target(options.loss));
  if (it == feeds.end()) it = feeds.begin();
  if (it == feeds.end() || it->second.rank() == 0) return 1;
  return static_cast<double>(std::max<int64_t>(it->second.dim(0), 1));
}

double TrainingSession::accumulate_gradients(const std::map<std::string, Tensor>& feeds) {
  Impl& s = *impl_;
  std::vector<Tensor> gradients;
  const double loss = s.run_backward(feeds, gradients);
  if (!s.finite_everywhere(loss)) {
    lazy_reset_grad();
    refuse_non_finite(loss, s.step + 1);
    throw NonFiniteLoss(non_finite_elsewhere(s.step + 1));
  }
  const double w = s.batch_weight(feeds);
  if (s.pending == 0) {
    s.accumulated = std::move(gradients);
    if (w != 1)
      for (Tensor& g : s.accumulated) scale(g, w);
  } else {
    for (size_t i = 0; i < gradients.size(); ++i) add_scaled(s.accumulated[i], gradients[i], w);
  }
  ++s.pending;
  s.pending_weight += w;
  return loss;
}

StepResult TrainingSession::optimizer_step() {
  Impl& s = *impl_;
  if (s.pending == 0) throw DataError("optimizer_step: no gradients were accumulated since the last step");
  if (s.distributed()) s.allreduce_accumulated();
  const double total = s.options.loss.reduction == "sum" ? 1.0 : s.pending_weight;
  if (total != 1)
    for (Tensor& g : s.accumulated) scale(g, 1.0 / total);
  std::vector<Tensor> gradients = std::move(s.accumulated);
  lazy_reset_grad();
  return s.apply_update(gradients);
}

void TrainingSession::lazy_reset_grad() {
  impl_->accumulated.clear();
  impl_->pending = 0;
  impl_->pending_weight = 0;
}

int TrainingSession::pending_micro_batches() const { return impl_->pending; }

StepResult TrainingSession::train_step(const std::map<std::string, Tensor>& feeds) {
  Impl& s = *impl_;
  if (s.options.accumulate == 1 && s.pending == 0) {
    // No accumulation: the gradients go to the optimizer as computed.
    std::vector<Tensor>& gradients = s.step_gradients;
    const double loss = s.distributed() ? s.run_backward_allreduced(feeds, gradients) : s.run_backward(feeds, gradients);
    refuse_non_finite(loss, s.step + 1);
    StepResult r = s.apply_update(gradients);
    r.loss = loss;
    r.loss_parts = s.last_parts;
    return r;
  }
  const double loss = accumulate_gradients(feeds);
  if (s.pending < s.options.accumulate) {
    StepResult r;
    r.loss = loss;
    r.loss_parts = s.last_parts;
    r.updated = false;
    r.step = s.step;
    r.lr = current_lr();
    return r;
  }
  StepResult r = optimizer_step();
  r.loss = loss;
  r.loss_parts = s.last_parts;
  return r;
}

int64_t TrainingSession::step() const { return impl_->step; }

void TrainingSession::export_training_graph(const std::string& path) const {
  // Model, loss and backward (the graph's outputs): the graph without its update stage.
  auto g = impl_->graph->clone();
  g->prune_to_outputs();
  onnx::ModelProto proto;
  graph::export_graph(*g, proto);
  save_model_file(proto, path);
}

std::vector<std::pair<std::string, double>> named_loss_parts(const graph::LossParts& parts, const Tensor& values) {
  const std::vector<double> v = values.as_double();
  if (v.size() != parts.names.size())
    throw ModelError("the loss parts '" + parts.value + "' hold " + std::to_string(v.size()) + " values for " +
                     std::to_string(parts.names.size()) + " names");
  std::vector<std::pair<std::string, double>> out;
  for (size_t i = 0; i < v.size(); ++i) out.emplace_back(parts.names[i], v[i]);
  return out;
}

const std::string& TrainingSession::loss_name() const { return impl_->loss; }
const std::vector<std::string>& TrainingSession::trainable() const { return impl_->trainable; }
int64_t TrainingSession::trainable_elements() const { return impl_->trainable_elements; }
size_t TrainingSession::backward_nodes() const { return impl_->backward_nodes; }
size_t TrainingSession::peak_activation_bytes() const { return impl_->executor->pool().peak_bytes_in_use(); }

}  // namespace onnxtrain
