#include "graph/onnx_schemas.h"

#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/defs/shape_inference.h>
#include <onnx/defs/tensor_proto_util.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <cmath>
#include <map>
#include <mutex>
#include <set>

#include "graph/tensor_proto.h"

namespace onnxtrain::graph {
namespace {

using onnx::AttributeProto;
using onnx::InferenceContext;
using onnx::OpSchema;

// ---- shape rules of the changed signatures ----------------------------------------------

std::vector<int64_t> constant_ints(InferenceContext& ctx, size_t input, bool& known) {
  known = false;
  if (input >= ctx.getNumInputs() || !ctx.getInputType(input)) return {};
  const onnx::TensorProto* t = ctx.getInputData(input);
  if (!t) return {};
  known = true;
  if (t->data_type() == onnx::TensorProto::INT32) {
    auto v = onnx::ParseData<int32_t>(t);
    return {v.begin(), v.end()};
  }
  return onnx::ParseData<int64_t>(t);
}

std::vector<int64_t> ints_attribute(InferenceContext& ctx, const char* name) {
  std::vector<int64_t> v;
  onnx::getRepeatedAttribute(ctx, name, v);
  return v;
}

int64_t normalized_axis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank) fail_shape_inference("axis ", axis, " is out of range for rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

// The input's shape with every dim unknown: the rank is what gradients need most.
onnx::TensorShapeProto* output_of_rank(InferenceContext& ctx, size_t output, int rank) {
  auto* shape = onnx::getOutputShape(ctx, output);
  shape->clear_dim();
  for (int i = 0; i < rank; ++i) shape->add_dim();
  return shape;
}

// Split-18: sizes from the `split` input, or `num_outputs` chunks of ceil(dim / n).
void split_shapes(InferenceContext& ctx) {
  for (size_t i = 0; i < ctx.getNumOutputs(); ++i) onnx::propagateElemTypeFromInputToOutput(ctx, 0, i);
  if (!onnx::hasInputShape(ctx, 0)) return;
  const auto& in = onnx::getInputShape(ctx, 0);
  const int rank = in.dim_size();
  const int64_t axis = normalized_axis(onnx::getAttribute(ctx, "axis", 0), rank);
  const int64_t n = static_cast<int64_t>(ctx.getNumOutputs());
  bool known = false;
  std::vector<int64_t> sizes = constant_ints(ctx, 1, known);
  const bool has_split = ctx.getNumInputs() > 1 && ctx.getInputType(1);
  if (has_split && !known) {
    for (size_t i = 0; i < ctx.getNumOutputs(); ++i) output_of_rank(ctx, i, rank);
    return;
  }
  if (!has_split) {
    const int64_t num_outputs = onnx::getAttribute(ctx, "num_outputs", n);
    if (num_outputs != n) fail_shape_inference("num_outputs is ", num_outputs, " but the node has ", n, " outputs");
    if (in.dim(axis).has_dim_value()) {
      const int64_t dim = in.dim(axis).dim_value();
      const int64_t chunk = (dim + n - 1) / n;
      for (int64_t i = 0; i < n; ++i) sizes.push_back(std::max<int64_t>(0, std::min(chunk, dim - chunk * i)));
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    auto* out = onnx::getOutputShape(ctx, i);
    out->CopyFrom(in);
    out->mutable_dim(axis)->Clear();
    if (static_cast<size_t>(i) < sizes.size()) out->mutable_dim(axis)->set_dim_value(sizes[i]);
  }
}

// Pad-18+: pads (begins then ends) for the listed axes only.
void pad_shapes(InferenceContext& ctx) {
  onnx::propagateElemTypeFromInputToOutput(ctx, 0, 0);
  if (!onnx::hasInputShape(ctx, 0)) return;
  const auto& in = onnx::getInputShape(ctx, 0);
  const int rank = in.dim_size();
  bool pads_known = false, axes_known = false;
  const std::vector<int64_t> pads = constant_ints(ctx, 1, pads_known);
  std::vector<int64_t> axes = constant_ints(ctx, 3, axes_known);
  const bool has_axes = ctx.getNumInputs() > 3 && ctx.getInputType(3);
  auto* out = output_of_rank(ctx, 0, rank);
  if (!pads_known || (has_axes && !axes_known)) return;
  if (!has_axes)
    for (int i = 0; i < rank; ++i) axes.push_back(i);
  if (pads.size() != 2 * axes.size()) fail_shape_inference("Pad has ", pads.size(), " pads for ", axes.size(), " axes");
  for (int i = 0; i < rank; ++i) *out->mutable_dim(i) = in.dim(i);
  for (size_t i = 0; i < axes.size(); ++i) {
    const int64_t a = normalized_axis(axes[i], rank);
    auto* d = out->mutable_dim(static_cast<int>(a));
    if (d->has_dim_value()) d->set_dim_value(d->dim_value() + pads[i] + pads[i + axes.size()]);
    else d->Clear();
  }
}

// Resize-18+: sizes or scales for the `axes` (all by default), sizes kept to the aspect
// ratio when keep_aspect_ratio_policy asks.
void resize_shapes(InferenceContext& ctx) {
  onnx::propagateElemTypeFromInputToOutput(ctx, 0, 0);
  if (!onnx::hasInputShape(ctx, 0)) return;
  const auto& in = onnx::getInputShape(ctx, 0);
  const int rank = in.dim_size();
  std::vector<int64_t> axes = ints_attribute(ctx, "axes");
  if (axes.empty())
    for (int i = 0; i < rank; ++i) axes.push_back(i);
  for (auto& a : axes) a = normalized_axis(a, rank);
  auto* out = output_of_rank(ctx, 0, rank);
  for (int i = 0; i < rank; ++i) *out->mutable_dim(i) = in.dim(i);
  for (int64_t a : axes) out->mutable_dim(static_cast<int>(a))->Clear();
  bool sizes_known = false;
  const std::vector<int64_t> sizes = constant_ints(ctx, 3, sizes_known);
  const onnx::TensorProto* scales = ctx.getNumInputs() > 2 && ctx.getInputType(2) ? ctx.getInputData(2) : nullptr;
  auto in_dim = [&](int64_t a) { return in.dim(static_cast<int>(a)); };
  if (sizes_known && !sizes.empty()) {
    if (sizes.size() != axes.size()) fail_shape_inference("Resize has ", sizes.size(), " sizes for ", axes.size(), " axes");
    const std::string policy = onnx::getAttribute(ctx, "keep_aspect_ratio_policy", std::string("stretch"));
    if (policy == "stretch") {
      for (size_t i = 0; i < axes.size(); ++i) out->mutable_dim(static_cast<int>(axes[i]))->set_dim_value(sizes[i]);
      return;
    }
    double scale = policy == "not_larger" ? INFINITY : 0.0;
    for (size_t i = 0; i < axes.size(); ++i) {
      if (!in_dim(axes[i]).has_dim_value()) return;
      const double s = static_cast<double>(sizes[i]) / static_cast<double>(in_dim(axes[i]).dim_value());
      scale = policy == "not_larger" ? std::min(scale, s) : std::max(scale, s);
    }
    for (int64_t a : axes)
      out->mutable_dim(static_cast<int>(a))
          ->set_dim_value(static_cast<int64_t>(std::round(scale * static_cast<double>(in_dim(a).dim_value()))));
    return;
  }
  if (scales && scales->data_type() == onnx::TensorProto::FLOAT) {
    const auto s = onnx::ParseData<float>(scales);
    if (s.empty()) return;
    if (s.size() != axes.size()) fail_shape_inference("Resize has ", s.size(), " scales for ", axes.size(), " axes");
    for (size_t i = 0; i < axes.size(); ++i)
      if (in_dim(axes[i]).has_dim_value())
        out->mutable_dim(static_cast<int>(axes[i]))
            ->set_dim_value(static_cast<int64_t>(std::floor(static_cast<double>(in_dim(axes[i]).dim_value()) * s[i])));
  }
}

// Pooling with kernel_shape, strides, pads, dilations, auto_pad and ceil_mode (LpPool-18,
// AveragePool-19); ceil_mode windows must start inside the input or its left padding.
void pool_shapes(InferenceContext& ctx) {
  onnx::propagateElemTypeFromInputToOutput(ctx, 0, 0);
  if (!onnx::hasInputShape(ctx, 0)) return;
  const auto& in = onnx::getInputShape(ctx, 0);
  const int rank = in.dim_size();
  const std::vector<int64_t> kernel = ints_attribute(ctx, "kernel_shape");
  const int nsp = rank - 2;
  if (nsp < 1 || static_cast<int>(kernel.size()) != nsp) fail_shape_inference("kernel_shape does not match the input rank");
  auto or_default = [&](const char* name, size_t n, int64_t value) {
    std::vector<int64_t> v = ints_attribute(ctx, name);
    return v.empty() ? std::vector<int64_t>(n, value) : v;
  };
  const auto strides = or_default("strides", nsp, 1), dilations = or_default("dilations", nsp, 1);
  const auto pads = or_default("pads", 2 * nsp, 0);
  const std::string auto_pad = onnx::getAttribute(ctx, "auto_pad", std::string("NOTSET"));
  const bool ceil_mode = onnx::getAttribute(ctx, "ceil_mode", 0) != 0;
  auto* out = output_of_rank(ctx, 0, rank);
  *out->mutable_dim(0) = in.dim(0);
  *out->mutable_dim(1) = in.dim(1);
  for (int i = 0; i < nsp; ++i) {
    if (!in.dim(i + 2).has_dim_value()) continue;
    const int64_t x = in.dim(i + 2).dim_value(), s = strides[i];
    const int64_t window = (kernel[i] - 1) * dilations[i] + 1;
    int64_t y;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      y = (x + s - 1) / s;
    } else if (auto_pad == "VALID") {
      y = (x - window) / s + 1;
    } else {
      const int64_t span = x + pads[i] + pads[i + nsp] - window;
      y = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
      if (ceil_mode && (y - 1) * s >= x + pads[i]) --y;
    }
    out->mutable_dim(i + 2)->set_dim_value(y);
  }
}

void broadcast_shapes(InferenceContext& ctx) {
  onnx::propagateElemTypeFromInputToOutput(ctx, 0, 0);
  if (onnx::hasNInputShapes(ctx, 2))
    onnx::bidirectionalBroadcastShapeInference(onnx::getInputShape(ctx, 0), onnx::getInputShape(ctx, 1),
                                               *onnx::getOutputShape(ctx, 0));
}

// ---- the schemas -------------------------------------------------------------------------

const std::vector<std::string> kFloatTypes = {"tensor(float16)", "tensor(float)", "tensor(double)", "tensor(bfloat16)"};
const std::vector<std::string> kIntTypes = {"tensor(uint8)",  "tensor(uint16)", "tensor(uint32)", "tensor(uint64)",
                                            "tensor(int8)",   "tensor(int16)",  "tensor(int32)",  "tensor(int64)"};

// An opset-17 schema's signature under a newer version (and possibly another name), to be
// extended. Rebuilt rather than copied: Finalize() on a copy would count the inputs twice.
OpSchema derived(const char* base, int base_version, const char* name, int since) {
  const OpSchema* b = onnx::OpSchemaRegistry::Schema(base, base_version, "");
  if (!b) throw std::logic_error(std::string("ONNX has no schema ") + base);
  OpSchema s;
  s.SetName(name).SetDomain(b->domain()).SinceVersion(since);
  int i = 0;
  for (const auto& p : b->inputs())
    s.Input(i++, p.GetName(), "", p.GetTypeStr(), p.GetOption(), p.GetIsHomogeneous(), p.GetMinArity(),
            p.GetDifferentiationCategory());
  i = 0;
  for (const auto& p : b->outputs())
    s.Output(i++, p.GetName(), "", p.GetTypeStr(), p.GetOption(), p.GetIsHomogeneous(), p.GetMinArity(),
             p.GetDifferentiationCategory());
  for (const auto& [attr_name, attr] : b->attributes()) s.Attr(attr);
  for (const auto& t : b->typeConstraintParams()) s.TypeConstraint(t.type_param_str, t.allowed_type_strs, "");
  s.TypeAndShapeInferenceFunction(b->GetTypeAndShapeInferenceFunction());
  if (b->has_data_propagation_function()) s.PartialDataPropagationFunction(b->GetDataPropagationFunction());
  return s;
}

OpSchema unary(const char* name, int since, const std::vector<std::string>& types) {
  OpSchema s;
  s.SetName(name).SetDomain("").SinceVersion(since);
  s.Input(0, "X", "", "T").Output(0, "Y", "", "T").TypeConstraint("T", types, "");
  s.TypeAndShapeInferenceFunction(onnx::propagateShapeAndTypeFromFirstInput);
  return s;
}

std::vector<OpSchema> newer_schemas() {
  std::vector<OpSchema> out;
  for (const char* name : {"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
                           "ReduceMin", "ReduceProd", "ReduceSumSquare"})
    out.push_back(derived("ReduceSum", 13, name, 18));  // the signature ReduceSum has had since 13

  OpSchema split = derived("Split", 13, "Split", 18);
  split.Attr("num_outputs", "", AttributeProto::INT, false).TypeAndShapeInferenceFunction(split_shapes);
  out.push_back(std::move(split));

  OpSchema pad = derived("Pad", 13, "Pad", 18);
  pad.Input(3, "axes", "", "Tind", OpSchema::Optional)
      .TypeConstraint("Tind", {"tensor(int32)", "tensor(int64)"}, "")
      .TypeAndShapeInferenceFunction(pad_shapes);
  out.push_back(std::move(pad));

  OpSchema resize = derived("Resize", 13, "Resize", 18);
  resize.Attr("antialias", "", AttributeProto::INT, static_cast<int64_t>(0))
      .Attr("axes", "", AttributeProto::INTS, false)
      .Attr("keep_aspect_ratio_policy", "", AttributeProto::STRING, std::string("stretch"))
      .TypeAndShapeInferenceFunction(resize_shapes);
  out.push_back(std::move(resize));

  OpSchema lp_pool = derived("LpPool", 11, "LpPool", 18);
  lp_pool.Attr("ceil_mode", "", AttributeProto::INT, static_cast<int64_t>(0)).TypeAndShapeInferenceFunction(pool_shapes);
  out.push_back(std::move(lp_pool));
  OpSchema average_pool = derived("AveragePool", 11, "AveragePool", 19);
  average_pool.Attr("dilations", "", AttributeProto::INTS, false).TypeAndShapeInferenceFunction(pool_shapes);
  out.push_back(std::move(average_pool));

  for (auto [name, base] : {std::pair{"Cast", 13}, std::pair{"CastLike", 15}}) {
    OpSchema cast = derived(name, base, name, 19);  // saturate only matters for float8 targets
    cast.Attr("saturate", "", AttributeProto::INT, static_cast<int64_t>(1));
    out.push_back(std::move(cast));
  }

  for (int since : {18, 21}) {
    OpSchema g;
    g.SetName("GroupNormalization").SetDomain("").SinceVersion(since);
    g.Input(0, "X", "", "T").Input(1, "scale", "", "T").Input(2, "bias", "", "T").Output(0, "Y", "", "T");
    g.Attr("epsilon", "", AttributeProto::FLOAT, 1e-5f).Attr("num_groups", "", AttributeProto::INT, true);
    if (since >= 21) g.Attr("stash_type", "", AttributeProto::INT, static_cast<int64_t>(1));
    g.TypeConstraint("T", kFloatTypes, "").TypeAndShapeInferenceFunction(onnx::propagateShapeAndTypeFromFirstInput);
    out.push_back(std::move(g));
  }
  out.push_back(unary("Mish", 18, kFloatTypes));
  OpSchema gelu = unary("Gelu", 20, kFloatTypes);
  gelu.Attr("approximate", "", AttributeProto::STRING, std::string("none"));
  out.push_back(std::move(gelu));
  out.push_back(unary("BitwiseNot", 18, kIntTypes));
  for (const char* name : {"BitwiseAnd", "BitwiseOr", "BitwiseXor"}) {
    OpSchema s;
    s.SetName(name).SetDomain("").SinceVersion(18);
    s.Input(0, "A", "", "T").Input(1, "B", "", "T").Output(0, "C", "", "T").TypeConstraint("T", kIntTypes, "");
    s.TypeAndShapeInferenceFunction(broadcast_shapes);
    out.push_back(std::move(s));
  }
  for (auto& s : out) s.Finalize();
  return out;
}

// Operators whose signature or meaning changed after opset 17 and that we do not describe
// (op -> the version that changed it): nothing older may stand in for them.
const std::map<std::string, int> kUndescribedChanges = {
    {"CenterCropPad", 18}, {"Col2Im", 18},         {"OptionalGetElement", 18}, {"OptionalHasElement", 18},
    {"DeformConv", 19},    {"AffineGrid", 20},     {"DFT", 20},                {"ImageDecoder", 20},
    {"RegexFullMatch", 20}, {"StringConcat", 20},  {"StringSplit", 20},        {"QLinearMatMul", 21},
    {"QuantizeLinear", 19}, {"DequantizeLinear", 19}};

class NewerOpsetRegistry final : public onnx::ISchemaRegistry {
 public:
  NewerOpsetRegistry() {
    for (auto& s : newer_schemas()) {
      const std::string name = s.Name();
      const int since = s.SinceVersion();
      schemas_[name].emplace(since, std::move(s));
    }
  }

  const OpSchema* GetSchema(const std::string& key, const int version, const std::string& domain) const override {
    return guarded(find(key, version, domain));
  }

 private:
  const OpSchema* find(const std::string& key, const int version, const std::string& domain) const {
    const bool onnx_domain = domain.empty() || domain == "ai.onnx";
    if (!onnx_domain || version <= kLibraryOnnxOpset) return onnx::OpSchemaRegistry::Instance()->GetSchema(key, version, domain);
    if (auto it = schemas_.find(key); it != schemas_.end()) {
      auto v = it->second.upper_bound(version);
      if (v != it->second.begin()) return &std::prev(v)->second;
    }
    if (auto it = kUndescribedChanges.find(key); it != kUndescribedChanges.end() && version >= it->second) return nullptr;
    return onnx::OpSchemaRegistry::Instance()->GetSchema(key, kLibraryOnnxOpset, domain);
  }

  // ONNX 1.12's data propagation (Shape's, for one) reads its inputs' types without checking
  // that they exist, and a value has none after an upstream node's inference failed (say, a
  // broadcast of mismatched dims, which non-strict inference only skips): a null dereference
  // inside libonnx, found by the model_import fuzz target. Each schema with a data
  // propagation function is handed out as a copy whose function first checks that every
  // required input has a type; without them there is nothing to propagate anyway.
  const OpSchema* guarded(const OpSchema* schema) const {
    if (!schema || !schema->has_data_propagation_function()) return schema;
    std::lock_guard<std::mutex> lock(mutex_);
    auto [it, added] = guarded_.try_emplace(schema, *schema);
    if (added) {
      const int required = schema->min_input();
      it->second.PartialDataPropagationFunction(
          [inner = schema->GetDataPropagationFunction(), required](onnx::DataPropagationContext& ctx) {
            for (int i = 0; i < required; ++i)
              if (static_cast<size_t>(i) >= ctx.getNumInputs() || !ctx.getInputType(static_cast<size_t>(i))) return;
            inner(ctx);
          });
    }
    return &it->second;
  }

  std::map<std::string, std::map<int, OpSchema>> schemas_;
  mutable std::mutex mutex_;
  mutable std::map<const OpSchema*, OpSchema> guarded_;
};

int onnx_opset(const onnx::ModelProto& model) {
  for (const auto& op : model.opset_import())
    if (op.domain().empty() || op.domain() == "ai.onnx") return static_cast<int>(op.version());
  return 1;
}

}  // namespace

const onnx::ISchemaRegistry& schema_registry() {
  static const NewerOpsetRegistry registry;
  return registry;
}

void check_model(const onnx::ModelProto& model, const std::string& model_path, const std::string& model_dir) {
  if (onnx_opset(model) <= kLibraryOnnxOpset) {  // the library's entry points check more (model-local functions)
    if (!model_path.empty() && !model_dir.empty()) onnx::checker::check_model(model_path);
    else onnx::checker::check_model(model);
    return;
  }
  onnx::checker::CheckerContext ctx;
  if (!model.has_ir_version()) throw std::runtime_error("the model has no ir_version");
  ctx.set_ir_version(static_cast<int>(model.ir_version()));
  std::unordered_map<std::string, int> opsets;
  for (const auto& op : model.opset_import()) opsets[op.domain()] = static_cast<int>(op.version());
  ctx.set_opset_imports(opsets);
  ctx.set_schema_registry(&schema_registry());
  ctx.set_model_dir(model_dir);
  onnx::checker::LexicalScopeContext lex;
  onnx::checker::check_graph(model.graph(), ctx, lex);
}

std::map<std::string, int> newer_signatures(const onnx::ModelProto& model) {
  std::map<std::string, int> out;
  const int opset = onnx_opset(model);
  if (opset <= kLibraryOnnxOpset) return out;
  for (const auto& node : model.graph().node()) {
    if (!node.domain().empty() && node.domain() != "ai.onnx") continue;
    const OpSchema* schema = schema_registry().GetSchema(node.op_type(), opset, "");
    if (schema && schema->SinceVersion() > kLibraryOnnxOpset) out[node.op_type()] = schema->SinceVersion();
  }
  return out;
}

void infer_shapes(onnx::ModelProto& model) {
  check_stored_tensors(model);  // ONNX's data propagation trusts stored sizes
  onnx::ShapeInferenceOptions options(false, 0, true);
  onnx::shape_inference::InferShapes(model, &schema_registry(), options);
}

}  // namespace onnxtrain::graph
