// TrainingSession checkpoints: parameters, buffers, optimizer state, step, random
// generator state and pending accumulated gradients in one atomically written .npz.
#include <cstring>
#include <set>
#include <sstream>

#include "onnxtrain/npy.h"
#include "src/training_session_impl.h"

namespace onnxtrain {

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

void TrainingSession::save_checkpoint(const std::string& path, const std::map<std::string, std::string>& notes) const {
  const Impl& s = *impl_;
  std::map<std::string, Tensor> arrays;
  arrays["meta.format"] = text_tensor(kCheckpointFormat);
  arrays["meta.step"] = Tensor::scalar<int64_t>(s.step);
  arrays["meta.optimizer"] = text_tensor(optimizer_signature(s.options));
  std::ostringstream rng;
  rng << s.executor->rng();
  arrays["meta.rng"] = text_tensor(rng.str());
  const std::set<std::string> states(s.stage.states.begin(), s.stage.states.end());
  for (const graph::Value* v : s.graph->initializers())
    if (is_floating(v->dtype)) arrays[(states.count(v->name) ? "optim." : "init.") + v->name] = *v->data;
  arrays["meta.pending"] = Tensor::scalar<int64_t>(s.pending);
  arrays["meta.pending_weight"] = Tensor::scalar<double>(s.pending_weight);
  for (size_t i = 0; i < s.accumulated.size(); ++i) arrays["accum." + s.trainable[i]] = s.accumulated[i];
  for (const auto& [key, text] : notes) arrays["note." + key] = text_tensor(text);
  write_npz(path, arrays, /*compress=*/false);
}

std::map<std::string, std::string> TrainingSession::load_checkpoint(const std::string& path) {
  Impl& s = *impl_;
  auto arrays = read_npz(path);
  auto need = [&](const std::string& key) -> const Tensor& {
    auto it = arrays.find(key);
    if (it == arrays.end()) throw DataError(path + " is not an onnxtrain checkpoint (no '" + key + "')");
    return it->second;
  };
  if (tensor_text(need("meta.format")) != kCheckpointFormat)
    throw DataError(path + ": unsupported checkpoint format '" + tensor_text(need("meta.format")) + "'");
  const std::string saved_optimizer = tensor_text(need("meta.optimizer"));
  if (saved_optimizer != optimizer_signature(s.options))
    throw DataError(path + " was saved with optimizer '" + saved_optimizer + "', this session uses '" +
                    optimizer_signature(s.options) + "'");
  // Validate everything before changing anything, so a bad file leaves the session as it was.
  auto check = [&](const Tensor& src, const Tensor& dst, const std::string& name) {
    if (src.dtype() != dst.dtype() || src.shape() != dst.shape())
      throw DataError(path + ": '" + name + "' is " + dtype_name(src.dtype()) + shape_str(src.shape()) +
                      ", the model has " + dtype_name(dst.dtype()) + shape_str(dst.shape()));
  };
  std::vector<std::pair<Tensor*, const Tensor*>> copies;
  const std::set<std::string> states(s.stage.states.begin(), s.stage.states.end());
  for (graph::Value* v : s.graph->all_values())
    if (v->kind == graph::ValueKind::Initializer && is_floating(v->dtype)) {
      const Tensor& src = need((states.count(v->name) ? "optim." : "init.") + v->name);
      check(src, *v->data, v->name);
      copies.push_back({&*v->data, &src});
    }
  std::istringstream rng(tensor_text(need("meta.rng")));
  std::mt19937_64 restored;
  if (!(rng >> restored)) throw DataError(path + ": corrupt random generator state");
  const int64_t step = need("meta.step").as_int64().at(0);
  int64_t pending = 0;
  double pending_weight = 0;
  std::vector<Tensor> accumulated;
  if (arrays.count("meta.pending")) {
    pending = need("meta.pending").as_int64().at(0);
    pending_weight = need("meta.pending_weight").as_double().at(0);
    if (pending > 0)
      for (const auto& name : s.trainable) {
        const Tensor& src = need("accum." + name);
        check(src, *s.graph->value(name).data, "accum." + name);
        accumulated.push_back(src.clone());
      }
  }
  for (auto& [dst, src] : copies) std::memcpy(dst->raw(), src->raw(), dst->nbytes());
  s.executor->rng() = restored;
  s.step = step;
  s.accumulated = std::move(accumulated);
  s.pending = static_cast<int>(pending);
  s.pending_weight = pending_weight;
  std::map<std::string, std::string> notes;
  for (const auto& [key, value] : arrays)
    if (key.rfind("note.", 0) == 0) notes[key.substr(5)] = tensor_text(value);
  return notes;
}

}  // namespace onnxtrain
