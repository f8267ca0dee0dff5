#include "ops/yolo_tal.h"

#include <algorithm>
#include <cmath>

#include "ops/box_iou_loss.h"

namespace onnxtrain::ops::yolo {

namespace {

constexpr double kEps = 1e-9;

// One anchor inside a gt box. Lists are built in anchor order, so lookups can bisect.
struct Candidate {
  int64_t anchor;
  double overlap;
  double metric;
};

const Candidate* find_candidate(const std::vector<Candidate>& list, int64_t anchor) {
  auto it = std::lower_bound(list.begin(), list.end(), anchor,
                             [](const Candidate& c, int64_t a) { return c.anchor < a; });
  return it != list.end() && it->anchor == anchor ? &*it : nullptr;
}

}  // namespace

TalAssignment assign_task_aligned(const std::vector<GroundTruth>& gts, const double* anchors, const double* pred,
                                  int64_t num_anchors, const std::function<double(int64_t, int64_t)>& class_score,
                                  const TalOptions& options) {
  TalAssignment out;
  out.gt.assign(static_cast<size_t>(num_anchors), -1);
  out.score.assign(static_cast<size_t>(num_anchors), 0.0);
  const size_t num_gts = gts.size();
  if (num_gts == 0) return out;

  std::vector<std::vector<Candidate>> inside(num_gts);
  std::vector<int32_t> times_chosen(static_cast<size_t>(num_anchors), 0);
  for (size_t g = 0; g < num_gts; ++g) {
    const GroundTruth& t = gts[g];
    const double gt_box[4] = {t.x1, t.y1, t.x2, t.y2};
    for (int64_t a = 0; a < num_anchors; ++a) {
      const double ax = anchors[2 * a], ay = anchors[2 * a + 1];
      if (std::min({ax - t.x1, ay - t.y1, t.x2 - ax, t.y2 - ay}) <= kEps) continue;
      // CIoU(gt, pred) as the assigner writes it (the order matters only to the last bit).
      const double overlap = std::max(ciou(gt_box, pred + 4 * a, BoxFormat::kCorners).ciou, 0.0);
      const double metric = std::pow(class_score(a, t.cls), options.alpha) * std::pow(overlap, options.beta);
      inside[g].push_back({a, overlap, metric});
    }
    std::vector<size_t> order(inside[g].size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    const size_t k = std::min(order.size(), static_cast<size_t>(std::max<int64_t>(options.topk, 0)));
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                      [&](size_t a, size_t b) {
                        const Candidate &x = inside[g][a], &y = inside[g][b];
                        return x.metric != y.metric ? x.metric > y.metric : x.anchor < y.anchor;
                      });
    for (size_t i = 0; i < k; ++i) {
      const int64_t a = inside[g][order[i]].anchor;
      ++times_chosen[a];
      out.gt[a] = static_cast<int32_t>(g);
    }
  }

  // An anchor chosen by several gts: the gt of highest overlap over all gts (0 outside).
  for (int64_t a = 0; a < num_anchors; ++a) {
    if (times_chosen[a] < 2) continue;
    int32_t best = 0;
    double best_overlap = -1;
    for (size_t g = 0; g < num_gts; ++g) {
      const Candidate* c = find_candidate(inside[g], a);
      const double overlap = c ? c->overlap : 0.0;
      if (overlap > best_overlap) {
        best_overlap = overlap;
        best = static_cast<int32_t>(g);
      }
    }
    out.gt[a] = best;
  }

  // Normalisation per gt over its assigned anchors.
  std::vector<double> max_metric(num_gts, 0.0), max_overlap(num_gts, 0.0);
  std::vector<const Candidate*> assigned(static_cast<size_t>(num_anchors), nullptr);
  for (int64_t a = 0; a < num_anchors; ++a) {
    const int32_t g = out.gt[a];
    if (g < 0) continue;
    assigned[a] = find_candidate(inside[g], a);  // null when a dedup gave it a gt not containing it
    if (!assigned[a]) continue;
    max_metric[g] = std::max(max_metric[g], assigned[a]->metric);
    max_overlap[g] = std::max(max_overlap[g], assigned[a]->overlap);
  }
  for (int64_t a = 0; a < num_anchors; ++a) {
    const int32_t g = out.gt[a];
    if (g < 0 || !assigned[a]) continue;
    out.score[a] = assigned[a]->metric * max_overlap[g] / (max_metric[g] + kEps);
    out.score_sum += out.score[a];
  }
  return out;
}

}  // namespace onnxtrain::ops::yolo
