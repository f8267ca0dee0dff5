// TrainingSession::export_training_model: the inference model plus a TrainingInfoProto
// holding the training algorithm, and the way back (options and state from such a file).
#include <onnx/onnx_pb.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "graph/tensor_proto.h"
#include "graph/training_info.h"
#include "graph/exporter.h"
#include "src/model_file.h"
#include "src/training_options_json.h"
#include "src/training_session_impl.h"

namespace onnxtrain {

namespace {

constexpr const char* kMetadataKey = "onnxtrain.training";
constexpr const char* kFormat = kTrainingOptionsFormat;

void put_initializer(onnx::GraphProto& g, const std::string& name, const Tensor& value) {
  onnx::TensorProto* target = nullptr;
  for (auto& t : *g.mutable_initializer())
    if (t.name() == name) target = &t;
  if (!target) target = g.add_initializer();
  graph::tensor_to_proto(value, *target);
  target->set_name(name);
}

}  // namespace

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

std::optional<int64_t> training_step_of(const Model& model) {
  const auto names = model.initializer_names();
  if (std::find(names.begin(), names.end(), graph::kStepInput) == names.end()) return std::nullopt;
  return model.initializer(graph::kStepInput).as_int64().at(0);
}

void TrainingSession::Impl::restore_from_model() {
  auto metadata = model->metadata();
  resume_from_model = metadata.count(kMetadataKey) != 0;
  if (!resume_from_model) return;
  if (const graph::Value* v = graph->find_value(graph::kStepInput); v && v->data) step = v->data->as_int64().at(0);
  spdlog::debug("continuing the training stored in the model from step {}", step);
}

void TrainingSession::Impl::restore_rng_from_model() {
  if (!resume_from_model) return;
  auto j = nlohmann::json::parse(model->metadata().at(kMetadataKey), nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("rng")) {
    std::istringstream state(j["rng"].get<std::string>());
    if (!(state >> executor->rng())) throw ModelError("metadata '" + std::string(kMetadataKey) + "': corrupt random generator state");
  }
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

  // The algorithm is the training graph as the session runs it, with the values the
  // session feeds from its own state stored in the model instead: the step count becomes
  // an initializer (advanced by the algorithm), the optimizer state initializers join the
  // main graph. The learning rate stays an input (the schedule lives outside the graph).
  auto a = s.graph->clone();
  graph::Value& step = a->value(s.stage.step);
  std::erase(a->inputs, &step);
  step.kind = graph::ValueKind::Initializer;
  step.data = Tensor::scalar<int64_t>(s.step);
  put_initializer(*proto.mutable_graph(), step.name, *step.data);
  for (const auto& name : s.stage.states) put_initializer(*proto.mutable_graph(), name, *a->value(name).data);

  std::vector<std::pair<std::string, std::string>> bindings = s.stage.update_binding;
  bindings.insert(bindings.end(), s.running_stats.begin(), s.running_stats.end());
  a->outputs = {&a->value(s.loss)};
  for (const auto& [initializer, value] : bindings) a->outputs.push_back(&a->value(value));
  a->prune_to_outputs();
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
