// The built-in loss kinds, with torch.nn.functional's formulas (see LossOptions), written
// as standard ONNX ops; option validation for every kind.
#include "graph/loss.h"

#include <algorithm>
#include <cmath>

#include "graph/loss_builder.h"
#include "onnxtrain/errors.h"
#include "onnxtrain/option_choices.h"

namespace onnxtrain::graph {

namespace {

const std::vector<std::string> kClassification{"cross_entropy", "nll", "dice", "cross_entropy_dice"};
const std::vector<std::string> kDetection{"yolov5", "yolov8"};
// Every kind but output, custom and the detection kinds: a formula over one output and a target.
const std::vector<std::string> kBuiltin = [] {
  std::vector<std::string> kinds = kLossKinds.names();
  std::erase_if(kinds, [](const std::string& k) { return k == "output" || k == "custom" || is_detection_loss(k); });
  return kinds;
}();

bool contains(const std::vector<std::string>& list, const std::string& s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

std::string join(const std::vector<std::string>& list) {
  std::string s;
  for (const auto& item : list) s += (s.empty() ? "" : ", ") + item;
  return s;
}

// An option moved off its default for a kind that ignores it is a mistake (e.g.
// label_smoothing with nll): say so instead of training something else.
void check_option_use(const LossOptions& o) {
  const LossOptions d;
  const DetectionLossOptions& od = o.detection;
  const DetectionLossOptions dd;
  std::vector<std::string> not_custom = kBuiltin;
  not_custom.push_back("output");
  std::vector<std::string> with_target = kBuiltin;
  with_target.insert(with_target.end(), kDetection.begin(), kDetection.end());
  struct Use {
    const char* option;
    bool set;
    std::vector<std::string> kinds;
  };
  const Use uses[] = {
      {"output", o.output != d.output, not_custom},
      {"target", o.target != d.target, with_target},
      {"reduction", o.reduction != d.reduction, kBuiltin},
      {"ignore_index", o.ignore_index != d.ignore_index, kClassification},
      {"class_weights", !o.class_weights.empty(), kClassification},
      {"label_smoothing", o.label_smoothing != d.label_smoothing, {"cross_entropy"}},
      {"beta", o.beta != d.beta, {"smooth_l1"}},
      {"delta", o.delta != d.delta, {"huber"}},
      {"pos_weight", !o.pos_weight.empty(), {"bce_with_logits"}},
      {"log_target", o.log_target != d.log_target, {"kl_div"}},
      {"model_path", !o.model_path.empty(), {"custom"}},
      {"model_bytes", !o.model_bytes.empty(), {"custom"}},
      {"outputs", !o.outputs.empty(), kDetection},
      {"detection.anchors", !od.anchors.empty(), {"yolov5"}},
      {"detection.anchor_t", od.anchor_t != dd.anchor_t, {"yolov5"}},
      {"detection.balance", !od.balance.empty(), {"yolov5"}},
      {"detection.box", od.box.has_value(), kDetection},
      {"detection.obj", od.obj != dd.obj, {"yolov5"}},
      {"detection.cls", od.cls != dd.cls, kDetection},
      {"detection.label_smoothing", od.label_smoothing != dd.label_smoothing, {"yolov5"}},
      {"detection.dfl", od.dfl != dd.dfl, {"yolov8"}},
      {"detection.reg_max", od.reg_max != dd.reg_max, {"yolov8"}},
      {"detection.topk", od.topk != dd.topk, {"yolov8"}},
      {"detection.alpha", od.alpha != dd.alpha, {"yolov8"}},
      {"detection.beta", od.beta != dd.beta, {"yolov8"}},
  };
  for (const Use& u : uses)
    if (u.set && !contains(u.kinds, o.kind))
      throw DataError(std::string("loss option '") + u.option + "' does not apply to loss '" + o.kind +
                      "' (only to " + join(u.kinds) + ")");
}

void check_options(const LossOptions& o) {
  // ModelError (not DataError) for compatibility with callers that catch it.
  if (!kLossKinds.contains(o.kind)) throw ModelError("unknown loss '" + o.kind + "' (" + kLossKinds.joined() + ")");
  check_option_use(o);
  check_dice_options(o);
  kReductions.check(o.reduction);
  if (o.reduction == "batchmean" && o.kind != "kl_div")
    throw DataError("loss option 'reduction' is 'batchmean', which only kl_div takes; expected mean or sum");
  if (!(o.beta >= 0) || !std::isfinite(o.beta))
    throw DataError("loss option 'beta' must be a finite value >= 0, got " + std::to_string(o.beta));
  if (!(o.delta > 0) || !std::isfinite(o.delta))
    throw DataError("loss option 'delta' must be a finite value > 0, got " + std::to_string(o.delta));
  if (!(o.label_smoothing >= 0 && o.label_smoothing <= 1))
    throw DataError("loss option 'label_smoothing' must be in [0, 1], got " + std::to_string(o.label_smoothing));
}

// Checks a per-class vector option against the output axis it applies to, when known.
void check_length(const std::string& option, const std::vector<double>& values, const Value* out, int64_t axis,
                  bool allow_one) {
  if (!out->dims || out->dims->empty()) return;
  const size_t i = axis < 0 ? out->dims->size() - 1 : static_cast<size_t>(axis);
  if (i >= out->dims->size() || !(*out->dims)[i].known()) return;
  const int64_t classes = (*out->dims)[i].value, n = static_cast<int64_t>(values.size());
  if (n != classes && !(allow_one && n == 1))
    throw DataError("loss option '" + option + "' has " + std::to_string(n) + " values; the output '" + out->name +
                    "' " + dims_str(*out->dims) + " has " + std::to_string(classes) + " classes on axis " +
                    std::to_string(i));
}

// torch's label smoothing: (1 - s) nll + s / C * smooth, where smooth sums -w_c log_prob_c
// over the classes of each target (0 for ignored targets) and, for "mean", is divided by
// the nll's own denominator, the summed weights of the non-ignored targets.
Value* label_smoothed(LossBuilder& b, Value* out, Value* nll, Value* log_prob, Value* target, Value* weights,
                      const LossOptions& o) {
  Value* weighted = log_prob;
  if (weights) {
    if (!out->dims)
      throw ModelError("label_smoothing with class_weights needs the rank of the output '" + out->name +
                       "', which shape inference could not determine");
    // [C] -> [C, 1, ..., 1]: scales axis 1 of [N, C, d1, ...].
    std::vector<int64_t> shape(out->dims->size() - 1, 1);
    shape[0] = static_cast<int64_t>(o.class_weights.size());
    Value* w = b.op("Reshape", {weights, b.int64s(shape, {static_cast<int64_t>(shape.size())}, "shape")}, "weights");
    weighted = b.op("Mul", {log_prob, w}, "weighted_log_prob");
  }
  Value* per_target = b.op("ReduceSum", {weighted, b.int64s({1}, {1}, "class_axis")}, "class_sum",
                           {{"keepdims", int64_t{0}}});
  Value* ignored = b.op("Equal", {target, b.int64s({o.ignore_index}, {}, "ignore_index")}, "ignored", {}, DType::Bool);
  Value* zero = b.scalar(0, "zero");
  Value* smooth = b.reduce_all(b.op("Where", {ignored, zero, per_target}, "kept"), "sum");
  if (o.reduction == "mean") {
    Value* target_weight = b.scalar(1, "one");
    if (weights) {
      Value* index = b.op("Where", {ignored, b.int64s({0}, {}, "zero_index"), target}, "safe_target", {}, DType::Int64);
      target_weight = b.op("Gather", {weights, index}, "target_weight");
    }
    Value* total_weight = b.reduce_all(b.op("Where", {ignored, zero, target_weight}, "kept_weight"), "sum");
    smooth = b.op("Div", {smooth, total_weight}, "smooth_mean");
  }
  // `per_target` holds +sum w log_prob: the minus sign goes into the coefficient.
  Value* coef = b.op("Div", {b.scalar(-o.label_smoothing, "smoothing"), b.dim_size(out, 1)}, "smooth_coef");
  return b.op("Add", {b.op("Mul", {nll, b.scalar(1 - o.label_smoothing, "nll_coef")}, "nll_part"),
                      b.op("Mul", {smooth, coef}, "smooth_part")},
              "cross_entropy_smoothed");
}

Value* classification_loss(LossBuilder& b, Value* out, Value* target, const LossOptions& o) {
  if (out->dims && out->dims->size() < 2)
    throw ModelError("loss '" + o.kind + "' needs an output of shape [N, C, d1, ...]; '" + out->name + "' is " +
                     dtype_name(out->dtype) + dims_str(*out->dims));
  std::vector<Value*> inputs{out, target};
  Value* weights = nullptr;
  if (!o.class_weights.empty()) {
    check_length("class_weights", o.class_weights, out, 1, false);
    weights = b.constant(o.class_weights, {static_cast<int64_t>(o.class_weights.size())}, "class_weights");
    inputs.push_back(weights);
  }
  std::map<std::string, AttributeValue> attrs{{"reduction", o.reduction}, {"ignore_index", o.ignore_index}};
  if (o.kind == "nll") return b.op("NegativeLogLikelihoodLoss", inputs, "nll", attrs);
  if (o.label_smoothing == 0) return b.op("SoftmaxCrossEntropyLoss", inputs, "cross_entropy", attrs);
  auto [nll, log_prob] = b.op2("SoftmaxCrossEntropyLoss", inputs, "cross_entropy", attrs);
  return label_smoothed(b, out, nll, log_prob, target, weights, o);
}

// |d| < threshold: quad * d^2 / 2, else lin * (|d| - threshold / 2); continuous with a
// continuous derivative at |d| = threshold. smooth_l1: (beta, 1 / beta, 1); huber: (delta, 1, delta).
Value* piecewise_quadratic(LossBuilder& b, Value* d, double threshold, double quad, double lin) {
  Value* a = b.op("Abs", {d}, "abs");
  Value* inner = b.op("Less", {a, b.scalar(threshold, "threshold")}, "inner", {}, DType::Bool);
  Value* q = b.op("Mul", {b.op("Mul", {d, d}, "square"), b.scalar(quad / 2, "quad")}, "quadratic");
  Value* l = b.op("Sub", {a, b.scalar(threshold / 2, "half_threshold")}, "linear");
  if (lin != 1) l = b.op("Mul", {l, b.scalar(lin, "slope")}, "linear_scaled");
  return b.op("Where", {inner, q, l}, "piecewise");
}

// torch's overflow-free form: (1 - y) x + (1 + (pw - 1) y) softplus(-x).
Value* bce_with_logits(LossBuilder& b, Value* x, Value* y, const LossOptions& o) {
  Value* positive = b.op("Softplus", {b.op("Neg", {x}, "neg_logits")}, "neg_log_sigmoid");
  if (!o.pos_weight.empty()) {
    check_length("pos_weight", o.pos_weight, x, -1, true);
    std::vector<double> pw_minus_one;
    for (double w : o.pos_weight) pw_minus_one.push_back(w - 1);
    Value* pw = b.constant(pw_minus_one, {static_cast<int64_t>(pw_minus_one.size())}, "pos_weight_minus_one");
    Value* scale = b.op("Add", {b.op("Mul", {pw, y}, "pos_weight_y"), b.scalar(1, "one")}, "log_weight");
    positive = b.op("Mul", {positive, scale}, "weighted_positive");
  }
  Value* negative = b.op("Mul", {b.op("Sub", {b.scalar(1, "one"), y}, "one_minus_y"), x}, "negative");
  return b.op("Add", {negative, positive}, "bce");
}

// target (exp(target) with log_target) * (log target - input); xlogy makes target 0 give 0.
Value* kl_div(LossBuilder& b, Value* x, Value* t, const LossOptions& o) {
  if (o.log_target) return b.op("Mul", {b.op("Exp", {t}, "target_prob"), b.op("Sub", {t, x}, "log_ratio")}, "kl");
  Value* is_zero = b.op("Equal", {t, b.scalar(0, "zero")}, "target_zero", {}, DType::Bool);
  Value* safe = b.op("Where", {is_zero, b.scalar(1, "one"), t}, "safe_target");
  return b.op("Mul", {t, b.op("Sub", {b.op("Log", {safe}, "log_target"), x}, "log_ratio")}, "kl");
}

Value* elementwise_loss(LossBuilder& b, Value* out, Value* target, const LossOptions& o) {
  Value* e = nullptr;
  if (o.kind == "bce_with_logits") {
    e = bce_with_logits(b, out, target, o);
  } else if (o.kind == "kl_div") {
    e = kl_div(b, out, target, o);
    if (o.reduction == "batchmean")
      return b.op("Div", {b.reduce_all(e, "sum"), b.dim_size(out, 0)}, "batchmean");
  } else {
    Value* d = b.op("Sub", {out, target}, "diff");
    if (o.kind == "mse") e = b.op("Mul", {d, d}, "square");
    else if (o.kind == "l1" || (o.kind == "smooth_l1" && o.beta == 0)) e = b.op("Abs", {d}, "abs");
    else if (o.kind == "smooth_l1") e = piecewise_quadratic(b, d, o.beta, 1 / o.beta, 1);
    else e = piecewise_quadratic(b, d, o.delta, 1, o.delta);  // huber
  }
  return b.reduce_all(e, o.reduction);
}

}  // namespace

Value* attach_loss(Graph& g, const LossOptions& o, const std::map<std::string, std::string>& metadata) {
  check_options(o);
  if (o.kind == "output") return attach_output_loss(g, o);
  if (o.kind == "custom") return attach_custom_loss(g, o);
  if (is_detection_loss(o.kind)) return attach_detection_loss(g, o, metadata);

  Value* out = model_output(g, o.output);
  if (!is_floating(out->dtype))
    throw ModelError("the loss needs a float output, '" + out->name + "' is " + dtype_name(out->dtype));
  if (g.find_value(o.target))
    throw ModelError("the target name '" + o.target + "' is already a value of the model; choose another");
  const bool classification = contains(kClassification, o.kind);
  std::optional<Dims> target_dims = out->dims;
  if (classification && out->dims && out->dims->size() >= 2) target_dims->erase(target_dims->begin() + 1);
  else if (classification) target_dims.reset();
  Value* target = g.add_value(o.target, classification ? DType::Int64 : out->dtype, target_dims);
  target->kind = ValueKind::Input;
  g.inputs.push_back(target);

  LossBuilder b(g, out->dtype);
  Value* loss = o.kind == "dice"               ? attach_dice(b, out, target, o, nullptr)
                : o.kind == "cross_entropy_dice" ? attach_dice(b, out, target, o, classification_loss(b, out, target, o))
                : classification                 ? classification_loss(b, out, target, o)
                                                 : elementwise_loss(b, out, target, o);
  loss->dims = Dims{};
  return loss;
}

}  // namespace onnxtrain::graph
