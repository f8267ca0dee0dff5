#!/usr/bin/python3
"""CIoU goldens for tests/unit/box_iou_loss_test.cpp, from torch autograd in float64.

`bbox_iou` below is Ultralytics' bbox_iou(box1, box2, xywh, CIoU=True) (ultralytics/utils/
metrics.py) restricted to the CIoU branch: corner boxes take h = y2 - y1 + eps, centre boxes
use w and h directly, and alpha is computed under no_grad. The pairs cover random boxes,
disjoint ones, nested ones, identical ones (torch splits min/max gradients in half there),
boxes sharing an edge and degenerate thin boxes. Each pair has a random upstream gradient.

Usage: box_iou_reference.py [out.npz]   (default tests/data/detect/ciou_golden.npz)
"""
import math
import pathlib
import sys

import numpy as np
import torch


def bbox_iou(box1, box2, xywh=True, eps=1e-7):
    if xywh:
        (x1, y1, w1, h1), (x2, y2, w2, h2) = box1.chunk(4, -1), box2.chunk(4, -1)
        w1_, h1_, w2_, h2_ = w1 / 2, h1 / 2, w2 / 2, h2 / 2
        b1_x1, b1_x2, b1_y1, b1_y2 = x1 - w1_, x1 + w1_, y1 - h1_, y1 + h1_
        b2_x1, b2_x2, b2_y1, b2_y2 = x2 - w2_, x2 + w2_, y2 - h2_, y2 + h2_
    else:
        b1_x1, b1_y1, b1_x2, b1_y2 = box1.chunk(4, -1)
        b2_x1, b2_y1, b2_x2, b2_y2 = box2.chunk(4, -1)
        w1, h1 = b1_x2 - b1_x1, b1_y2 - b1_y1 + eps
        w2, h2 = b2_x2 - b2_x1, b2_y2 - b2_y1 + eps
    inter = (b1_x2.minimum(b2_x2) - b1_x1.maximum(b2_x1)).clamp_(0) * (
        b1_y2.minimum(b2_y2) - b1_y1.maximum(b2_y1)
    ).clamp_(0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = b1_x2.maximum(b2_x2) - b1_x1.minimum(b2_x1)
    ch = b1_y2.maximum(b2_y2) - b1_y1.minimum(b2_y1)
    c2 = cw.pow(2) + ch.pow(2) + eps
    rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2).pow(2) + (b2_y1 + b2_y2 - b1_y1 - b1_y2).pow(2)) / 4
    v = (4 / math.pi**2) * ((w2 / h2).atan() - (w1 / h1).atan()).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha), iou


def xywh_pairs(rng):
    """Centre boxes (cx, cy, w, h)."""
    pairs = []
    for _ in range(200):  # random, overlapping or not
        pairs.append((np.r_[rng.uniform(0, 10, 2), rng.uniform(0.2, 6, 2)], np.r_[rng.uniform(0, 10, 2), rng.uniform(0.2, 6, 2)]))
    for _ in range(30):  # disjoint: far apart
        a = np.r_[rng.uniform(0, 2, 2), rng.uniform(0.5, 1.5, 2)]
        pairs.append((a, np.r_[a[:2] + rng.uniform(3, 6, 2), rng.uniform(0.5, 1.5, 2)]))
    for _ in range(30):  # nested: the target inside the prediction and the other way round
        a = np.r_[rng.uniform(2, 8, 2), rng.uniform(3, 5, 2)]
        b = np.r_[a[:2] + rng.uniform(-0.5, 0.5, 2), a[2:] * rng.uniform(0.2, 0.6, 2)]
        pairs.append((a, b) if rng.uniform() < 0.5 else (b, a))
    for _ in range(20):  # identical
        a = np.r_[rng.uniform(0, 10, 2), rng.uniform(0.2, 6, 2)]
        pairs.append((a, a.copy()))
    for _ in range(20):  # thin boxes, overlapping a normal one
        a = np.r_[rng.uniform(2, 8, 2), rng.uniform(1, 3, 2)]
        thin = a.copy()
        thin[2 + rng.integers(0, 2)] = 10.0 ** rng.uniform(-4, -2)
        pairs.append((thin, a) if rng.uniform() < 0.5 else (a, thin))
    return pairs


def xyxy_pairs(rng):
    """Corner boxes (x1, y1, x2, y2), incl. shared edges (equal coordinates in min/max)."""
    def corners(c):
        return np.r_[c[:2] - c[2:] / 2, c[:2] + c[2:] / 2]
    pairs = [(corners(a), corners(b)) for a, b in xywh_pairs(rng)]
    for _ in range(20):  # sharing the left edge or touching side by side
        a = np.r_[rng.uniform(0, 5, 2), 0, 0]
        a[2:] = a[:2] + rng.uniform(1, 3, 2)
        b = a + np.r_[0, rng.uniform(-1, 1), rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5)]
        pairs.append((a, b))
        c = np.r_[a[2], a[1], a[2] + 1.5, a[3]]
        pairs.append((a, c))
    return pairs


def run(pairs, xywh, rng):
    pred = torch.tensor(np.array([p for p, _ in pairs]), dtype=torch.float64, requires_grad=True)
    target = torch.tensor(np.array([t for _, t in pairs]), dtype=torch.float64)
    upstream = torch.tensor(rng.uniform(-2, 2, (len(pairs), 1)), dtype=torch.float64)
    ciou, iou = bbox_iou(pred, target, xywh=xywh)
    (ciou * upstream).sum().backward()
    return pred.detach().numpy(), target.numpy(), upstream.numpy()[:, 0], ciou.detach().numpy()[:, 0], iou.detach().numpy()[:, 0], pred.grad.numpy()


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parents[1] / "data/detect/ciou_golden.npz")
    rng = np.random.default_rng(13)
    arrays = {}
    for name, xywh, pairs in (("xywh", True, xywh_pairs(rng)), ("xyxy", False, xyxy_pairs(rng))):
        for key, value in zip(("pred", "target", "upstream", "ciou", "iou", "grad"), run(pairs, xywh, rng)):
            arrays[f"{name}_{key}"] = value
    np.savez_compressed(out, **arrays)
    print(f"{out}: {len(arrays['xywh_pred'])} centre pairs, {len(arrays['xyxy_pred'])} corner pairs")


if __name__ == "__main__":
    main()
