// ai.onnxtrain YoloV5Loss: Ultralytics YOLOv5's ComputeLoss (utils/loss.py, v7.0) as one
// node, with its YoloV5LossGrad kernel and gradient rule. docs/detection.md has the formulas.
//   inputs  boxes [N, B, 6] (valid, class, cx, cy, w, h; normalised to the input image),
//           p_0 .. p_{L-1}: the raw head outputs, level by level
//   outputs loss (scalar), parts [3] = weighted (box, obj, cls), both of p's element type
//   attributes num_classes (required), anchors (L*A*2 floats in input pixels, level-major),
//           image_size [H, W] (required), layout "flat" ([N, A*(5+C), H_l, W_l], channel
//           a*(5+C)+k) or "split" ([N, A, H_l, W_l, 5+C]), box, obj, cls, anchor_t, balance,
//           label_smoothing
// Target assignment (anchor matching, neighbour cells) and the objectness targets (the
// detached CIoU) are recomputed from the same inputs by the gradient kernel: they are
// constants of the gradient, as in Ultralytics, so both kernels share one computation.
// Unlike Ultralytics, the loss is not multiplied by the batch size.
#include <algorithm>
#include <cmath>

#include "ops/box_iou_loss.h"
#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

namespace {

struct Level {
  int64_t h = 0, w = 0;
  double stride = 0;
};

struct V5Config {
  int64_t classes = 0, anchors_per_level = 0;
  std::vector<double> anchors;  // input pixels, [L][A][2]
  std::vector<Level> levels;
  bool split = false;
  double box = 0.05, obj = 1.0, cls = 0.5, anchor_t = 4.0, label_smoothing = 0;
  std::vector<double> balance;

  int64_t outputs() const { return 5 + classes; }
};

std::vector<double> default_balance(size_t levels) {
  if (levels == 3) return {4.0, 1.0, 0.4};
  if (levels == 5) return {4.0, 1.0, 0.25, 0.06, 0.02};
  return std::vector<double>(levels, 1.0);
}

// Reads the attributes and checks the input shapes against them (the op's shape rule).
V5Config parse_config(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() < 2) fail(node, "needs the inputs boxes, p_0, ..., p_{L-1}");
  for (size_t i = 0; i < in.size(); ++i)
    if (!in[i].present) fail(node, "input " + std::to_string(i) + " is missing");
  dispatch_float(in[0].dtype, node, [](auto) {});
  const Shape& bs = in[0].shape;
  if (bs.size() != 3 || bs[2] != 6)
    fail_shape(node, "boxes must be [N, B, 6] (valid, class, cx, cy, w, h), got " + shape_str(bs));
  V5Config c;
  if (!node.has_attr("num_classes")) fail(node, "needs the attribute num_classes");
  c.classes = node.attr_int("num_classes");
  if (c.classes < 1) fail(node, "num_classes must be >= 1, got " + std::to_string(c.classes));
  const std::string layout = node.attr_string("layout", "flat");
  if (layout != "flat" && layout != "split") fail(node, "layout must be 'flat' or 'split', got '" + layout + "'");
  c.split = layout == "split";
  const std::vector<int64_t> image = node.attr_ints("image_size");
  if (image.size() != 2 || image[0] <= 0 || image[1] <= 0) fail(node, "needs the attribute image_size = [H, W] > 0");
  const size_t levels = in.size() - 1;
  for (float a : node.attr_floats("anchors")) c.anchors.push_back(a);
  if (c.anchors.empty() || c.anchors.size() % (2 * levels) != 0)
    fail(node, "anchors must hold L*A*2 values (w, h in input pixels) for L = " + std::to_string(levels) +
                   " levels, got " + std::to_string(c.anchors.size()));
  c.anchors_per_level = static_cast<int64_t>(c.anchors.size() / (2 * levels));
  for (double a : c.anchors)
    if (!(a > 0)) fail(node, "anchors must be > 0");
  const int64_t a = c.anchors_per_level, no = c.outputs();
  for (size_t l = 0; l < levels; ++l) {
    const Shape& s = in[l + 1].shape;
    if (in[l + 1].dtype != in[1].dtype) fail(node, "p_" + std::to_string(l) + " must have p_0's element type");
    const Shape want = c.split ? Shape{bs[0], a, -1, -1, no} : Shape{bs[0], a * no, -1, -1};
    bool ok = s.size() == want.size();
    for (size_t d = 0; ok && d < s.size(); ++d) ok = want[d] < 0 || s[d] == want[d];
    if (!ok)
      fail_shape(node, "p_" + std::to_string(l) + " must be " +
                           (c.split ? "[N, A, H, W, 5+C] = [" : "[N, A*(5+C), H, W] = [") + std::to_string(bs[0]) +
                           ", " + (c.split ? std::to_string(a) + ", H, W, " + std::to_string(no) : std::to_string(a * no) + ", H, W") +
                           "] (A = " + std::to_string(a) + " anchors, C = " + std::to_string(c.classes) + "), got " +
                           shape_str(s));
    const int64_t h = s[2], w = s[3];
    if (h <= 0 || w <= 0 || image[0] % h != 0 || image[1] % w != 0 || image[0] / h != image[1] / w)
      fail_shape(node, "p_" + std::to_string(l) + " is " + std::to_string(h) + "x" + std::to_string(w) +
                           ": image_size " + std::to_string(image[0]) + "x" + std::to_string(image[1]) +
                           " must be an integral multiple of it, with the same stride in H and W");
    c.levels.push_back({h, w, static_cast<double>(image[0] / h)});
  }
  c.box = node.attr_float("box", 0.05f);
  c.obj = node.attr_float("obj", 1.0f);
  c.cls = node.attr_float("cls", 0.5f);
  c.anchor_t = node.attr_float("anchor_t", 4.0f);
  c.label_smoothing = node.attr_float("label_smoothing", 0.0f);
  if (!(c.anchor_t > 1)) fail(node, "anchor_t must be > 1, got " + std::to_string(c.anchor_t));
  if (!(c.label_smoothing >= 0 && c.label_smoothing <= 1)) fail(node, "label_smoothing must be in [0, 1]");
  const std::vector<float> balance = node.attr_floats("balance");
  if (balance.empty()) c.balance = default_balance(levels);
  else c.balance.assign(balance.begin(), balance.end());
  if (c.balance.size() != levels)
    fail(node, "balance has " + std::to_string(c.balance.size()) + " values for " + std::to_string(levels) + " levels");
  return c;
}

// One target assigned to one cell and anchor of a level (build_targets' output row).
struct Match {
  int64_t n, a, gj, gi, cls;
  double tbox[4];     // (x, y) in the cell, (w, h) in grid units
  double anchor[2];   // in grid units
};

struct Target {
  int64_t n, cls;
  double cx, cy, w, h;  // normalised
};

template <typename B>
std::vector<Target> read_targets(const Tensor& boxes) {
  const B* p = boxes.data<B>();
  const int64_t n = boxes.dim(0), rows = boxes.dim(1);
  std::vector<Target> t;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < rows; ++r) {
      const B* row = p + (i * rows + r) * 6;
      if (row[0] > 0) t.push_back({i, static_cast<int64_t>(row[1]), row[2], row[3], row[4], row[5]});
    }
  return t;
}

// build_targets for one level, in Ultralytics' order (offset, anchor, target), which decides
// which match writes a cell's objectness target last.
std::vector<Match> build_targets(const V5Config& c, size_t level, const std::vector<Target>& targets) {
  constexpr double kG = 0.5;
  constexpr double kOff[5][2] = {{0, 0}, {kG, 0}, {0, kG}, {-kG, 0}, {0, -kG}};
  const Level& lv = c.levels[level];
  const double nx = static_cast<double>(lv.w), ny = static_cast<double>(lv.h);
  std::vector<Match> matches;
  for (int k = 0; k < 5; ++k)
    for (int64_t a = 0; a < c.anchors_per_level; ++a) {
      const double* anc = &c.anchors[(level * c.anchors_per_level + a) * 2];
      const double aw = anc[0] / lv.stride, ah = anc[1] / lv.stride;
      for (const Target& t : targets) {
        const double gx = t.cx * nx, gy = t.cy * ny, gw = t.w * nx, gh = t.h * ny;
        const double rw = gw / aw, rh = gh / ah;
        if (!(std::max(std::max(rw, 1 / rw), std::max(rh, 1 / rh)) < c.anchor_t)) continue;
        const double gxi = nx - gx, gyi = ny - gy;
        const bool take[5] = {true, std::fmod(gx, 1.0) < kG && gx > 1, std::fmod(gy, 1.0) < kG && gy > 1,
                              std::fmod(gxi, 1.0) < kG && gxi > 1, std::fmod(gyi, 1.0) < kG && gyi > 1};
        if (!take[k]) continue;
        // .long() truncates; the clamp happens before tbox is formed, as in v7.0.
        const auto gi = std::clamp(static_cast<int64_t>(gx - kOff[k][0]), int64_t{0}, lv.w - 1);
        const auto gj = std::clamp(static_cast<int64_t>(gy - kOff[k][1]), int64_t{0}, lv.h - 1);
        matches.push_back({t.n, a, gj, gi, t.cls, {gx - static_cast<double>(gi), gy - static_cast<double>(gj), gw, gh},
                           {aw, ah}});
      }
    }
  return matches;
}

double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }
// BCEWithLogits of one element: (1 - y) x + softplus(-x), overflow-free.
double bce(double x, double y) { return (1 - y) * x + std::max(-x, 0.0) + std::log1p(std::exp(-std::abs(x))); }

// Where element (n, a, y, x, k) of a level lives.
struct Indexer {
  int64_t a, h, w, no;
  bool split;
  int64_t cell(int64_t n, int64_t anchor, int64_t y, int64_t x) const {
    return split ? (((n * a + anchor) * h + y) * w + x) * no : ((n * a + anchor) * no * h + y) * w + x;
  }
  int64_t step() const { return split ? 1 : h * w; }  // between k and k + 1
};

// The loss (upstream 1) and its weighted parts; with `grads`, also writes upstream * dloss/dp_l
// into grads[l] (zeroed first).
template <typename T>
double yolo_v5_loss(const V5Config& c, const Tensor& boxes, const std::vector<const Tensor*>& p, double parts[3],
                    const std::vector<T*>& grads, double upstream) {
  const std::vector<Target> targets =
      boxes.dtype() == DType::Float ? read_targets<float>(boxes) : read_targets<double>(boxes);
  const int64_t batch = boxes.dim(0), no = c.outputs();
  const double cp = 1 - 0.5 * c.label_smoothing, cn = 0.5 * c.label_smoothing;  // smooth_BCE
  double lbox = 0, lobj = 0, lcls = 0;
  for (size_t l = 0; l < c.levels.size(); ++l) {
    const Level& lv = c.levels[l];
    const Indexer ix{c.anchors_per_level, lv.h, lv.w, no, c.split};
    const T* x = p[l]->data<T>();
    T* g = grads.empty() ? nullptr : grads[l];
    if (g) std::fill(g, g + p[l]->numel(), T(0));
    const int64_t cells = batch * c.anchors_per_level * lv.h * lv.w;
    std::vector<double> tobj(static_cast<size_t>(cells), 0.0);
    const std::vector<Match> matches = build_targets(c, l, targets);
    const double n = static_cast<double>(matches.size());
    double box_sum = 0, cls_sum = 0;
    for (const Match& m : matches) {
      const int64_t base = ix.cell(m.n, m.a, m.gj, m.gi), st = ix.step();
      double s[4], pbox[4];
      for (int k = 0; k < 4; ++k) s[k] = sigmoid(x[base + k * st]);
      pbox[0] = s[0] * 2 - 0.5, pbox[1] = s[1] * 2 - 0.5;
      pbox[2] = 4 * s[2] * s[2] * m.anchor[0], pbox[3] = 4 * s[3] * s[3] * m.anchor[1];
      // d lbox / d ciou = -box / n, times the loss's upstream gradient.
      const CiouResult r = ciou(pbox, m.tbox, BoxFormat::kCenter, -c.box * upstream / n);
      box_sum += 1 - r.ciou;
      tobj[static_cast<size_t>(((m.n * c.anchors_per_level + m.a) * lv.h + m.gj) * lv.w + m.gi)] = std::max(r.ciou, 0.0);
      if (g) {
        g[base] += static_cast<T>(r.grad[0] * 2 * s[0] * (1 - s[0]));
        g[base + st] += static_cast<T>(r.grad[1] * 2 * s[1] * (1 - s[1]));
        g[base + 2 * st] += static_cast<T>(r.grad[2] * 8 * s[2] * m.anchor[0] * s[2] * (1 - s[2]));
        g[base + 3 * st] += static_cast<T>(r.grad[3] * 8 * s[3] * m.anchor[1] * s[3] * (1 - s[3]));
      }
      if (c.classes == 1) continue;
      const double dcls = c.cls * upstream / (n * static_cast<double>(c.classes));
      for (int64_t k = 0; k < c.classes; ++k) {
        const double xv = x[base + (5 + k) * st], y = k == m.cls ? cp : cn;
        cls_sum += bce(xv, y);
        if (g) g[base + (5 + k) * st] += static_cast<T>(dcls * (sigmoid(xv) - y));
      }
    }
    if (n > 0) {
      lbox += box_sum / n;
      if (c.classes > 1) lcls += cls_sum / (n * static_cast<double>(c.classes));
    }
    // Objectness over every cell: BCE mean times the level's balance.
    const double dobj = c.obj * c.balance[l] * upstream / static_cast<double>(cells);
    double obj_sum = 0;
    for (int64_t i = 0; i < cells; ++i) {
      const int64_t xi = i % lv.w, yi = (i / lv.w) % lv.h, ai = (i / (lv.w * lv.h)) % c.anchors_per_level,
                    ni = i / (lv.w * lv.h * c.anchors_per_level);
      const int64_t at = ix.cell(ni, ai, yi, xi) + 4 * ix.step();
      obj_sum += bce(x[at], tobj[static_cast<size_t>(i)]);
      if (g) g[at] += static_cast<T>(dobj * (sigmoid(x[at]) - tobj[static_cast<size_t>(i)]));
    }
    lobj += obj_sum / static_cast<double>(cells) * c.balance[l];
  }
  parts[0] = lbox * c.box, parts[1] = lobj * c.obj, parts[2] = lcls * c.cls;
  return parts[0] + parts[1] + parts[2];
}

std::vector<const Tensor*> level_inputs(KernelContext& ctx, size_t first) {
  std::vector<const Tensor*> p;
  for (size_t i = first; i < ctx.num_inputs(); ++i) p.push_back(&ctx.input(i));
  return p;
}

std::unique_ptr<Kernel> make_yolo_v5_loss(const Node& node, const std::vector<InputInfo>& in) {
  const V5Config c = parse_config(node, in);
  return make_function_kernel([c](KernelContext& ctx) {
    const DType dt = ctx.input(1).dtype();
    dispatch_float(dt, ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      double parts[3];
      const double loss = yolo_v5_loss<T>(c, ctx.input(0), level_inputs(ctx, 1), parts, {}, 1.0);
      ctx.output(0, dt, {}).data<T>()[0] = static_cast<T>(loss);
      if (ctx.wants_output(1)) {
        T* out = ctx.output(1, dt, {3}).data<T>();
        for (int k = 0; k < 3; ++k) out[k] = static_cast<T>(parts[k]);
      }
    });
  });
}

// Inputs (dloss, boxes, p_0, ...); outputs dp_0, ... (those wanted).
std::unique_ptr<Kernel> make_yolo_v5_loss_grad(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() < 3 || !in[0].present) fail(node, "needs the inputs dloss, boxes, p_0, ..., p_{L-1}");
  if (in[0].dtype != in[2].dtype) fail(node, "dloss must have p_0's element type");
  const V5Config c = parse_config(node, {in.begin() + 1, in.end()});
  return make_function_kernel([c](KernelContext& ctx) {
    const DType dt = ctx.input(2).dtype();
    dispatch_float(dt, ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const std::vector<const Tensor*> p = level_inputs(ctx, 2);
      std::vector<T*> grads;
      std::vector<std::vector<T>> scratch;  // for the levels whose gradient is not wanted
      for (size_t l = 0; l < p.size(); ++l) {
        if (ctx.wants_output(l)) {
          grads.push_back(ctx.output(l, dt, p[l]->shape()).template data<T>());
        } else {
          scratch.emplace_back(static_cast<size_t>(p[l]->numel()));
          grads.push_back(scratch.back().data());
        }
      }
      double parts[3];
      yolo_v5_loss<T>(c, ctx.input(1), p, parts, grads, static_cast<double>(ctx.input(0).data<T>()[0]));
    });
  });
}

void yolo_v5_gradient(GradientBuilder& b) {
  if (b.has_GO(1))
    fail(b.node(), "output 'parts' (the weighted box/obj/cls losses) is for reporting and has no gradient; "
                   "differentiate output 0, the loss");
  std::vector<Value*> inputs{b.GO(0)};
  std::vector<bool> wanted;
  for (size_t i = 0; i < b.node().inputs.size(); ++i) {
    inputs.push_back(b.I(i));
    if (i > 0) wanted.push_back(b.needs_grad(i));
  }
  const std::vector<Value*> grads = b.op_masked("YoloV5LossGrad", inputs, wanted, b.node().attributes);
  for (size_t l = 0; l < grads.size(); ++l)
    if (grads[l]) b.GI(l + 1, grads[l]);
}

}  // namespace

void register_yolo_v5_loss_ops(Registry& r) {
  const char* d = graph::kTrainingDomain;
  r.add({d, "YoloV5Loss", 1, INT_MAX, make_yolo_v5_loss, "own", yolo_v5_gradient, {0}});
  r.add({d, "YoloV5LossGrad", 1, INT_MAX, make_yolo_v5_loss_grad, "own"});
}

}  // namespace onnxtrain::ops
