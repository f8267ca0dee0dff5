#include <omp.h>
#include <onnx/onnx_pb.h>

#include <filesystem>
#include <sstream>

#include <spdlog/spdlog.h>

#include "graph/exporter.h"
#include "graph/importer.h"
#include "graph/onnx_schemas.h"
#include "graph/passes/expand_gradient.h"
#include "graph/passes/inference_mode.h"
#include "graph/passes/kernel_check.h"
#include "graph/relax_batch.h"
#include "graph/training_info.h"
#include "onnxtrain/atomic_file.h"
#include "onnxtrain/model.h"
#include "src/model_file.h"

namespace onnxtrain {

using graph::Graph;
using graph::ValueKind;

struct Model::Impl {
  onnx::ModelProto proto;  // the original, kept for faithful export
  std::unique_ptr<Graph> graph;
  std::string source;
};

namespace {

ValueInfo value_info_of(const graph::Value& v) {
  ValueInfo info;
  info.name = v.name;
  info.dtype = v.dtype;
  if (v.dims)
    for (const auto& d : *v.dims)
      info.dims.push_back(d.known() ? std::to_string(d.value) : (d.symbol.empty() ? "?" : d.symbol));
  return info;
}

// A fixed batch relaxed in `proto` (the exported file then keeps the symbolic batch), or the
// reason it stays fixed, recorded on the graph and said once.
std::string relax_batch(onnx::ModelProto& proto, const std::string& source) {
  const graph::BatchRelaxation r = graph::relax_fixed_batch(proto);
  if (r.fixed_batch == 0) return "";
  const std::string fixed = "the model's batch size is fixed at " + std::to_string(r.fixed_batch);
  if (!r.relaxed) {
    std::string note = fixed + " (" + r.blocker +
                       "); re-export it with a dynamic batch, e.g. torch.onnx.export(..., dynamic_axes={'" +
                       proto.graph().input(0).name() + "': {0: 'batch'}})";
    spdlog::info("{}: {}", source, note);
    return note;
  }
  std::string note = fixed + "; relaxed to any batch ('" + r.symbol + "'" +
                     (r.reshapes.empty() ? std::string()
                                         : ", " + std::to_string(r.reshapes.size()) + " Reshape shape(s) now copy it") +
                     "); exported models keep the dynamic batch";
  spdlog::info("{}: {}", source, note);
  return note;
}

// Import plus the passes every loaded model gets, in the order errors are reported: the
// main graph's Gradient ops, then the training_info graphs.
std::unique_ptr<Graph> import_model(onnx::ModelProto& proto, const graph::ImportOptions& options) {
  std::string batch_note = relax_batch(proto, options.model_path);
  auto g = graph::import_graph(proto, options);
  g->batch_note = std::move(batch_note);
  graph::expand_gradient_ops(*g);
  if (proto.training_info_size() > 0) graph::validate_training_info(proto, options.model_path, graph::expand_gradient_ops);
  return g;
}

// The kept proto is a template for export, which writes every graph initializer's current
// value into it (with_current_initializers): holding the imported values there as well
// doubled the weights in memory (45 MiB of resnet18's training peak).
void drop_initializer_values(onnx::ModelProto& proto, const Graph& g) {
  for (auto& t : *proto.mutable_graph()->mutable_initializer()) {
    const graph::Value* v = g.find_value(t.name());
    if (!v || v->kind != ValueKind::Initializer || !v->data) continue;
    // clear_*() would keep the capacity; swapping with empty containers frees it.
    std::string().swap(*t.mutable_raw_data());
    t.clear_raw_data();
    google::protobuf::RepeatedField<float>().Swap(t.mutable_float_data());
    google::protobuf::RepeatedField<double>().Swap(t.mutable_double_data());
    google::protobuf::RepeatedField<int32_t>().Swap(t.mutable_int32_data());
    google::protobuf::RepeatedField<int64_t>().Swap(t.mutable_int64_data());
    google::protobuf::RepeatedField<uint64_t>().Swap(t.mutable_uint64_data());
    t.clear_external_data();
    t.clear_data_location();
  }
}

std::unique_ptr<Graph> import_and_drop_values(onnx::ModelProto& proto, const graph::ImportOptions& options) {
  auto g = import_model(proto, options);
  drop_initializer_values(proto, *g);
  return g;
}

}  // namespace

std::string ValueInfo::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "," : "") + dims[i];
  return s + "]";
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

Model Model::load(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  graph::load_model_file(path, impl->proto);
  const auto options = graph::ImportOptions::for_file(path);
  impl->source = path;
  impl->graph = import_and_drop_values(impl->proto, options);
  return Model(std::move(impl));
}

Model Model::from_bytes(const void* data, size_t size) {
  auto impl = std::make_unique<Impl>();
  graph::load_model_bytes(data, size, impl->proto);
  impl->source = "model (from memory)";
  graph::ImportOptions options;
  options.model_path = impl->source;
  impl->graph = import_and_drop_values(impl->proto, options);
  return Model(std::move(impl));
}

Model Model::from_text(const std::string& onnx_text) {
  auto impl = std::make_unique<Impl>();
  graph::load_model_text(onnx_text, impl->proto);
  impl->source = "model (from ONNX text)";
  graph::ImportOptions options;
  options.model_path = impl->source;
  impl->graph = import_and_drop_values(impl->proto, options);
  return Model(std::move(impl));
}

std::vector<ValueInfo> Model::inputs() const {
  std::vector<ValueInfo> out;
  for (const auto* v : impl_->graph->inputs) out.push_back(value_info_of(*v));
  return out;
}

std::vector<ValueInfo> Model::outputs() const {
  std::vector<ValueInfo> out;
  for (const auto* v : impl_->graph->outputs) out.push_back(value_info_of(*v));
  return out;
}

ModelInfo Model::info() const {
  const Graph& g = *impl_->graph;
  ModelInfo info;
  info.source = impl_->source;
  info.producer = impl_->proto.producer_name() +
                  (impl_->proto.producer_version().empty() ? "" : " " + impl_->proto.producer_version());
  info.ir_version = impl_->proto.ir_version();
  info.opsets = g.opsets;
  info.inputs = inputs();
  info.outputs = outputs();
  for (const auto* v : g.initializers()) {
    ++info.initializer_count;
    if (v->data && is_floating(v->dtype)) {
      info.parameter_count += v->data->numel();
      info.parameter_bytes += static_cast<int64_t>(v->data->nbytes());
    }
  }
  info.batch_note = g.batch_note;
  info.newer_opset_ops = graph::newer_signatures(impl_->proto);
  for (const auto& n : g.nodes()) ++info.op_histogram[n->domain.empty() ? n->op_type : n->domain + "." + n->op_type];
  for (const auto& m : graph::find_missing_kernels(g)) info.missing_kernels[m.label()] = m.nodes;
  for (const auto& m : graph::find_missing_gradients(g)) info.missing_gradients[m.label()] = m.nodes;
  return info;
}

std::map<std::string, std::string> Model::metadata() const {
  std::map<std::string, std::string> out;
  for (const auto& p : impl_->proto.metadata_props()) out[p.key()] = p.value();
  return out;
}

void Model::set_metadata(const std::string& key, const std::string& value) {
  for (auto& p : *impl_->proto.mutable_metadata_props())
    if (p.key() == key) {
      p.set_value(value);
      return;
    }
  auto* p = impl_->proto.add_metadata_props();
  p->set_key(key);
  p->set_value(value);
}

Tensor Model::initializer(const std::string& name) const {
  const graph::Value* v = impl_->graph->find_value(name);
  if (!v || v->kind != ValueKind::Initializer) throw ModelError(impl_->source + " has no initializer '" + name + "'");
  return *v->data;
}

std::vector<std::string> Model::initializer_names() const {
  std::vector<std::string> out;
  for (const auto* v : impl_->graph->initializers()) out.push_back(v->name);
  return out;
}

void Model::set_initializer(const std::string& name, const Tensor& value) {
  graph::Value* v = impl_->graph->find_value(name);
  if (!v || v->kind != ValueKind::Initializer) throw ModelError(impl_->source + " has no initializer '" + name + "'");
  if (v->data->dtype() != value.dtype() || v->data->shape() != value.shape())
    throw ShapeError("initializer '" + name + "' is " + dtype_name(v->data->dtype()) + shape_str(v->data->shape()) +
                     ", the new value is " + dtype_name(value.dtype()) + shape_str(value.shape()));
  v->data = value.clone();
}

namespace {

// The original ModelProto with the current initializer values.
onnx::ModelProto with_current_initializers(const onnx::ModelProto& proto, const Graph& g) {
  onnx::ModelProto out = proto;
  std::map<std::string, Tensor> values;
  for (const auto* v : g.initializers()) values[v->name] = *v->data;
  graph::replace_initializers(out, values);
  return out;
}

}  // namespace

void save_model_file(const onnx::ModelProto& model, const std::string& path) {
  std::string bytes;
  if (!model.SerializeToString(&bytes))
    throw ModelError("cannot serialise the model for '" + path + "' (over 2 GB?)");
  write_file_atomically(path, bytes);
}

std::string Model::serialize() const {
  onnx::ModelProto out = with_current_initializers(impl_->proto, *impl_->graph);
  std::string bytes;
  if (!out.SerializeToString(&bytes)) throw ModelError("cannot serialise " + impl_->source + " (over 2 GB?)");
  return bytes;
}

void Model::save(const std::string& path) const {
  save_model_file(with_current_initializers(impl_->proto, *impl_->graph), path);
}

void Model::save_inference(const std::string& path, const std::vector<std::string>& outputs) const {
  onnx::ModelProto out = with_current_initializers(impl_->proto, *impl_->graph);
  graph::to_inference_form(out);
  if (!outputs.empty()) graph::select_outputs(out, *impl_->graph, outputs);
  save_model_file(out, path);
}

const graph::Graph& Model::graph() const { return *impl_->graph; }

void set_num_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
}

}  // namespace onnxtrain
