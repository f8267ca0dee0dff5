// Detection metrics: box IoU, class-aware NMS and COCOeval's bbox mAP, with Ultralytics'
// per-class precision and recall at the best mean-F1 confidence. The matching and the
// accumulation follow pycocotools' cocoeval.py step by step (tests compare with
// tests/scripts/detection_map_reference.py, a numpy transcription of it).
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "onnxtrain/detection.h"

namespace onnxtrain {
namespace {

constexpr int kIous = 10, kRecalls = 101, kConfidences = 1000;

// numpy.linspace(lo, hi, n): start + i * step, the last one exactly hi.
double linspace(double lo, double hi, int n, int i) { return i == n - 1 ? hi : lo + i * ((hi - lo) / (n - 1)); }

double intersection(const Box& a, const Box& b) {
  // In double from the float corners: float differences would cost the IoU ~1e-7.
  const double w = std::min<double>(a.x2, b.x2) - std::max<double>(a.x1, b.x1);
  const double h = std::min<double>(a.y2, b.y2) - std::max<double>(a.y1, b.y1);
  return w > 0 && h > 0 ? w * h : 0.0;
}

double box_area(const Box& b) { return (static_cast<double>(b.x2) - b.x1) * (static_cast<double>(b.y2) - b.y1); }

// numpy.interp for increasing xp, with the values left of xp[0] given.
double interp(double x, const std::vector<double>& xp, const std::vector<double>& fp, double left) {
  if (x < xp.front()) return left;
  if (x >= xp.back()) return fp.back();
  const size_t j = static_cast<size_t>(std::upper_bound(xp.begin(), xp.end(), x) - xp.begin()) - 1;
  const double slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
  return slope * (x - xp[j]) + fp[j];
}

// One detection after matching, as COCOeval's evaluateImg leaves it.
struct Matched {
  float score = 0;
  std::array<bool, kIous> matched{}, ignored{};
};

// evaluateImg for one (image, class): detections best first (at most max_det), each takes
// the best still free ground truth above the IoU threshold; crowd ones sort last and stay free.
std::vector<Matched> match(std::vector<Detection> dts, std::vector<GroundTruth> gts, int64_t max_det, int64_t& counted) {
  std::stable_sort(gts.begin(), gts.end(), [](const GroundTruth& a, const GroundTruth& b) { return a.crowd < b.crowd; });
  std::stable_sort(dts.begin(), dts.end(), [](const Detection& a, const Detection& b) { return a.score > b.score; });
  if (static_cast<int64_t>(dts.size()) > max_det) dts.resize(static_cast<size_t>(max_det));
  counted = std::count_if(gts.begin(), gts.end(), [](const GroundTruth& g) { return !g.crowd; });
  std::vector<Matched> out(dts.size());
  for (int t = 0; t < kIous; ++t) {
    std::vector<bool> taken(gts.size(), false);
    for (size_t d = 0; d < dts.size(); ++d) {
      out[d].score = dts[d].score;
      double best = std::min(linspace(0.5, 0.95, kIous, t), 1 - 1e-10);
      int m = -1;
      for (size_t g = 0; g < gts.size(); ++g) {
        if (taken[g] && !gts[g].crowd) continue;
        if (m > -1 && !gts[m].crowd && gts[g].crowd) break;
        const double inter = intersection(dts[d].box, gts[g].box);
        // A crowd region's IoU is the share of the detection inside it (COCO's iscrowd IoU).
        const double uni = gts[g].crowd ? box_area(dts[d].box) : box_area(dts[d].box) + box_area(gts[g].box) - inter;
        const double iou = uni > 0 ? inter / uni : 0.0;
        if (iou < best) continue;
        best = iou;
        m = static_cast<int>(g);
      }
      if (m == -1) continue;
      out[d].matched[t] = true;
      out[d].ignored[t] = gts[m].crowd;
      taken[m] = true;
    }
  }
  return out;
}

// Ultralytics' smooth(): a box filter over 10% of the curve on each side, edges repeated.
std::vector<double> smooth(const std::vector<double>& y, double fraction) {
  const int nf = static_cast<int>(std::nearbyint(y.size() * fraction * 2)) / 2 + 1, half = nf / 2;
  std::vector<double> padded(half, y.front());
  padded.insert(padded.end(), y.begin(), y.end());
  padded.insert(padded.end(), half, y.back());
  std::vector<double> out(y.size());
  for (size_t i = 0; i < y.size(); ++i) {
    double s = 0;
    for (int k = 0; k < nf; ++k) s += padded[i + k] * (1.0 / nf);
    out[i] = s;
  }
  return out;
}

}  // namespace

double box_iou(const Box& a, const Box& b) {
  const double inter = intersection(a, b), uni = box_area(a) + box_area(b) - inter;
  return uni > 0 ? inter / uni : 0.0;
}

std::vector<Detection> nms(std::span<const Detection> detections, const NmsOptions& options) {
  std::vector<Detection> sorted;
  for (const Detection& d : detections)
    if (d.score >= options.confidence) sorted.push_back(d);
  std::stable_sort(sorted.begin(), sorted.end(), [](const Detection& a, const Detection& b) { return a.score > b.score; });
  std::vector<Detection> kept;
  for (const Detection& d : sorted) {
    if (static_cast<int64_t>(kept.size()) >= options.max_detections) break;
    const bool suppressed = std::any_of(kept.begin(), kept.end(), [&](const Detection& k) {
      return k.box.cls == d.box.cls && box_iou(k.box, d.box) > options.iou;
    });
    if (!suppressed) kept.push_back(d);
  }
  return kept;
}

DetectionMetrics evaluate_detections(std::span<const Detection> detections, std::span<const GroundTruth> truths,
                                     const MapOptions& options) {
  // Grouped by (class, image), images in id order as COCOeval's evalImgs.
  std::map<int64_t, std::map<int64_t, std::pair<std::vector<Detection>, std::vector<GroundTruth>>>> groups;
  for (const Detection& d : detections) groups[d.box.cls][d.image].first.push_back(d);
  for (const GroundTruth& g : truths) groups[g.box.cls][g.image].second.push_back(g);

  DetectionMetrics out;
  std::vector<std::vector<double>> class_precision, class_recall;  // on the confidence grid
  for (auto& [cls, images] : groups) {
    std::vector<Matched> all;
    int64_t positives = 0;
    for (auto& [image, group] : images) {
      int64_t counted = 0;
      auto m = match(std::move(group.first), std::move(group.second), options.max_detections, counted);
      positives += counted;
      all.insert(all.end(), m.begin(), m.end());
    }
    if (positives == 0) continue;  // COCO's precision -1: not part of the means
    std::stable_sort(all.begin(), all.end(), [](const Matched& a, const Matched& b) { return a.score > b.score; });
    ClassMetrics c;
    c.cls = cls;
    c.ground_truths = positives;
    for (int t = 0; t < kIous; ++t) {
      std::vector<double> recall, precision;
      int64_t tp = 0, fp = 0;
      for (const Matched& d : all) {
        if (d.ignored[t]) continue;
        (d.matched[t] ? tp : fp) += 1;
        recall.push_back(static_cast<double>(tp) / positives);
        precision.push_back(tp / (tp + fp + std::numeric_limits<double>::epsilon()));
      }
      for (size_t i = precision.size(); i-- > 1;) precision[i - 1] = std::max(precision[i - 1], precision[i]);
      std::array<double, kRecalls> q{};
      for (int r = 0; r < kRecalls; ++r) {
        const auto at = std::lower_bound(recall.begin(), recall.end(), linspace(0, 1, kRecalls, r));
        if (at == recall.end()) break;
        q[r] = precision[static_cast<size_t>(at - recall.begin())];
      }
      c.ap[t] = std::accumulate(q.begin(), q.end(), 0.0) / kRecalls;
      if (t == 0) c.pr_curve = q;
    }
    c.ap50 = c.ap[0];
    c.ap50_95 = std::accumulate(c.ap.begin(), c.ap.end(), 0.0) / kIous;

    // Ultralytics' ap_per_class: precision and recall (IoU 0.5) on a confidence grid.
    std::vector<double> conf, rec, prec;
    int64_t tp = 0, fp = 0;
    for (const Matched& d : all) {
      if (d.ignored[0]) continue;
      (d.matched[0] ? tp : fp) += 1;
      conf.push_back(-static_cast<double>(d.score));
      rec.push_back(tp / (positives + 1e-16));
      prec.push_back(static_cast<double>(tp) / (tp + fp));
    }
    std::vector<double> p(kConfidences, 0.0), r(kConfidences, 0.0);
    for (int i = 0; i < kConfidences && !conf.empty(); ++i) {
      const double x = -linspace(0, 1, kConfidences, i);
      r[i] = interp(x, conf, rec, 0.0);
      p[i] = interp(x, conf, prec, 1.0);
    }
    class_precision.push_back(std::move(p));
    class_recall.push_back(std::move(r));
    out.classes.push_back(c);
  }
  if (out.classes.empty()) return out;

  const auto n = static_cast<double>(out.classes.size());
  std::vector<double> f1(kConfidences, 0.0);
  for (size_t k = 0; k < out.classes.size(); ++k)
    for (int i = 0; i < kConfidences; ++i) {
      const double p = class_precision[k][i], r = class_recall[k][i];
      f1[i] += 2 * p * r / (p + r + 1e-16) / n;
    }
  const std::vector<double> smoothed = smooth(f1, 0.1);
  const auto best = static_cast<size_t>(std::max_element(smoothed.begin(), smoothed.end()) - smoothed.begin());
  out.confidence = linspace(0, 1, kConfidences, static_cast<int>(best));
  for (size_t k = 0; k < out.classes.size(); ++k) {
    ClassMetrics& c = out.classes[k];
    c.precision = class_precision[k][best];
    c.recall = class_recall[k][best];
    out.map50 += c.ap50 / n;
    out.map50_95 += c.ap50_95 / n;
    out.precision += c.precision / n;
    out.recall += c.recall / n;
  }
  return out;
}

}  // namespace onnxtrain
