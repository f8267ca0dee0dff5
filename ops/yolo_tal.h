#pragma once
// YOLOv8's task-aligned assigner (Ultralytics TaskAlignedAssigner, v8.0/8.1) for one image,
// on the host: which anchors learn which ground-truth box, and with what target score.
//
// For each ground truth g and each anchor a whose centre lies inside g's box (by more than
// 1e-9 on every side):
//   overlap(g, a) = max(CIoU(g, pred_a), 0),  metric(g, a) = score_a[class_g]^alpha * overlap^beta
// g takes the topk inside anchors by metric (ties: lower anchor index; a chosen anchor may
// have metric 0 and then carries no weight). An anchor taken by several gts goes to the gt
// it overlaps most among all gts (first on ties), whether or not that gt took it. Its target
// score is metric(g, a) * max_overlap(g) / (max_metric(g) + 1e-9), the maxima over the
// anchors assigned to g.
#include <cstdint>
#include <functional>
#include <vector>

namespace onnxtrain::ops::yolo {

struct GroundTruth {
  int64_t cls = 0;
  double x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // pixels
};

struct TalOptions {
  int64_t topk = 10;
  double alpha = 0.5;
  double beta = 6.0;
};

struct TalAssignment {
  std::vector<int32_t> gt;    // per anchor: the assigned ground truth, -1 for background
  std::vector<double> score;  // per anchor: the target score of that gt's class, 0 for background
  double score_sum = 0;
};

// anchors [A, 2] and pred [A, 4] (x1, y1, x2, y2) in pixels; class_score(a, c) is the
// predicted probability (sigmoid) of class c at anchor a.
TalAssignment assign_task_aligned(const std::vector<GroundTruth>& gts, const double* anchors, const double* pred,
                                  int64_t num_anchors, const std::function<double(int64_t, int64_t)>& class_score,
                                  const TalOptions& options);

}  // namespace onnxtrain::ops::yolo
