#include "onnxtrain/synthetic.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "graph/ir.h"
#include "onnxtrain/data.h"

namespace onnxtrain {

namespace {

// The value's dims for a batch of `batch`: a symbolic first dim is the batch.
Shape concrete_shape(const graph::Value& v, int64_t batch, const std::string& what) {
  if (!v.dims) throw DataError(what + " '" + v.name + "' has an unknown rank: no synthetic data for it");
  Shape shape;
  for (size_t i = 0; i < v.dims->size(); ++i) {
    const graph::Dim& d = (*v.dims)[i];
    if (d.known()) shape.push_back(d.value);
    else if (i == 0) shape.push_back(batch);
    else
      throw DataError(what + " '" + v.name + "' " + graph::dims_str(*v.dims) + ": dim " + std::to_string(i) +
                      " is symbolic; synthetic data needs every dim but the batch fixed");
  }
  return shape;
}

// Ids below this bound index every Gather reading `v` as an embedding (its data an
// initializer); 2 when something else reads it.
int64_t id_bound(const graph::Value& v, const std::unordered_map<const graph::Value*, std::vector<std::pair<graph::Node*, int>>>& uses) {
  int64_t bound = std::numeric_limits<int64_t>::max();
  auto it = uses.find(&v);
  if (it == uses.end()) return 2;
  for (const auto& [node, index] : it->second) {
    const graph::Value* table = node->inputs.empty() ? nullptr : node->inputs[0];
    if (node->op_type != "Gather" || index != 1 || !table || !table->data) return 2;
    int64_t axis = node->attr_int("axis", 0);
    const Shape& shape = table->data->shape();
    if (axis < 0) axis += static_cast<int64_t>(shape.size());
    if (axis < 0 || axis >= static_cast<int64_t>(shape.size())) return 2;
    bound = std::min(bound, shape[axis]);
  }
  return std::max<int64_t>(bound, 1);
}

template <typename T, typename F>
Tensor filled(DType dtype, const Shape& shape, F next) {
  Tensor t(dtype, shape);
  T* p = t.data<T>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(next());
  return t;
}

Tensor random_tensor(DType dtype, const Shape& shape, int64_t id_limit, std::mt19937_64& rng) {
  std::normal_distribution<double> normal;
  std::uniform_int_distribution<int64_t> ids(0, id_limit - 1);
  switch (dtype) {
    case DType::Float: return filled<float>(dtype, shape, [&] { return normal(rng); });
    case DType::Double: return filled<double>(dtype, shape, [&] { return normal(rng); });
    case DType::Int64: return filled<int64_t>(dtype, shape, [&] { return ids(rng); });
    case DType::Int32: return filled<int32_t>(dtype, shape, [&] { return ids(rng); });
    case DType::Bool: return filled<bool>(dtype, shape, [&] { return ids(rng) % 2; });
    default: throw DataError("no synthetic data for " + dtype_name(dtype) + " inputs");
  }
}

}  // namespace

std::map<std::string, Tensor> synthetic_batch(const Model& model, const LossOptions& loss, int64_t batch_size,
                                              uint64_t seed) {
  if (batch_size < 1) throw DataError("batch size must be at least 1, got " + std::to_string(batch_size));
  const graph::Graph& g = model.graph();
  const auto uses = g.uses();
  std::mt19937_64 rng(seed);
  std::map<std::string, Tensor> batch;
  for (const graph::Value* in : g.inputs) {
    const Shape shape = concrete_shape(*in, batch_size, "input");
    batch[in->name] = random_tensor(in->dtype, shape, id_bound(*in, uses), rng);
  }

  const LabelView label = label_view(loss, model);
  if (!label.extra.empty())
    throw DataError("synthetic data does not cover the custom loss's target '" + label.extra.front() + "'");
  if (label.name.empty()) return batch;
  if (g.outputs.empty()) throw ModelError("the model has no outputs");
  const graph::Value& out = label.output.empty() ? *g.outputs.front() : g.value(label.output);
  Shape shape = concrete_shape(out, batch_size, "output");
  if (label.class_indices) {
    if (shape.size() < 2) throw DataError("output '" + out.name + "' " + shape_str(shape) + " has no class axis 1");
    const int64_t classes = shape[1];
    shape.erase(shape.begin() + 1);
    batch[label.name] = random_tensor(DType::Int64, shape, classes, rng);
  } else if (loss.kind == "bce_with_logits") {
    std::bernoulli_distribution coin;
    batch[label.name] = filled<float>(DType::Float, shape, [&] { return coin(rng); });
  } else if (loss.kind == "kl_div") {
    std::uniform_real_distribution<double> p(0.01, 1.0);
    batch[label.name] = filled<float>(DType::Float, shape, [&] { return loss.log_target ? std::log(p(rng)) : p(rng); });
  } else {
    batch[label.name] = random_tensor(out.dtype, shape, 2, rng);
  }
  return batch;
}

}  // namespace onnxtrain
