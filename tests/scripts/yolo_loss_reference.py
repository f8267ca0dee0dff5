#!/usr/bin/python3
"""YOLOv5 loss goldens for tests/ops/yolo_v5_loss_test.cpp (PyTorch, float64).

`YoloV5Loss` below is written by us after Ultralytics YOLOv5's ComputeLoss (utils/loss.py,
v7.0): build_targets with the wh-ratio anchor match (anchor_t) and the two neighbouring
cells (g = 0.5), pxy = 2 sigmoid - 0.5, pwh = (2 sigmoid)^2 anchor, CIoU box loss (mean over
the matches), objectness target = the detached CIoU clamped at 0 (gr = 1), BCE objectness per
level times balance, class BCE with smoothed targets when C > 1; then the box/obj/cls gains.
Two deliberate differences, matched by the C++ op:
- the loss is lbox + lobj + lcls, NOT multiplied by the batch size as Ultralytics does;
- when several matches hit the same (image, anchor, cell), the objectness target is the
  value of the last one in build_targets' order (offset, anchor, target). torch's index_put
  with duplicate indices does not promise an order, so the write here is an explicit loop.
Boxes are (valid, class, cx, cy, w, h) rows per image (the onnxtrain batch format) and all
inputs are rounded to float32 values, so a float32 run sees the same inputs.

Usage: yolo_loss_reference.py [out_dir]   (default tests/data/detect)
Writes yolov5_loss_<case>.npz with boxes, p_0.., loss, parts, grad_0.. and the attributes.
"""
import math
import pathlib
import sys

import numpy as np
import torch

ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]


def bbox_iou_ciou(box1, box2, eps=1e-7):
    """Ultralytics' bbox_iou(box1, box2, xywh=True, CIoU=True)."""
    (x1, y1, w1, h1), (x2, y2, w2, h2) = box1.chunk(4, -1), box2.chunk(4, -1)
    w1_, h1_, w2_, h2_ = w1 / 2, h1 / 2, w2 / 2, h2 / 2
    b1_x1, b1_x2, b1_y1, b1_y2 = x1 - w1_, x1 + w1_, y1 - h1_, y1 + h1_
    b2_x1, b2_x2, b2_y1, b2_y2 = x2 - w2_, x2 + w2_, y2 - h2_, y2 + h2_
    inter = (b1_x2.minimum(b2_x2) - b1_x1.maximum(b2_x1)).clamp(0) * (b1_y2.minimum(b2_y2) - b1_y1.maximum(b2_y1)).clamp(0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = b1_x2.maximum(b2_x2) - b1_x1.minimum(b2_x1)
    ch = b1_y2.maximum(b2_y2) - b1_y1.minimum(b2_y1)
    c2 = cw**2 + ch**2 + eps
    rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2) ** 2 + (b2_y1 + b2_y2 - b1_y1 - b1_y2) ** 2) / 4
    v = (4 / math.pi**2) * torch.pow(torch.atan(w2 / h2) - torch.atan(w1 / h1), 2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


class YoloV5Loss:
    def __init__(self, nc, anchors_px, image_size, box=0.05, obj=1.0, cls=0.5, anchor_t=4.0, balance=None, label_smoothing=0.0):
        self.nc, self.nl = nc, len(anchors_px)
        self.na = len(anchors_px[0]) // 2
        self.anchors_px = torch.tensor(anchors_px, dtype=torch.float64).view(self.nl, self.na, 2)
        self.image_size = image_size
        self.hyp = dict(box=box, obj=obj, cls=cls, anchor_t=anchor_t)
        self.balance = balance or {3: [4.0, 1.0, 0.4], 5: [4.0, 1.0, 0.25, 0.06, 0.02]}.get(self.nl, [1.0] * self.nl)
        self.cp, self.cn = 1.0 - 0.5 * label_smoothing, 0.5 * label_smoothing
        self.overwritten = 0  # objectness targets written more than once (reported)

    def __call__(self, p, targets):
        """p: list of [N, A, H, W, 5+C] tensors; targets: [nt, 6] (image, class, x, y, w, h)."""
        lcls, lbox, lobj = (torch.zeros(1, dtype=torch.float64) for _ in range(3))
        tcls, tbox, indices, anchors = self.build_targets(p, targets)
        for i, pi in enumerate(p):
            b, a, gj, gi = indices[i]
            tobj = torch.zeros(pi.shape[:4], dtype=pi.dtype)
            n = b.shape[0]
            if n:
                pxy, pwh, _, pcls = pi[b, a, gj, gi].split((2, 2, 1, self.nc), 1)
                pxy = pxy.sigmoid() * 2 - 0.5
                pwh = (pwh.sigmoid() * 2) ** 2 * anchors[i]
                pbox = torch.cat((pxy, pwh), 1)
                iou = bbox_iou_ciou(pbox, tbox[i]).squeeze(-1)
                lbox += (1.0 - iou).mean()
                iou = iou.detach().clamp(0).type(tobj.dtype)
                for k in range(n):  # last write wins, deterministically
                    tobj[b[k], a[k], gj[k], gi[k]] = iou[k]
                self.overwritten += n - len(set(zip(b.tolist(), a.tolist(), gj.tolist(), gi.tolist())))
                if self.nc > 1:
                    t = torch.full_like(pcls, self.cn)
                    t[range(n), tcls[i]] = self.cp
                    lcls += torch.nn.functional.binary_cross_entropy_with_logits(pcls, t)
            obji = torch.nn.functional.binary_cross_entropy_with_logits(pi[..., 4], tobj)
            lobj += obji * self.balance[i]
        lbox *= self.hyp["box"]
        lobj *= self.hyp["obj"]
        lcls *= self.hyp["cls"]
        return (lbox + lobj + lcls)[0], torch.cat((lbox, lobj, lcls)).detach()

    def build_targets(self, p, targets):
        na, nt = self.na, targets.shape[0]
        tcls, tbox, indices, anch = [], [], [], []
        gain = torch.ones(7, dtype=torch.float64)
        ai = torch.arange(na, dtype=torch.float64).view(na, 1).repeat(1, nt)
        targets = torch.cat((targets.repeat(na, 1, 1), ai[..., None]), 2)
        g = 0.5
        off = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], dtype=torch.float64) * g
        for i in range(self.nl):
            shape = p[i].shape
            stride = self.image_size[0] / shape[2]
            anchors = self.anchors_px[i] / stride
            gain[2:6] = torch.tensor(shape, dtype=torch.float64)[[3, 2, 3, 2]]
            t = targets * gain
            if nt:
                r = t[..., 4:6] / anchors[:, None]
                j = torch.max(r, 1 / r).max(2)[0] < self.hyp["anchor_t"]
                t = t[j]
                gxy = t[:, 2:4]
                gxi = gain[[2, 3]] - gxy
                j, k = ((gxy % 1 < g) & (gxy > 1)).T
                l, m = ((gxi % 1 < g) & (gxi > 1)).T
                j = torch.stack((torch.ones_like(j), j, k, l, m))
                t = t.repeat((5, 1, 1))[j]
                offsets = (torch.zeros_like(gxy)[None] + off[:, None])[j]
            else:
                t = targets[0]
                offsets = 0
            bc, gxy, gwh, a = t.split((2, 2, 2, 1), 1)
            a, (b, c) = a.long().view(-1), bc.long().T
            gij = (gxy - offsets).long()
            gi, gj = gij.T
            indices.append((b, a, gj.clamp_(0, shape[2] - 1), gi.clamp_(0, shape[3] - 1)))
            tbox.append(torch.cat((gxy - gij, gwh), 1))
            anch.append(anchors[a])
            tcls.append(c)
        return tcls, tbox, indices, anch


def f32(x):
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def make_case(rng, name, n=2, nc=3, size=64, layout="flat", boxes_per_image=(3, 2), edge=False, crowded=False, label_smoothing=0.0):
    anchors = [[v / 4 for v in level] for level in ANCHORS]  # 64 px input: a quarter of the P3-P5 defaults
    rows = []
    for i in range(n):
        image = []
        for _ in range(boxes_per_image[i % len(boxes_per_image)]):
            w, h = rng.uniform(0.05, 0.7, 2)
            cx, cy = rng.uniform(w / 2, 1 - w / 2), rng.uniform(h / 2, 1 - h / 2)
            image.append([1, rng.integers(0, nc), cx, cy, w, h])
        if edge and i == 0:  # touching the borders: cells clamp to the grid
            image += [[1, 0, 0.1, 0.5, 0.2, 0.3], [1, 1 % nc, 0.9, 0.95, 0.2, 0.1], [1, 2 % nc, 0.5, 0.04, 0.3, 0.08], [1, 0, 1.0, 1.0, 0.25, 0.25]]
        if crowded and i == 0:  # several boxes centred in the same cells
            cx, cy = 0.53, 0.47
            for k in range(4):
                image.append([1, k % nc, cx + 0.004 * k, cy - 0.003 * k, 0.15 + 0.05 * k, 0.2 + 0.04 * k])
        rows.append(image)
    width = max(1, max(len(r) for r in rows))
    boxes = np.zeros((n, width, 6))
    for i, r in enumerate(rows):
        if r:
            boxes[i, : len(r)] = r
    boxes = f32(boxes)
    targets = torch.tensor([[i, *row[1:]] for i in range(n) for row in boxes[i] if row[0] > 0], dtype=torch.float64).view(-1, 6)

    na, no = 3, 5 + nc
    ps, split = [], []
    for stride in (8, 16, 32):
        h = w = size // stride
        x = torch.tensor(f32(rng.normal(0, 1.5, (n, na, h, w, no))), requires_grad=True)
        split.append(x)
    loss_fn = YoloV5Loss(nc, anchors, (size, size), label_smoothing=label_smoothing)
    loss, parts = loss_fn(split, targets)
    loss.backward()
    print(f"{name}: {len(targets)} boxes, {loss_fn.overwritten} objectness targets overwritten")
    arrays = {"boxes": boxes, "loss": np.array(loss.item()), "parts": parts.numpy(), "num_classes": np.array(nc),
              "anchors": np.array(anchors, dtype=np.float64).reshape(-1), "image_size": np.array([size, size]),
              "label_smoothing": np.array(label_smoothing), "layout": np.array(0 if layout == "flat" else 1)}
    for i, x in enumerate(split):
        pv, gv = x.detach().numpy(), x.grad.numpy()
        if layout == "flat":  # [N, A, H, W, no] -> [N, A*no, H, W]
            nn_, a_, h_, w_, o_ = pv.shape
            pv = pv.transpose(0, 1, 4, 2, 3).reshape(nn_, a_ * o_, h_, w_)
            gv = gv.transpose(0, 1, 4, 2, 3).reshape(nn_, a_ * o_, h_, w_)
        arrays[f"p_{i}"], arrays[f"grad_{i}"] = pv, gv
    return name, arrays


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parents[1] / "data/detect")
    rng = np.random.default_rng(5)
    cases = [
        make_case(rng, "flat"),
        make_case(rng, "split", n=3, layout="split", boxes_per_image=(2, 4, 1)),
        make_case(rng, "background", n=3, boxes_per_image=(0, 3, 0)),
        make_case(rng, "empty", n=2, boxes_per_image=(0,)),
        make_case(rng, "edges", edge=True, boxes_per_image=(1, 2)),
        make_case(rng, "crowded", crowded=True, layout="split", label_smoothing=0.1),
        make_case(rng, "one_class", nc=1, boxes_per_image=(3, 3)),
    ]
    for name, arrays in cases:
        np.savez_compressed(out / f"yolov5_loss_{name}.npz", **arrays)
        print(f"yolov5_loss_{name}: loss {arrays['loss']:.6f} parts {arrays['parts']}")


if __name__ == "__main__":
    main()
