// Checks that a dataset fits a model before training starts, and the dtype-converting view.
#include <algorithm>
#include <charconv>
#include <optional>
#include <set>

#include "onnxtrain/data.h"
#include "src/data_internal.h"

namespace onnxtrain {
namespace {

// Labels are scanned in chunks so that checking a large dataset needs little memory.
constexpr int64_t kScanChunk = 1 << 16;

std::optional<int64_t> static_dim(const std::string& dim) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(dim.data(), dim.data() + dim.size(), v);
  if (ec != std::errc() || end != dim.data() + dim.size()) return std::nullopt;
  return v;
}

bool small_int(DType t) {
  return t == DType::Int8 || t == DType::Int16 || t == DType::UInt8 || t == DType::UInt16;
}

bool is_integer(DType t) {
  return small_int(t) || t == DType::Int32 || t == DType::UInt32 || t == DType::Int64 || t == DType::UInt64;
}

// `dims` ([N, ...] of a model value) without the batch dim against a sample shape; returns
// the first disagreement, or "" when every static dim matches.
std::string shape_mismatch(const Shape& sample, const std::vector<std::string>& dims) {
  if (sample.size() != dims.size())
    return "rank " + std::to_string(sample.size()) + " vs " + std::to_string(dims.size());
  for (size_t i = 0; i < dims.size(); ++i)
    if (auto d = static_dim(dims[i]); d && *d != sample[i])
      return "dim " + std::to_string(i + 1) + ": " + std::to_string(sample[i]) + " vs " + dims[i];
  return "";
}

// The dims as a shape when every one is a fixed size.
std::optional<Shape> fixed_shape(const std::vector<std::string>& dims) {
  Shape shape;
  for (const auto& d : dims) {
    auto v = static_dim(d);
    if (!v) return std::nullopt;
    shape.push_back(*v);
  }
  return shape;
}

// Samples whose element count equals a fixed expected shape are reshaped to it (e.g. a
// label column [N] for an output [N, 1], 64 pixel columns for a [1, 8, 8] input).
bool reshapes_to(const Shape& sample, const std::vector<std::string>& dims) {
  auto fixed = fixed_shape(dims);
  return fixed && shape_numel(*fixed) == shape_numel(sample);
}

std::string dims_str(const std::vector<std::string>& dims) {
  std::string s;
  for (const auto& d : dims) s += (s.empty() ? "" : ",") + d;
  return "[" + s + "]";
}

ValueInfo find_output(const Model& model, const std::string& name) {
  const auto outputs = model.outputs();
  if (outputs.empty()) throw ModelError("the model has no outputs");
  if (name.empty()) return outputs.front();
  std::vector<std::string> names;
  for (const auto& o : outputs) {
    if (o.name == name) return o;
    names.push_back(o.name);
  }
  throw DataError("the model has no output '" + name + "' (outputs: " + data::join_names(names) + ")");
}

// The dtype the session takes for the labels.
DType label_dtype(const ValueInfo& output, const LabelView& label) {
  return label.class_indices ? DType::Int64 : output.dtype;
}

template <typename T, typename Src>
void fill(Tensor& out, const std::vector<Src>& values) {
  std::transform(values.begin(), values.end(), out.data<T>(), [](Src v) { return static_cast<T>(v); });
}

Tensor convert(const Tensor& t, DType to) {
  if (t.dtype() == to) return t;
  Tensor out(to, t.shape());
  switch (to) {
    case DType::Float: fill<float>(out, t.as_double()); break;
    case DType::Double: fill<double>(out, t.as_double()); break;
    case DType::Int64: fill<int64_t>(out, t.as_int64()); break;
    case DType::Int32: fill<int32_t>(out, t.as_int64()); break;
    default: throw DataError("no conversion from " + dtype_name(t.dtype()) + " to " + dtype_name(to));
  }
  return out;
}

// The model's inputs and the label, converted to the dtypes the session takes.
class ConvertedDataset final : public Dataset {
 public:
  ConvertedDataset(DatasetPtr base, std::vector<ArrayInfo> schema) : base_(std::move(base)), schema_(std::move(schema)) {}

  int64_t size() const override { return base_->size(); }
  const std::vector<ArrayInfo>& arrays() const override { return schema_; }
  const std::string& source() const override { return base_->source(); }
  std::vector<std::string> class_names() const override { return base_->class_names(); }

 protected:
  std::map<std::string, Tensor> read(std::span<const int64_t> indices, const std::vector<std::string>& names,
                                     const BatchOptions& options) const override {
    BatchOptions o = options;
    o.arrays = names;
    auto arrays = base_->batch(indices, o);
    for (auto& [name, t] : arrays) {
      const ArrayInfo& info = *find(name);
      t = convert(t, info.dtype);
      if (t.rank() != info.sample_shape.size() + 1 ||
          !std::equal(info.sample_shape.begin(), info.sample_shape.end(), t.shape().begin() + 1)) {
        Shape shape{t.dim(0)};
        shape.insert(shape.end(), info.sample_shape.begin(), info.sample_shape.end());
        t = t.reshaped(shape);
      }
    }
    return arrays;
  }

 private:
  DatasetPtr base_;
  std::vector<ArrayInfo> schema_;
};

}  // namespace

bool converts_to(DType from, DType to) {
  if (from == to) return true;
  switch (to) {
    case DType::Int64: return is_integer(from) && from != DType::UInt64;
    case DType::Int32: return small_int(from);
    case DType::Float: return small_int(from) || from == DType::Double;
    case DType::Double: return small_int(from) || from == DType::Float || from == DType::Int32 || from == DType::UInt32;
    default: return false;
  }
}

void check_inputs(const Dataset& data, const Model& model) {
  const auto inputs = model.inputs();
  std::vector<std::string> missing;
  for (const auto& in : inputs)
    if (!data.find(in.name)) missing.push_back("'" + in.name + "'");
  if (!missing.empty())
    throw DataError(data.source() + " has no array for model input" + (missing.size() > 1 ? "s " : " ") +
                    data::join_names(missing) + " (it has: " + data::join_names(data::array_names(data)) + ")");
  for (const auto& in : inputs) {
    const ArrayInfo& a = *data.find(in.name);
    const std::string what = data.source() + ": array '" + a.name + "' ";
    if (!converts_to(a.dtype, in.dtype))
      throw DataError(what + "holds " + dtype_name(a.dtype) + " but the model input takes " + dtype_name(in.dtype) +
                      ", and the conversion would change values (convert the array when writing the file)");
    if (in.dims.empty()) continue;  // shape unknown to the model
    const std::vector<std::string> dims(in.dims.begin() + 1, in.dims.end());
    if (auto why = shape_mismatch(a.sample_shape, dims); !why.empty() && !reshapes_to(a.sample_shape, dims))
      throw DataError(what + "has samples of shape " + shape_str(a.sample_shape) + "; the model input takes " +
                      in.shape_str() + ", i.e. samples of " + dims_str(dims) + " (" + why + ")");
  }
}

LabelView label_view(const LossOptions& loss, const Model& model) {
  if (!kLossKinds.contains(loss.kind))
    throw DataError("unknown loss '" + loss.kind + "' for labels (" + kLossKinds.joined() + ")");
  LabelView label;
  label.loss = loss.kind;
  label.class_indices = class_index_loss(loss.kind);
  label.output = loss.output;
  label.ignore_index = loss.ignore_index;
  if (loss.kind == "output") return label;
  if (loss.kind != "custom") {
    label.name = loss.target;
    return label;
  }
  // The custom loss's targets: its inputs that the model does not provide.
  Model loss_model = loss.model_bytes.empty() ? Model::load(loss.model_path)
                                              : Model::from_bytes(loss.model_bytes.data(), loss.model_bytes.size());
  std::set<std::string> known;
  for (const auto& v : model.inputs()) known.insert(v.name);
  for (const auto& v : model.outputs()) known.insert(v.name);
  for (const auto& v : loss_model.inputs())
    if (!known.count(v.name)) label.extra.push_back(v.name);
  return label;
}

namespace {

void check_label_view(const Dataset& data, const Model& model, const LabelView& label) {
  if (label.name.empty()) return;
  const ValueInfo output = find_output(model, label.output);
  const bool classes = label.class_indices;
  const ArrayInfo* a = data.find(label.name);
  if (!a)
    throw DataError(data.source() + " has no label array '" + label.name + "' (it has: " +
                    data::join_names(data::array_names(data)) + ")");
  const std::string what = data.source() + ": label array '" + a->name + "' ";
  const DType want = label_dtype(output, label);
  if (!converts_to(a->dtype, want))
    throw DataError(what + "holds " + dtype_name(a->dtype) + "; the " + label.loss + " loss takes " +
                    (classes ? "integer class indices (int64)" : dtype_name(want) + " values like the output '" + output.name + "'"));

  // The labels' sample shape is the output's without N (and without C for class indices).
  std::optional<int64_t> class_count;
  if (!output.dims.empty()) {
    std::vector<std::string> dims(output.dims.begin() + 1, output.dims.end());
    if (classes && !dims.empty()) {
      class_count = static_dim(dims.front());
      dims.erase(dims.begin());
    }
    if (auto why = shape_mismatch(a->sample_shape, dims); !why.empty() && !reshapes_to(a->sample_shape, dims))
      throw DataError(what + "has samples of shape " + shape_str(a->sample_shape) + "; the " + label.loss +
                      " loss on output '" + output.name + "' " + output.shape_str() + " takes labels of shape " +
                      dims_str(dims) + " per sample" + " (" + why + ")");
  }
  if (!classes) return;

  const int64_t n = data.size();
  const int64_t per_sample = std::max<int64_t>(1, shape_numel(a->sample_shape));
  BatchOptions options;
  options.arrays = {label.name};
  for (int64_t begin = 0; begin < n; begin += kScanChunk) {
    std::vector<int64_t> indices(static_cast<size_t>(std::min(kScanChunk, n - begin)));
    for (size_t i = 0; i < indices.size(); ++i) indices[i] = begin + static_cast<int64_t>(i);
    const auto values = data.batch(indices, options).at(label.name).as_int64();
    for (size_t k = 0; k < values.size(); ++k) {
      const int64_t v = values[k];
      if (v == label.ignore_index || (v >= 0 && (!class_count || v < *class_count))) continue;
      const int64_t sample = begin + static_cast<int64_t>(k) / per_sample;
      throw DataError(what + "sample " + std::to_string(sample) + ": class " + std::to_string(v) + " is outside " +
                      (class_count ? "[0, " + std::to_string(*class_count) + ") (output '" + output.name + "' has " +
                                         std::to_string(*class_count) + " classes)"
                                   : std::string("[0, classes)")) +
                      " and is not the ignore_index " +
                      std::to_string(label.ignore_index));
    }
  }
}

}  // namespace

void check_labels(const Dataset& data, const Model& model, const LossOptions& loss) {
  check_label_view(data, model, label_view(loss, model));
}

DatasetPtr fit_to_model(DatasetPtr data, const Model& model, const LossOptions& loss) {
  if (!data) throw DataError("fit_to_model: no dataset");
  const LabelView label = label_view(loss, model);
  check_inputs(*data, model);
  check_label_view(*data, model, label);
  // The sample shape each array is served with: the model's when the data only differs in
  // unit or flattened dims (see reshapes_to).
  auto served_shape = [](const Shape& sample, const std::vector<std::string>& dims) {
    auto fixed = fixed_shape(dims);
    return shape_mismatch(sample, dims).empty() || !fixed ? sample : *fixed;
  };
  std::vector<ArrayInfo> schema;
  for (const auto& in : model.inputs()) {
    const Shape& sample = data->find(in.name)->sample_shape;
    const Shape shape = in.dims.empty() ? sample : served_shape(sample, {in.dims.begin() + 1, in.dims.end()});
    schema.push_back({in.name, in.dtype, shape});
  }
  if (!label.name.empty()) {
    const ArrayInfo& a = *data->find(label.name);
    const ValueInfo output = find_output(model, label.output);
    Shape shape = a.sample_shape;
    if (!output.dims.empty()) {
      std::vector<std::string> dims(output.dims.begin() + 1, output.dims.end());
      if (label.class_indices && !dims.empty()) dims.erase(dims.begin());
      shape = served_shape(a.sample_shape, dims);
    }
    schema.push_back({a.name, label_dtype(output, label), shape});
  }
  for (const auto& name : label.extra) {
    const ArrayInfo* a = data->find(name);
    if (!a)
      throw DataError(data->source() + " has no array '" + name + "' (the loss reads it; the file has: " +
                      data::join_names(data::array_names(*data)) + ")");
    schema.push_back(*a);
  }
  return std::make_shared<ConvertedDataset>(std::move(data), std::move(schema));
}

}  // namespace onnxtrain
