#!/usr/bin/python3
"""Goldens for ai.onnxtrain.YoloV8Loss (tests/ops/yolo_v8_loss_test.cpp): our own PyTorch
float64 implementation of the published YOLOv8 detection loss (Ultralytics v8.0/8.1
`v8DetectionLoss` with its `TaskAlignedAssigner`), written from the formulation in
docs/detection.md, with autograd for the gradients.

Usage: /usr/bin/python3 tests/scripts/yolov8_loss_reference.py [out_dir]
       (default tests/data/detect; writes yolov8_loss_<case>.npz)

Each file holds the op's inputs (boxes [N, B, 6], p0, p1, p2), its attributes (attr_<name>,
float64 arrays), the outputs (loss: scalar, parts: [3]), the gradient of loss with respect to
every p_i (grad_p<i>), and, to make a failure readable, the assignment's summary
(debug_num_fg: foreground anchors, debug_target_scores_sum: the normaliser before max(., 1)).

What the assignment does where Ultralytics leaves it to torch.topk's tie order: candidates
are the anchors inside the gt box (centre strictly inside by more than 1e-9), ranked by
alignment metric, ties by lower anchor index (a stable sort); the first topk of them are
positives even when their metric is 0 (they then carry no weight).
"""
import math
import pathlib
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
EPS_IOU = 1e-7   # bbox_iou's eps
EPS_TAL = 1e-9   # the assigner's eps (inside test, normalisation)


def ciou(b1, b2):
    """CIoU of corner boxes [..., 4] (Ultralytics bbox_iou(CIoU=True) semantics: h gets +eps,
    the aspect term's trade-off alpha is a constant for autograd)."""
    x1a, y1a, x2a, y2a = b1.unbind(-1)
    x1b, y1b, x2b, y2b = b2.unbind(-1)
    wa, ha = x2a - x1a, y2a - y1a + EPS_IOU
    wb, hb = x2b - x1b, y2b - y1b + EPS_IOU
    inter = (torch.minimum(x2a, x2b) - torch.maximum(x1a, x1b)).clamp(0) * \
            (torch.minimum(y2a, y2b) - torch.maximum(y1a, y1b)).clamp(0)
    union = wa * ha + wb * hb - inter + EPS_IOU
    iou = inter / union
    cw = torch.maximum(x2a, x2b) - torch.minimum(x1a, x1b)
    ch = torch.maximum(y2a, y2b) - torch.minimum(y1a, y1b)
    c2 = cw ** 2 + ch ** 2 + EPS_IOU
    rho2 = ((x1b + x2b - x1a - x2a) ** 2 + (y1b + y2b - y1a - y2a) ** 2) / 4
    v = (4 / math.pi ** 2) * (torch.atan(wb / hb) - torch.atan(wa / ha)) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + EPS_IOU))
    return iou - (rho2 / c2 + v * alpha)


def anchors_of(shapes, strides):
    """Cell centres (+0.5) per level in grid units, row-major, levels concatenated."""
    pts, st = [], []
    for (h, w), s in zip(shapes, strides):
        ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
        pts.append(torch.stack((xs, ys), -1).reshape(-1, 2))
        st.append(torch.full((h * w,), float(s)))
    return torch.cat(pts), torch.cat(st)


def assign(scores, pboxes, anchors, gts, num_classes, topk, alpha, beta):
    """Task-aligned assignment for one image. scores [A, C] (sigmoid), pboxes [A, 4] and
    anchors [A, 2] in pixels, gts: list of (class, x1, y1, x2, y2) in pixels.
    Returns target_scores [A, C], target_boxes [A, 4] (pixels), fg [A] bool."""
    na = anchors.shape[0]
    target_scores = torch.zeros(na, num_classes)
    target_boxes = torch.zeros(na, 4)
    fg = torch.zeros(na, dtype=torch.bool)
    if not gts:
        return target_scores, target_boxes, fg
    ng = len(gts)
    gt_box = torch.tensor([g[1:] for g in gts])
    gt_cls = [int(g[0]) for g in gts]
    overlaps = torch.zeros(ng, na)
    metric = torch.zeros(ng, na)
    pos = torch.zeros(ng, na, dtype=torch.bool)
    for g in range(ng):
        d = torch.stack((anchors[:, 0] - gt_box[g, 0], anchors[:, 1] - gt_box[g, 1],
                         gt_box[g, 2] - anchors[:, 0], gt_box[g, 3] - anchors[:, 1]), -1)
        inside = d.amin(-1) > EPS_TAL
        iou = ciou(gt_box[g].expand(na, 4), pboxes).clamp(0)
        overlaps[g] = torch.where(inside, iou, torch.zeros(()))
        metric[g] = torch.where(inside, scores[:, gt_cls[g]].pow(alpha) * overlaps[g].pow(beta), torch.zeros(()))
        cand = torch.nonzero(inside).flatten()
        order = torch.sort(metric[g, cand], descending=True, stable=True).indices
        pos[g, cand[order[:topk]]] = True
    # An anchor chosen by several gts goes to the gt it overlaps most (first on ties), among
    # all gts containing it.
    multi = pos.sum(0) > 1
    best = overlaps.argmax(0)
    for a in torch.nonzero(multi).flatten().tolist():
        pos[:, a] = False
        pos[best[a], a] = True
    fg = pos.any(0)
    target_gt = pos.to(torch.int64).argmax(0)
    am = metric * pos
    pos_metric = am.amax(1)                      # per gt
    pos_overlap = (overlaps * pos).amax(1)       # per gt
    norm = (am * pos_overlap[:, None] / (pos_metric[:, None] + EPS_TAL)).amax(0)  # per anchor
    for a in torch.nonzero(fg).flatten().tolist():
        g = int(target_gt[a])
        target_scores[a, gt_cls[g]] = norm[a]
        target_boxes[a] = gt_box[g]
    return target_scores, target_boxes, fg


def yolov8_loss(boxes, preds, num_classes, image_size, reg_max=16, box=7.5, cls=0.5, dfl=1.5,
                topk=10, alpha=0.5, beta=6.0):
    """boxes [N, B, 6] (valid, class, cx, cy, w, h normalised), preds: list of
    [N, 4*reg_max + C, H_i, W_i]. Returns (loss, parts [3], debug dict)."""
    n = boxes.shape[0]
    ih, iw = image_size
    shapes = [tuple(p.shape[2:]) for p in preds]
    strides = [ih // h for h, _ in shapes]
    anchors, stride = anchors_of(shapes, strides)                 # grid units, [A]
    flat = torch.cat([p.reshape(n, 4 * reg_max + num_classes, -1) for p in preds], 2).permute(0, 2, 1)
    dist, logits = flat[..., :4 * reg_max], flat[..., 4 * reg_max:]     # [N, A, 4R], [N, A, C]
    prob = dist.reshape(n, -1, 4, reg_max).softmax(-1)
    ltrb = prob @ torch.arange(reg_max, dtype=torch.float64)          # [N, A, 4]
    pbox = torch.cat((anchors - ltrb[..., :2], anchors + ltrb[..., 2:]), -1)  # grid units

    all_scores, all_boxes, all_fg = [], [], []
    with torch.no_grad():
        for i in range(n):
            gts = []
            for row in boxes[i].tolist():
                if row[0] == 0:
                    continue
                cx, cy, w, h = row[2] * iw, row[3] * ih, row[4] * iw, row[5] * ih
                gts.append((row[1], cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
            ts, tb, fg = assign(logits[i].sigmoid(), pbox[i] * stride[:, None], anchors * stride[:, None],
                                gts, num_classes, topk, alpha, beta)
            all_scores.append(ts)
            all_boxes.append(tb / stride[:, None])                    # back to grid units
            all_fg.append(fg)
    ts = torch.stack(all_scores)
    tb = torch.stack(all_boxes)
    fg = torch.stack(all_fg)
    tss_raw = float(ts.sum())
    tss = max(tss_raw, 1.0)

    loss_cls = F.binary_cross_entropy_with_logits(logits, ts, reduction="sum") / tss
    weight = ts.sum(-1)[fg]
    anc = anchors.expand(n, -1, -1)[fg]
    loss_box = ((1 - ciou(pbox[fg], tb[fg])) * weight).sum() / tss
    target = torch.cat((anc - tb[fg][:, :2], tb[fg][:, 2:] - anc), -1).clamp(0, reg_max - 1 - 0.01)
    left = target.floor().long()
    wl = (left + 1) - target
    logp = dist[fg].reshape(-1, 4, reg_max).log_softmax(-1)
    ce = -(logp.gather(-1, left[..., None])[..., 0] * wl + logp.gather(-1, left[..., None] + 1)[..., 0] * (1 - wl))
    loss_dfl = (ce.mean(-1) * weight).sum() / tss
    parts = torch.stack((loss_box * box, loss_cls * cls, loss_dfl * dfl))
    return parts.sum(), parts, {"num_fg": int(fg.sum()), "target_scores_sum": tss_raw}


def random_boxes(rng, n, b, num_classes, rows):
    """[n, b, 6]: rows[i] lists image i's boxes as (class, cx, cy, w, h); the rest is padding."""
    out = np.zeros((n, b, 6))
    for i, image in enumerate(rows):
        for j, (c, cx, cy, w, h) in enumerate(image):
            out[i, j] = (1, c, cx, cy, w, h)
        # padding rows carry junk besides valid=0: it must be ignored
        for j in range(len(image), b):
            out[i, j, 1:] = rng.uniform(0, 1, 5)
    return out


CASES = {
    # C=3, reg_max 16: overlapping gts of two classes, an image without boxes, boxes at the edges.
    "c3": dict(n=3, num_classes=3, reg_max=16, rows=[
        [(0, 0.40, 0.45, 0.50, 0.55), (1, 0.48, 0.50, 0.45, 0.50), (2, 0.75, 0.25, 0.20, 0.22)],
        [],
        [(1, 0.15, 0.20, 0.30, 0.40), (0, 0.90, 0.875, 0.20, 0.25), (2, 0.5, 0.5, 1.0, 1.0),
         (0, 0.30, 0.80, 0.10, 0.12)],
    ], attrs={}),
    # C=1: gts of one class competing for the same anchors (nested and shifted copies).
    "c1": dict(n=2, num_classes=1, reg_max=16, rows=[
        [(0, 0.50, 0.50, 0.60, 0.60), (0, 0.52, 0.50, 0.58, 0.62), (0, 0.50, 0.50, 0.30, 0.30)],
        [(0, 0.25, 0.25, 0.45, 0.45), (0, 0.30, 0.30, 0.45, 0.45)],
    ], attrs={}),
    # reg_max 8 and every hyperparameter changed from its default.
    "rm8": dict(n=2, num_classes=3, reg_max=8, rows=[
        [(2, 0.30, 0.35, 0.35, 0.30), (0, 0.70, 0.60, 0.40, 0.50)],
        [(1, 0.10, 0.90, 0.20, 0.20), (1, 0.55, 0.45, 0.70, 0.80), (0, 0.60, 0.50, 0.10, 0.10)],
    ], attrs=dict(box=5.0, cls=1.0, dfl=2.0, topk=5, alpha=1.0, beta=4.0)),
    # No box in the whole batch: only the class loss (all targets 0, normaliser 1).
    "empty": dict(n=2, num_classes=3, reg_max=16, rows=[[], []], attrs={}),
}


def make_case(name, spec, seed):
    rng = np.random.default_rng(seed)
    n, nc, reg_max = spec["n"], spec["num_classes"], spec["reg_max"]
    image_size = (64, 64)
    b = max(1, max(len(r) for r in spec["rows"]) + 1)
    boxes = random_boxes(rng, n, b, nc, spec["rows"])
    preds = []
    for h in (8, 4, 2):
        p = rng.normal(0, 1.5, (n, 4 * reg_max + nc, h, h))
        p[:, 4 * reg_max:] -= 1.0  # class logits mostly negative, as in a trained detector
        preds.append(p)
    attrs = dict(num_classes=nc, image_size=image_size, reg_max=reg_max)
    attrs.update(spec["attrs"])
    pt = [torch.tensor(p, requires_grad=True) for p in preds]
    loss, parts, debug = yolov8_loss(torch.tensor(boxes), pt, **attrs)
    loss.backward()
    out = {"boxes": boxes, "loss": np.array(loss.item()), "parts": parts.detach().numpy(),
           "debug_num_fg": np.array(debug["num_fg"], dtype=np.float64),
           "debug_target_scores_sum": np.array(debug["target_scores_sum"])}
    for i, (p, t) in enumerate(zip(preds, pt)):
        out[f"p{i}"] = p
        out[f"grad_p{i}"] = t.grad.numpy()
    for k, v in attrs.items():
        out[f"attr_{k}"] = np.atleast_1d(np.array(v, dtype=np.float64))
    print(f"{name}: loss {loss.item():.6f} parts {parts.detach().numpy()} fg {debug['num_fg']} "
          f"target_scores_sum {debug['target_scores_sum']:.4f}")
    return out


def main():
    out_dir = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else \
        pathlib.Path(__file__).resolve().parents[1] / "data" / "detect"
    out_dir.mkdir(parents=True, exist_ok=True)
    for seed, (name, spec) in enumerate(CASES.items()):
        np.savez_compressed(out_dir / f"yolov8_loss_{name}.npz", **make_case(name, spec, 100 + seed))


if __name__ == "__main__":
    main()
