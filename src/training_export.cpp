// TrainingSession::export_training_model: the inference model plus a TrainingInfoProto
// holding the training algorithm, and the way back (options and state from such a file).
#include <onnx/onnx_pb.h>

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "graph/tensor_proto.h"
#include "graph/training_info.h"
#include "graph/exporter.h"
#include "src/model_file.h"
#include "src/training_session_impl.h"

namespace onnxtrain {

namespace {

constexpr const char* kMetadataKey = "onnxtrain.training";
constexpr const char* kFormat = "onnxtrain-training-1";

// A custom loss given as bytes (LossOptions::model_bytes) is not stored: such options are
// not serialisable and say so.
nlohmann::json options_to_json(const TrainingOptions& o) {
  if (!o.loss.model_bytes.empty())
    throw DataError("training options with a custom loss given as bytes cannot be stored; give its file (model_path)");
  const auto& opt = o.optimizer;
  nlohmann::json groups = nlohmann::json::array();
  for (const auto& g : opt.groups) {
    nlohmann::json j{{"pattern", g.pattern}};
    if (g.lr) j["lr"] = *g.lr;
    if (g.weight_decay) j["weight_decay"] = *g.weight_decay;
    groups.push_back(j);
  }
  nlohmann::json optimizer{{"kind", opt.kind}, {"lr", opt.lr}, {"momentum", opt.momentum}, {"dampening", opt.dampening},
                           {"nesterov", opt.nesterov}, {"weight_decay", opt.weight_decay}, {"beta1", opt.beta1},
                           {"beta2", opt.beta2}, {"amsgrad", opt.amsgrad}, {"alpha", opt.alpha},
                           {"centered", opt.centered}, {"lr_decay", opt.lr_decay},
                           {"initial_accumulator_value", opt.initial_accumulator_value}, {"groups", groups},
                           {"no_decay_on_bias_and_norm", opt.no_decay_on_bias_and_norm}};
  if (opt.eps) optimizer["eps"] = *opt.eps;
  return {{"format", kFormat},
          {"loss", {{"kind", o.loss.kind}, {"output", o.loss.output}, {"target", o.loss.target},
                    {"reduction", o.loss.reduction}, {"ignore_index", o.loss.ignore_index},
                    {"class_weights", o.loss.class_weights}, {"label_smoothing", o.loss.label_smoothing},
                    {"beta", o.loss.beta}, {"delta", o.loss.delta}, {"pos_weight", o.loss.pos_weight},
                    {"log_target", o.loss.log_target}, {"model_path", o.loss.model_path}}},
          {"optimizer", optimizer},
          {"schedule", format_schedule(o.schedule)},
          {"total_steps", o.total_steps},
          {"clip_grad_norm", o.clip_grad_norm},
          {"bn_running_var", o.bn_running_var},
          {"batchnorm", o.batchnorm},
          {"accumulate", o.accumulate},
          {"trainable", o.trainable},
          {"freeze", o.freeze},
          {"seed", o.seed}};
}

TrainingOptions options_from_json(const nlohmann::json& j) {
  TrainingOptions o;
  const auto& loss = j.at("loss");
  o.loss.kind = loss.at("kind");
  o.loss.output = loss.at("output");
  o.loss.target = loss.at("target");
  o.loss.reduction = loss.at("reduction");
  o.loss.ignore_index = loss.at("ignore_index");
  o.loss.class_weights = loss.at("class_weights").get<std::vector<double>>();
  o.loss.label_smoothing = loss.at("label_smoothing");
  o.loss.beta = loss.at("beta");
  o.loss.delta = loss.at("delta");
  o.loss.pos_weight = loss.at("pos_weight").get<std::vector<double>>();
  o.loss.log_target = loss.at("log_target");
  o.loss.model_path = loss.at("model_path");
  const auto& opt = j.at("optimizer");
  auto& p = o.optimizer;
  p.kind = opt.at("kind");
  p.lr = opt.at("lr");
  p.momentum = opt.at("momentum");
  p.dampening = opt.at("dampening");
  p.nesterov = opt.at("nesterov");
  p.weight_decay = opt.at("weight_decay");
  p.beta1 = opt.at("beta1");
  p.beta2 = opt.at("beta2");
  p.amsgrad = opt.at("amsgrad");
  p.alpha = opt.at("alpha");
  p.centered = opt.at("centered");
  p.lr_decay = opt.at("lr_decay");
  p.initial_accumulator_value = opt.at("initial_accumulator_value");
  p.no_decay_on_bias_and_norm = opt.at("no_decay_on_bias_and_norm");
  if (opt.contains("eps")) p.eps = opt.at("eps").get<double>();
  for (const auto& g : opt.at("groups")) {
    ParamGroup group{g.at("pattern")};
    if (g.contains("lr")) group.lr = g.at("lr").get<double>();
    if (g.contains("weight_decay")) group.weight_decay = g.at("weight_decay").get<double>();
    p.groups.push_back(group);
  }
  o.schedule = parse_schedule(j.at("schedule"));
  o.total_steps = j.at("total_steps");
  o.clip_grad_norm = j.at("clip_grad_norm");
  o.bn_running_var = j.at("bn_running_var");
  o.batchnorm = j.at("batchnorm");
  o.accumulate = j.at("accumulate");
  o.trainable = j.at("trainable");
  o.freeze = j.at("freeze");
  o.seed = j.at("seed");
  return o;
}

void put_initializer(onnx::GraphProto& g, const std::string& name, const Tensor& value) {
  onnx::TensorProto* target = nullptr;
  for (auto& t : *g.mutable_initializer())
    if (t.name() == name) target = &t;
  if (!target) target = g.add_initializer();
  graph::tensor_to_proto(value, *target);
  target->set_name(name);
}

}  // namespace

std::string format_training_options(const TrainingOptions& options) { return options_to_json(options).dump(2); }

TrainingOptions parse_training_options(const std::string& json) {
  try {
    return options_from_json(nlohmann::json::parse(json));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw DataError(std::string("invalid training options: ") + e.what());
  }
}

std::optional<TrainingOptions> training_options_of(const Model& model) {
  auto metadata = model.metadata();
  auto it = metadata.find(kMetadataKey);
  if (it == metadata.end()) return std::nullopt;
  try {
    auto j = nlohmann::json::parse(it->second);
    if (j.at("format") != kFormat) throw DataError("unsupported format " + j.at("format").dump());
    return options_from_json(j);
  } catch (const std::exception& e) {
    throw ModelError("metadata '" + std::string(kMetadataKey) + "' of the model is not valid: " + e.what());
  }
}

void TrainingSession::Impl::restore_from_model() {
  auto metadata = model->metadata();
  auto it = metadata.find(kMetadataKey);
  resume_from_model = it != metadata.end();
  if (!resume_from_model) return;
  if (const graph::Value* v = graph->find_value(kStepInitializer); v && v->data) step = v->data->as_int64().at(0);
  auto j = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("rng")) {
    std::istringstream state(j["rng"].get<std::string>());
    if (!(state >> executor->rng())) throw ModelError("metadata '" + std::string(kMetadataKey) + "': corrupt random generator state");
  }
  spdlog::debug("continuing the training stored in the model from step {}", step);
}

void TrainingSession::export_eval_model(const std::string& path) const {
  std::string loss;
  auto g = impl_->build_eval_graph(loss);
  onnx::ModelProto proto;
  graph::export_graph(*g, proto);
  save_model_file(proto, path);
}

void TrainingSession::export_training_model(const std::string& path) const {
  const Impl& s = *impl_;
  onnx::ModelProto proto;
  const std::string bytes = s.model->serialize();
  if (!proto.ParseFromString(bytes)) throw ModelError("cannot re-read the model being exported");

  // The algorithm: the training graph (model, loss, backward) followed by the update nodes
  // of the optimizer stage, fed the scheduled learning rate and step + 1.
  auto a = s.graph->clone();
  a->outputs = {&a->value(s.loss)};
  graph::Value* lr = a->add_value("learning_rate", DType::Double, graph::Dims{});
  lr->kind = graph::ValueKind::Input;
  a->inputs.push_back(lr);
  graph::Value* step = a->add_constant(kStepInitializer, Tensor::scalar<int64_t>(s.step));
  step->kind = graph::ValueKind::Initializer;
  graph::Value* one = a->add_constant(a->unique_name("onnxtrain.one"), Tensor::scalar<int64_t>(1));
  graph::Value* next_step = a->add_value(std::string(kStepInitializer) + ".next", DType::Int64, graph::Dims{});
  a->add_node("Add", {step, one}, {next_step}, graph::kOnnxDomain, "optimizer/next_step");

  std::map<std::string, graph::Value*> mapped{{"step", next_step}};
  for (size_t i = 0; i < s.trainable.size(); ++i) {
    mapped[s.trainable[i]] = &a->value(s.trainable[i]);
    mapped[s.trainable[i] + "_grad"] = &a->value(s.gradient_values[i]);
  }
  std::vector<std::pair<std::string, std::string>> bindings;
  for (size_t b = 0; b < s.buckets.size(); ++b) {
    graph::Value* bucket_lr = lr;
    if (s.buckets[b].lr_ratio != 1) {
      graph::Value* ratio = a->add_constant(a->unique_name("optimizer/lr_ratio"), Tensor::scalar<double>(s.buckets[b].lr_ratio));
      bucket_lr = a->add_value(a->unique_name("optimizer/lr"), DType::Double, graph::Dims{});
      a->add_node("Mul", {lr, ratio}, {bucket_lr}, graph::kOnnxDomain, a->unique_name("optimizer/scale_lr"));
    }
    mapped[s.buckets[b].lr_input] = bucket_lr;
  }
  for (const auto& node : s.optimizer_graph->nodes()) {
    std::vector<graph::Value*> inputs, outputs;
    for (graph::Value* in : node->inputs) {
      auto it = mapped.find(in->name);
      if (it != mapped.end()) {
        inputs.push_back(it->second);
        continue;
      }
      // Optimizer state: becomes an initializer of the main graph, read by the algorithm.
      graph::Value* state = a->add_constant(in->name, *in->data);
      state->kind = graph::ValueKind::Initializer;
      put_initializer(*proto.mutable_graph(), in->name, *in->data);
      inputs.push_back(state);
    }
    for (const graph::Value* out : node->outputs) {
      // "<name>.updated" replaces "<name>" and has its type.
      const graph::Value& source = a->value(out->name.substr(0, out->name.size() - std::string(".updated").size()));
      outputs.push_back(a->add_value(out->name, source.dtype, source.dims));
    }
    graph::Node* copy = a->add_node(node->op_type, inputs, outputs, node->domain, node->name);
    copy->attributes = node->attributes;
    copy->opset = node->opset;
    for (graph::Value* out : outputs) {
      a->outputs.push_back(out);
      bindings.emplace_back(out->name.substr(0, out->name.size() - std::string(".updated").size()), out->name);
    }
  }
  a->outputs.push_back(next_step);
  bindings.emplace_back(kStepInitializer, next_step->name);
  put_initializer(*proto.mutable_graph(), kStepInitializer, Tensor::scalar<int64_t>(s.step));
  for (const auto& rs : s.running_stats) {
    graph::Value& out = a->value(rs.output);
    const graph::Value& stat = a->value(rs.initializer);
    out.dtype = stat.dtype;
    out.dims = stat.dims;
    a->outputs.push_back(&out);
    bindings.emplace_back(rs.initializer, rs.output);
  }
  graph::set_training_info(proto, *a, bindings);

  auto* meta = proto.mutable_metadata_props();
  for (int i = meta->size() - 1; i >= 0; --i)
    if (meta->Get(i).key() == kMetadataKey) meta->DeleteSubrange(i, 1);
  auto* entry = proto.add_metadata_props();
  entry->set_key(kMetadataKey);
  nlohmann::json j = options_to_json(s.options);
  std::ostringstream rng;
  rng << s.executor->rng();
  j["rng"] = rng.str();
  entry->set_value(j.dump());
  save_model_file(proto, path);
}

}  // namespace onnxtrain
