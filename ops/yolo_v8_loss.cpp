// ai.onnxtrain.YoloV8Loss: the YOLOv8 detection loss (Ultralytics v8DetectionLoss, v8.0/8.1)
// of an anchor-free DFL head, with its task-aligned target assignment on the host.
//
//   YoloV8Loss(boxes, p_0, ..., p_{L-1}) -> (loss, parts)
//   boxes [N, B, 6]: (valid, class, cx, cy, w, h) normalised to the input image; rows with
//                    valid = 0 are padding.
//   p_i   [N, 4 * reg_max + C, H_i, W_i]: the l, t, r, b distance distributions (channel
//                    side * reg_max + bin), then C class logits.
//   loss: scalar = sum(parts); parts [3] = (box * box_loss, cls * cls_loss, dfl * dfl_loss).
// Attributes: num_classes (required), image_size [H, W] (required; stride_i = H / H_i =
// W / W_i), reg_max 16, box 7.5, cls 0.5, dfl 1.5, topk 10, alpha 0.5, beta 6.0.
//
// Per level, anchors are the cell centres (x + 0.5, y + 0.5) in grid units. A side's
// distance is the expectation of softmax(bins) over 0..reg_max-1, and the predicted box is
// (ax - l, ay - t, ax + r, ay + b). The assigner (ops/yolo_tal.h) sees it in pixels with the
// sigmoid of the class logits. With S = max(sum of target scores over the batch, 1) and
// w_a = the target score of foreground anchor a:
//   cls = sum over anchors and classes of BCEWithLogits(logit, target score) / S
//   box = sum_fg (1 - CIoU(pred_a, gt_a)) w_a / S         (grid units of a's level)
//   dfl = sum_fg mean over sides of CE(bins, left) wl + CE(bins, left + 1) (1 - wl), times w_a / S
// where the target distance d is clamped to [0, reg_max - 1.01], left = floor(d) and
// wl = left + 1 - d. Ultralytics returns loss * batch_size; we do not (docs/detection.md).
//
// The assignment and target scores are constants for the gradient, as in Ultralytics (its
// assigner runs under no_grad on detached predictions). YoloV8LossGrad(dLoss, boxes, p_0,
// ..., p_{L-1}) -> (dp_0, ..., dp_{L-1}) recomputes the assignment from the same inputs,
// which is deterministic. The parts output has no gradient.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "ops/box_iou_loss.h"
#include "ops/op_utils.h"
#include "ops/registry.h"
#include "ops/yolo_tal.h"

namespace onnxtrain::ops {

namespace {

struct Level {
  int64_t h = 0, w = 0, offset = 0;  // offset: index of the level's first anchor
  double stride = 0;
};

struct YoloV8Spec {
  int64_t num_classes = 0, reg_max = 16;
  double box = 7.5, cls = 0.5, dfl = 1.5;
  yolo::TalOptions tal;
  int64_t image_h = 0, image_w = 0;
  int64_t n = 0, num_rows = 0, num_anchors = 0;
  std::vector<Level> levels;
  DType dtype = DType::Undefined;
};

// `in` holds boxes then the predictions.
YoloV8Spec yolo_v8_spec(const Node& node, const std::vector<InputInfo>& in) {
  YoloV8Spec s;
  if (!node.has_attr("num_classes")) fail(node, "needs the attribute num_classes");
  s.num_classes = node.attr_int("num_classes");
  s.reg_max = node.attr_int("reg_max", 16);
  s.box = node.attr_float("box", 7.5f);
  s.cls = node.attr_float("cls", 0.5f);
  s.dfl = node.attr_float("dfl", 1.5f);
  s.tal.topk = node.attr_int("topk", 10);
  s.tal.alpha = node.attr_float("alpha", 0.5f);
  s.tal.beta = node.attr_float("beta", 6.0f);
  if (s.num_classes < 1) fail(node, "num_classes must be >= 1, got " + std::to_string(s.num_classes));
  if (s.reg_max < 2) fail(node, "reg_max must be >= 2, got " + std::to_string(s.reg_max));
  if (s.tal.topk < 1) fail(node, "topk must be >= 1, got " + std::to_string(s.tal.topk));
  const std::vector<int64_t> size = node.attr_ints("image_size");
  if (size.size() != 2 || size[0] < 1 || size[1] < 1) fail(node, "needs the attribute image_size = [H, W] (positive)");
  s.image_h = size[0];
  s.image_w = size[1];

  if (in.size() < 2) fail(node, "needs the inputs boxes and at least one prediction p_0");
  for (size_t i = 0; i < in.size(); ++i)
    if (!in[i].present) fail(node, "input " + std::to_string(i) + " is missing");
  dispatch_float(in[0].dtype, node, [](auto) {});
  s.dtype = in[0].dtype;
  const Shape& boxes = in[0].shape;
  if (boxes.size() != 3 || boxes[2] != 6)
    fail_shape(node, "boxes must have shape [N, B, 6] (valid, class, cx, cy, w, h), got " + shape_str(boxes));
  s.n = boxes[0];
  s.num_rows = boxes[1];
  const int64_t channels = 4 * s.reg_max + s.num_classes;
  for (size_t i = 1; i < in.size(); ++i) {
    const Shape& p = in[i].shape;
    const std::string name = "p_" + std::to_string(i - 1);
    if (in[i].dtype != s.dtype) fail(node, name + " must have the element type of boxes (" + dtype_name(s.dtype) + ")");
    if (p.size() != 4 || p[0] != s.n || p[1] != channels)
      fail_shape(node, name + " must have shape [N, 4 * reg_max + num_classes, H, W] = [" + std::to_string(s.n) + ", " +
                           std::to_string(channels) + ", H, W], got " + shape_str(p));
    if (p[2] < 1 || p[3] < 1 || s.image_h % p[2] != 0 || s.image_w % p[3] != 0 ||
        s.image_h / p[2] != s.image_w / p[3])
      fail_shape(node, name + " has grid " + std::to_string(p[2]) + "x" + std::to_string(p[3]) +
                           ", which does not divide image_size " + std::to_string(s.image_h) + "x" +
                           std::to_string(s.image_w) + " into one integral stride");
    s.levels.push_back({p[2], p[3], s.num_anchors, static_cast<double>(s.image_h / p[2])});
    s.num_anchors += p[2] * p[3];
  }
  return s;
}

// Softmax over the reg_max bins of one side (stride: the channel stride in elements) into
// `prob`; returns the expectation sum_k k prob_k and, in `lse`, the log-sum-exp.
template <typename T>
double side_distribution(const T* x, int64_t stride, int64_t bins, double* prob, double& lse) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t k = 0; k < bins; ++k) m = std::max(m, static_cast<double>(x[k * stride]));
  double sum = 0;
  for (int64_t k = 0; k < bins; ++k) sum += prob[k] = std::exp(static_cast<double>(x[k * stride]) - m);
  double expectation = 0;
  for (int64_t k = 0; k < bins; ++k) {
    prob[k] /= sum;
    expectation += prob[k] * static_cast<double>(k);
  }
  lse = m + std::log(sum);
  return expectation;
}

struct LossSums {
  double box = 0, cls = 0, dfl = 0;
};

template <typename T>
class YoloV8Computation {
 public:
  // grads: one per level, null when that gradient is not wanted (or for the forward).
  YoloV8Computation(const Node& node, const YoloV8Spec& s, const T* boxes, std::vector<const T*> preds)
      : node_(node), s_(s), boxes_(boxes), preds_(std::move(preds)) {}

  // Weighted parts (box, cls, dfl); writes dLoss * d loss / d p_i into grads[i] where set.
  std::array<double, 3> run(double dloss, const std::vector<T*>& grads) {
    const int64_t n = s_.n;
    std::vector<yolo::TalAssignment> assignments(static_cast<size_t>(n));
    std::vector<std::vector<yolo::GroundTruth>> gts(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) gts[i] = ground_truths(i);  // may throw: outside the parallel loops
#pragma omp parallel for schedule(dynamic) if (n > 1)
    for (int64_t i = 0; i < n; ++i) assignments[i] = assign_image(i, gts[i]);
    double score_sum = 0;
    for (const auto& a : assignments) score_sum += a.score_sum;
    const double norm = std::max(score_sum, 1.0);
    const bool want_grad = std::any_of(grads.begin(), grads.end(), [](T* g) { return g != nullptr; });
    const double g_box = dloss * s_.box / norm, g_cls = dloss * s_.cls / norm, g_dfl = dloss * s_.dfl / norm;

    double box = 0, cls = 0, dfl = 0;
#pragma omp parallel for schedule(dynamic) reduction(+ : box, cls, dfl) if (n > 1)
    for (int64_t i = 0; i < n; ++i) {
      const LossSums sums = image_loss(i, gts[i], assignments[i], want_grad ? &grads : nullptr, g_box, g_cls, g_dfl);
      box += sums.box;
      cls += sums.cls;
      dfl += sums.dfl;
    }
    return {box / norm * s_.box, cls / norm * s_.cls, dfl / norm * s_.dfl};
  }

 private:
  int64_t channels() const { return 4 * s_.reg_max + s_.num_classes; }
  // Channel 0 of image i at anchor `cell` of level l; channels are h * w apart.
  const T* at(int64_t i, size_t l, int64_t cell) const {
    const Level& lv = s_.levels[l];
    return preds_[l] + i * channels() * lv.h * lv.w + cell;
  }

  std::vector<yolo::GroundTruth> ground_truths(int64_t i) const {
    std::vector<yolo::GroundTruth> out;
    const double ih = static_cast<double>(s_.image_h), iw = static_cast<double>(s_.image_w);
    for (int64_t r = 0; r < s_.num_rows; ++r) {
      const T* row = boxes_ + (i * s_.num_rows + r) * 6;
      if (row[0] == T(0)) continue;
      const double cls = static_cast<double>(row[1]);
      if (!(cls >= 0 && cls < static_cast<double>(s_.num_classes)) || cls != std::floor(cls))
        fail(node_, "boxes[" + std::to_string(i) + ", " + std::to_string(r) + "] has class " + std::to_string(cls) +
                        ", which is not an integer in [0, num_classes = " + std::to_string(s_.num_classes) + ")");
      // Same operation order as the reference (scale, then half sizes).
      const double cx = row[2] * iw, cy = row[3] * ih, w = row[4] * iw, h = row[5] * ih;
      out.push_back({static_cast<int64_t>(cls), cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2});
    }
    return out;
  }

  yolo::TalAssignment assign_image(int64_t i, const std::vector<yolo::GroundTruth>& gts) const {
    if (gts.empty()) return yolo::assign_task_aligned(gts, nullptr, nullptr, s_.num_anchors, {}, s_.tal);
    const int64_t bins = s_.reg_max;
    std::vector<double> anchors(static_cast<size_t>(2 * s_.num_anchors)), pred(static_cast<size_t>(4 * s_.num_anchors));
    std::vector<double> prob(static_cast<size_t>(bins));
    for (size_t l = 0; l < s_.levels.size(); ++l) {
      const Level& lv = s_.levels[l];
      const int64_t hw = lv.h * lv.w;
      for (int64_t cell = 0; cell < hw; ++cell) {
        const int64_t a = lv.offset + cell;
        const double ax = static_cast<double>(cell % lv.w) + 0.5, ay = static_cast<double>(cell / lv.w) + 0.5;
        double d[4], lse;
        for (int side = 0; side < 4; ++side)
          d[side] = side_distribution(at(i, l, cell) + side * bins * hw, hw, bins, prob.data(), lse);
        anchors[2 * a] = ax * lv.stride;
        anchors[2 * a + 1] = ay * lv.stride;
        pred[4 * a] = (ax - d[0]) * lv.stride;
        pred[4 * a + 1] = (ay - d[1]) * lv.stride;
        pred[4 * a + 2] = (ax + d[2]) * lv.stride;
        pred[4 * a + 3] = (ay + d[3]) * lv.stride;
      }
    }
    auto class_score = [&](int64_t a, int64_t c) {
      size_t l = 0;
      while (l + 1 < s_.levels.size() && a >= s_.levels[l + 1].offset) ++l;
      const Level& lv = s_.levels[l];
      const double x = at(i, l, a - lv.offset)[(4 * bins + c) * lv.h * lv.w];
      return 1 / (1 + std::exp(-x));
    };
    return yolo::assign_task_aligned(gts, anchors.data(), pred.data(), s_.num_anchors, class_score, s_.tal);
  }

  // Unnormalised sums of image i; writes its gradient slices when grads is set.
  LossSums image_loss(int64_t i, const std::vector<yolo::GroundTruth>& gts, const yolo::TalAssignment& as,
                      const std::vector<T*>* grads, double g_box, double g_cls, double g_dfl) const {
    LossSums sums;
    const int64_t bins = s_.reg_max, nc = s_.num_classes;
    std::vector<double> prob(static_cast<size_t>(4 * bins));
    for (size_t l = 0; l < s_.levels.size(); ++l) {
      const Level& lv = s_.levels[l];
      const int64_t hw = lv.h * lv.w;
      T* grad = grads && (*grads)[l] ? (*grads)[l] + i * channels() * hw : nullptr;
      if (grad) std::fill(grad, grad + 4 * bins * hw, T(0));
      // Class loss: BCE(x, t) = max(x, 0) + log(1 + exp(-|x|)) - x t, whose gradient is
      // sigmoid(x) - t. Every (anchor, class) has the first two terms; only a foreground
      // anchor's own class has a target t (subtracted below). These N*A*C terms are most of
      // the op's time, so they run in the input's precision (float exp/log are about twice as
      // fast) and log replaces log1p (half the time; its extra precision for tiny exp(-|x|)
      // is lost in the sum anyway). The sum is in double.
      const T gc = static_cast<T>(g_cls);
      for (int64_t c = 0; c < nc; ++c) {
        const T* x = at(i, l, 0) + (4 * bins + c) * hw;
        T* gx = grad ? grad + (4 * bins + c) * hw : nullptr;
        double sum = 0;
        for (int64_t cell = 0; cell < hw; ++cell) {
          const T v = x[cell];
          const T e = std::exp(-std::abs(v));
          sum += static_cast<double>(std::max(v, T(0)) + std::log(1 + e));
          if (gx) gx[cell] = (v >= 0 ? 1 / (1 + e) : e / (1 + e)) * gc;
        }
        sums.cls += sum;
      }
      // Box and DFL losses over the foreground anchors.
      for (int64_t cell = 0; cell < hw; ++cell) {
        const int64_t a = lv.offset + cell;
        if (as.gt[a] < 0) continue;
        const double weight = as.score[a];
        const yolo::GroundTruth& gt = gts[as.gt[a]];
        const int64_t cls_channel = (4 * bins + gt.cls) * hw + cell;
        sums.cls -= static_cast<double>(at(i, l, 0)[cls_channel]) * weight;
        if (grad) grad[cls_channel] = static_cast<T>(static_cast<double>(grad[cls_channel]) - weight * g_cls);
        const double ax = static_cast<double>(cell % lv.w) + 0.5, ay = static_cast<double>(cell / lv.w) + 0.5;
        const T* x = at(i, l, cell);
        double d[4], lse[4];
        for (int side = 0; side < 4; ++side)
          d[side] = side_distribution(x + side * bins * hw, hw, bins, prob.data() + side * bins, lse[side]);
        const double pred[4] = {ax - d[0], ay - d[1], ax + d[2], ay + d[3]};
        const double target[4] = {gt.x1 / lv.stride, gt.y1 / lv.stride, gt.x2 / lv.stride, gt.y2 / lv.stride};
        const CiouResult iou = ciou(pred, target, BoxFormat::kCorners, -weight * g_box);
        sums.box += (1 - iou.ciou) * weight;
        // Distances of the target box's sides from the anchor: l, t, r, b.
        const double dist[4] = {ax - target[0], ay - target[1], target[2] - ax, target[3] - ay};
        // x1 = ax - l, y1 = ay - t, x2 = ax + r, y2 = ay + b.
        const double g_side[4] = {-iou.grad[0], -iou.grad[1], iou.grad[2], iou.grad[3]};
        double ce = 0;
        for (int side = 0; side < 4; ++side) {
          const double td = std::clamp(dist[side], 0.0, static_cast<double>(bins - 1) - 0.01);
          const int64_t left = static_cast<int64_t>(std::floor(td));
          const double wl = static_cast<double>(left + 1) - td, wr = 1 - wl;
          const T* xs = x + side * bins * hw;
          ce += (lse[side] - static_cast<double>(xs[left * hw])) * wl +
                (lse[side] - static_cast<double>(xs[(left + 1) * hw])) * wr;
          if (!grad) continue;
          const double* p = prob.data() + side * bins;
          const double g_ce = g_dfl * weight / 4;
          T* gs = grad + side * bins * hw + cell;
          for (int64_t k = 0; k < bins; ++k) {
            double g = g_side[side] * p[k] * (static_cast<double>(k) - d[side]) + g_ce * p[k];
            if (k == left) g -= g_ce * wl;
            if (k == left + 1) g -= g_ce * wr;
            gs[k * hw] = static_cast<T>(g);
          }
        }
        sums.dfl += ce / 4 * weight;
      }
    }
    return sums;
  }

  const Node& node_;
  const YoloV8Spec& s_;
  const T* boxes_;
  std::vector<const T*> preds_;
};

template <typename T>
std::vector<const T*> prediction_data(KernelContext& ctx, size_t first) {
  std::vector<const T*> out;
  for (size_t i = first; i < ctx.num_inputs(); ++i) out.push_back(ctx.input(i).data<T>());
  return out;
}

std::unique_ptr<Kernel> make_yolo_v8_loss(const Node& node, const std::vector<InputInfo>& in) {
  const YoloV8Spec spec = yolo_v8_spec(node, in);
  return make_function_kernel([spec](KernelContext& ctx) {
    dispatch_float(spec.dtype, ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      YoloV8Computation<T> computation(ctx.node(), spec, ctx.input(0).data<T>(), prediction_data<T>(ctx, 1));
      const std::array<double, 3> parts = computation.run(1.0, {});
      ctx.output(0, spec.dtype, {}).template data<T>()[0] = static_cast<T>(parts[0] + parts[1] + parts[2]);
      if (ctx.wants_output(1)) {
        T* out = ctx.output(1, spec.dtype, {3}).template data<T>();
        for (int k = 0; k < 3; ++k) out[k] = static_cast<T>(parts[k]);
      }
    });
  });
}

// in: dLoss, boxes, p_0, ..., p_{L-1}.
std::unique_ptr<Kernel> make_yolo_v8_loss_grad(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() < 3 || !in[0].present) fail(node, "needs the inputs dLoss, boxes and at least one prediction");
  const YoloV8Spec spec = yolo_v8_spec(node, std::vector<InputInfo>(in.begin() + 1, in.end()));
  if (in[0].dtype != spec.dtype || shape_numel(in[0].shape) != 1)
    fail(node, "dLoss must be a one-element " + dtype_name(spec.dtype) + " tensor, got " + dtype_name(in[0].dtype) +
                   shape_str(in[0].shape));
  std::vector<Shape> shapes;
  for (size_t i = 2; i < in.size(); ++i) shapes.push_back(in[i].shape);
  return make_function_kernel([spec, shapes](KernelContext& ctx) {
    dispatch_float(spec.dtype, ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      std::vector<T*> grads;
      for (size_t l = 0; l < shapes.size(); ++l)
        grads.push_back(ctx.wants_output(l) ? ctx.output(l, spec.dtype, shapes[l]).template data<T>() : nullptr);
      YoloV8Computation<T> computation(ctx.node(), spec, ctx.input(1).data<T>(), prediction_data<T>(ctx, 2));
      computation.run(static_cast<double>(ctx.input(0).data<T>()[0]), grads);
    });
  });
}

void yolo_v8_loss_gradient(GradientBuilder& b) {
  const Node& n = b.node();
  if (b.has_GO(1))
    fail(n, "its output 1 ('parts', the weighted box/cls/dfl losses for logging) has no gradient; train on output 0 "
            "(the loss)");
  std::vector<Value*> inputs{b.GO(0)};
  std::vector<bool> wanted;
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    inputs.push_back(b.I(i));
    if (i > 0) wanted.push_back(b.needs_grad(i));
  }
  const std::vector<Value*> grads = b.op_masked("YoloV8LossGrad", inputs, wanted, n.attributes);
  for (size_t i = 1; i < n.inputs.size(); ++i)
    if (b.needs_grad(i)) b.GI(i, grads[i - 1]);
}

}  // namespace

void register_yolo_v8_loss_ops(Registry& r) {
  const char* d = graph::kTrainingDomain;
  // The boxes (input 0) are labels: no gradient.
  r.add({d, "YoloV8Loss", 1, INT_MAX, make_yolo_v8_loss, "own (host-side task-aligned assigner)",
         yolo_v8_loss_gradient, {0}});
  r.add({d, "YoloV8LossGrad", 1, INT_MAX, make_yolo_v8_loss_grad, "own"});
}

}  // namespace onnxtrain::ops
