#pragma once
// Complete IoU (CIoU) of a predicted box against a target box, and its gradient with respect
// to the predicted box, exactly as Ultralytics' `bbox_iou(pred, target, CIoU=True)` computes
// it under torch autograd (the YOLOv5 and YOLOv8 box losses are 1 - CIoU):
//
//   iou   = inter / (w1 h1 + w2 h2 - inter + eps)
//   rho2  = squared distance of the centres, c2 = squared diagonal of the enclosing box + eps
//   v     = 4/pi^2 (atan(w2/h2) - atan(w1/h1))^2,  alpha = v / (v - iou + 1 + eps)
//   ciou  = iou - (rho2 / c2 + v alpha)
//
// eps = 1e-7. Corner boxes (x1, y1, x2, y2) take w = x2 - x1 and h = y2 - y1 + eps (the eps
// is inside the atan and the union, as Ultralytics writes it); centre boxes (cx, cy, w, h)
// use w and h directly (Ultralytics' xywh=True path). alpha is a constant for the gradient
// (Ultralytics computes it under no_grad). Where torch's min/max see equal operands the
// gradient is split in half between them, and clamp(0) passes the gradient at exactly 0:
// both are reproduced so identical and touching boxes agree with autograd too.
//
// Header-only and free of oneDNN so the host-side parts of the detection losses (target
// assignment, CIoU objectness targets) can use it. Arithmetic is in double whatever the
// storage type.
#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>

namespace onnxtrain::ops {

enum class BoxFormat { kCorners /* x1, y1, x2, y2 */, kCenter /* cx, cy, w, h */ };

struct CiouResult {
  double ciou = 0;                // the value bbox_iou(..., CIoU=True) returns
  double iou = 0;                 // the plain IoU that went into it
  std::array<double, 4> grad{};   // upstream * d ciou / d pred, in the format of pred
};

namespace box_iou_detail {

inline constexpr double kEps = 1e-7;

// torch.minimum/maximum backward: the whole gradient to the selected operand, half each
// when they are equal. Returns the share of the first operand.
inline double min_share(double a, double b) { return a < b ? 1.0 : (a == b ? 0.5 : 0.0); }
inline double max_share(double a, double b) { return a > b ? 1.0 : (a == b ? 0.5 : 0.0); }

struct Corners {
  double x1, y1, x2, y2, w, h;
};

template <typename T>
Corners corners(const T* box, BoxFormat format) {
  const double a = box[0], b = box[1], c = box[2], d = box[3];
  if (format == BoxFormat::kCenter) return {a - c / 2, b - d / 2, a + c / 2, b + d / 2, c, d};
  return {a, b, c, d, c - a, d - b + kEps};
}

}  // namespace box_iou_detail

// CIoU of `pred` against `target` (4 values each, in `format`) and upstream * d ciou / d pred.
template <typename T>
CiouResult ciou(const T* pred, const T* target, BoxFormat format, double upstream = 1.0) {
  using namespace box_iou_detail;
  const Corners p = corners(pred, format);
  const Corners t = corners(target, format);

  const double iw_raw = std::min(p.x2, t.x2) - std::max(p.x1, t.x1);
  const double ih_raw = std::min(p.y2, t.y2) - std::max(p.y1, t.y1);
  const double iw = std::max(iw_raw, 0.0), ih = std::max(ih_raw, 0.0);
  const double inter = iw * ih;
  const double uni = p.w * p.h + t.w * t.h - inter + kEps;
  const double iou = inter / uni;

  const double cw = std::max(p.x2, t.x2) - std::min(p.x1, t.x1);
  const double ch = std::max(p.y2, t.y2) - std::min(p.y1, t.y1);
  const double c2 = cw * cw + ch * ch + kEps;
  const double dx = t.x1 + t.x2 - p.x1 - p.x2, dy = t.y1 + t.y2 - p.y1 - p.y2;
  const double rho2 = (dx * dx + dy * dy) / 4;
  constexpr double kV = 4 / (std::numbers::pi * std::numbers::pi);
  const double datan = std::atan(t.w / t.h) - std::atan(p.w / p.h);
  const double v = kV * datan * datan;
  const double alpha = v / (v - iou + (1 + kEps));

  CiouResult r;
  r.iou = iou;
  r.ciou = iou - (rho2 / c2 + v * alpha);

  // Backward, in the order autograd would visit the graph; g_* are gradients of ciou.
  const double g_iou = upstream, g_rho2 = -upstream / c2, g_c2 = upstream * rho2 / (c2 * c2);
  const double g_v = -upstream * alpha;
  const double g_inter = g_iou * (1 / uni + inter / (uni * uni));
  const double g_union = -g_iou * inter / (uni * uni);
  double gx1 = 0, gy1 = 0, gx2 = 0, gy2 = 0;
  double gw = g_union * p.h, gh = g_union * p.w;
  // inter = clamp(iw_raw, 0) * clamp(ih_raw, 0)
  const double g_iw = iw_raw >= 0 ? g_inter * ih : 0, g_ih = ih_raw >= 0 ? g_inter * iw : 0;
  gx2 += g_iw * min_share(p.x2, t.x2);
  gx1 -= g_iw * max_share(p.x1, t.x1);
  gy2 += g_ih * min_share(p.y2, t.y2);
  gy1 -= g_ih * max_share(p.y1, t.y1);
  // c2 = cw^2 + ch^2 + eps
  const double g_cw = g_c2 * 2 * cw, g_ch = g_c2 * 2 * ch;
  gx2 += g_cw * max_share(p.x2, t.x2);
  gx1 -= g_cw * min_share(p.x1, t.x1);
  gy2 += g_ch * max_share(p.y2, t.y2);
  gy1 -= g_ch * min_share(p.y1, t.y1);
  // rho2 = (dx^2 + dy^2) / 4 with dx = t.x1 + t.x2 - p.x1 - p.x2
  gx1 -= g_rho2 * dx / 2;
  gx2 -= g_rho2 * dx / 2;
  gy1 -= g_rho2 * dy / 2;
  gy2 -= g_rho2 * dy / 2;
  // v = k (atan(w2/h2) - atan(w1/h1))^2, as autograd: d atan(q) = dq / (1 + q^2), q = w1 / h1
  const double q = p.w / p.h;
  const double g_q = -g_v * kV * 2 * datan / (1 + q * q);
  gw += g_q / p.h;
  gh -= g_q * p.w / (p.h * p.h);

  if (format == BoxFormat::kCenter) {  // x1 = cx - w/2, x2 = cx + w/2, w used directly
    r.grad = {gx1 + gx2, gy1 + gy2, gw + (gx2 - gx1) / 2, gh + (gy2 - gy1) / 2};
  } else {  // w = x2 - x1, h = y2 - y1 + eps
    r.grad = {gx1 - gw, gy1 - gh, gx2 + gw, gy2 + gh};
  }
  return r;
}

}  // namespace onnxtrain::ops
