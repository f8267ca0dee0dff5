// The Dice loss kinds of semantic segmentation, as standard ONNX ops:
//   dice:               mean_c (1 - D_c)   (a weighted mean with class_weights)
//   cross_entropy_dice: cross_entropy + dice_weight * dice
// with the soft Dice of class c over the whole batch (every sample and pixel at once,
// segmentation_models_pytorch's default), p = softmax over C, t = one-hot targets, both
// zero at ignored pixels:
//   D_c = (2 sum(p_c t_c) + smooth) / (sum(p_c) + sum(t_c) + smooth)
// Every class counts in the mean, also one absent from a batch's targets: its D_c is
// smooth / (sum(p_c) + smooth), near 1 (no loss) while the model predicts it nowhere.
#include <cmath>

#include "graph/loss_builder.h"
#include "onnxtrain/errors.h"

namespace onnxtrain::graph {

namespace {

bool is_dice(const std::string& kind) { return kind == "dice" || kind == "cross_entropy_dice"; }

}  // namespace

void check_dice_options(const LossOptions& o) {
  const LossOptions d;
  if (o.dice_smooth != d.dice_smooth && !is_dice(o.kind))
    throw DataError("loss option 'dice_smooth' does not apply to loss '" + o.kind + "' (only to dice, cross_entropy_dice)");
  if (o.dice_weight != d.dice_weight && o.kind != "cross_entropy_dice")
    throw DataError("loss option 'dice_weight' does not apply to loss '" + o.kind + "' (only to cross_entropy_dice)");
  if (!is_dice(o.kind)) return;
  if (o.reduction != "mean")
    throw DataError("loss '" + o.kind + "' averages over classes; option 'reduction' must be mean, not " + o.reduction);
  if (!(o.dice_smooth >= 0) || !std::isfinite(o.dice_smooth))
    throw DataError("loss option 'dice_smooth' must be a finite value >= 0, got " + std::to_string(o.dice_smooth));
  if (!(o.dice_weight >= 0) || !std::isfinite(o.dice_weight))
    throw DataError("loss option 'dice_weight' must be a finite value >= 0, got " + std::to_string(o.dice_weight));
}

Value* attach_dice(LossBuilder& b, Value* out, Value* target, const LossOptions& o, Value* cross_entropy) {
  if (!out->dims || out->dims->size() < 2)
    throw ModelError("loss '" + o.kind + "' needs an output of shape [N, C, d1, ...] of known rank; '" + out->name +
                     "' is " + dtype_name(out->dtype) + (out->dims ? dims_str(*out->dims) : std::string(" of unknown rank")));
  const auto rank = static_cast<int64_t>(out->dims->size());
  const DType dtype = b.dtype();
  Value* prob = b.op("Softmax", {out}, "dice_prob", {{"axis", int64_t{1}}});
  Value* ignored = b.op("Equal", {target, b.int64s({o.ignore_index}, {}, "dice_ignore_index")}, "dice_ignored", {},
                        DType::Bool);
  Value* safe = b.op("Where", {ignored, b.int64s({0}, {}, "dice_zero_index"), target}, "dice_safe_target", {},
                     DType::Int64);
  Value* hot = b.op("OneHot", {safe, b.dim_size(out, 1), b.constant({0, 1}, {2}, "dice_off_on")}, "dice_one_hot",
                    {{"axis", int64_t{1}}});
  Value* kept = b.op("Cast", {b.op("Not", {ignored}, "dice_kept_bool", {}, DType::Bool)}, "dice_kept",
                     {{"to", static_cast<int64_t>(dtype)}});
  Value* keep = b.op("Unsqueeze", {kept, b.int64s({1}, {1}, "dice_class_axis")}, "dice_keep");
  Value* p = b.op("Mul", {prob, keep}, "dice_p");
  Value* t = b.op("Mul", {hot, keep}, "dice_t");
  // Sums over every axis but the classes: [C].
  std::vector<int64_t> axes{0};
  for (int64_t a = 2; a < rank; ++a) axes.push_back(a);
  Value* axes_value = b.int64s(axes, {static_cast<int64_t>(axes.size())}, "dice_axes");
  auto per_class = [&](Value* v, const char* hint) {
    return b.op("ReduceSum", {v, axes_value}, hint, {{"keepdims", int64_t{0}}});
  };
  Value* smooth = b.scalar(o.dice_smooth, "dice_smooth");
  Value* numerator = b.op("Add", {b.op("Mul", {per_class(b.op("Mul", {p, t}, "dice_pt"), "dice_intersection"),
                                                b.scalar(2, "dice_two")}, "dice_twice"), smooth}, "dice_numerator");
  Value* denominator = b.op("Add", {b.op("Add", {per_class(p, "dice_p_sum"), per_class(t, "dice_t_sum")}, "dice_sums"),
                                    smooth}, "dice_denominator");
  Value* loss_c = b.op("Sub", {b.scalar(1, "dice_one"), b.op("Div", {numerator, denominator}, "dice_coefficient")},
                       "dice_per_class");
  Value* dice = nullptr;
  if (o.class_weights.empty()) {
    dice = b.reduce_all(loss_c, "mean");
  } else {
    const Dim& classes = (*out->dims)[1];
    if (classes.known() && classes.value != static_cast<int64_t>(o.class_weights.size()))
      throw DataError("loss option 'class_weights' has " + std::to_string(o.class_weights.size()) + " values; the output '" +
                      out->name + "' " + dims_str(*out->dims) + " has " + std::to_string(classes.value) + " classes");
    double total = 0;
    for (double w : o.class_weights) total += w;
    if (!(total > 0)) throw DataError("loss option 'class_weights' must sum to a positive value for loss '" + o.kind + "'");
    std::vector<double> normalised;
    for (double w : o.class_weights) normalised.push_back(w / total);
    Value* w = b.constant(normalised, {static_cast<int64_t>(normalised.size())}, "dice_class_weights");
    dice = b.reduce_all(b.op("Mul", {loss_c, w}, "dice_weighted"), "sum");
  }
  if (!cross_entropy) return dice;
  return b.op("Add", {cross_entropy, b.op("Mul", {dice, b.scalar(o.dice_weight, "dice_weight")}, "dice_part")},
              "cross_entropy_dice");
}

}  // namespace onnxtrain::graph
