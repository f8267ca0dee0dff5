#!/usr/bin/python3
"""Golden detection metrics for tests/unit/detect_metrics_test.cpp (numpy only).

A transcription of pycocotools' COCOeval for bounding boxes (evaluateImg and accumulate:
area range "all", greedy matching by score, crowd ground truths matchable repeatedly and
their detections ignored, maxDets per image and category, 101 recall thresholds at IoU
0.50:0.05:0.95) and of Ultralytics' ap_per_class for precision and recall at the best
smoothed mean-F1 confidence, run on a fixed random set of detections and ground truths.

Usage: detection_map_reference.py [out.json]   (default tests/data/detect/map_golden.json)
"""
import json
import pathlib
import sys

import numpy as np

MAX_DETS = 5  # small enough that some (image, class) groups are cut
IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)


def make_set(rng):
    """Ground truths (some crowd) and detections: jittered copies of them, duplicates and
    false positives, scores drawn at random; class 2 has no detections, class 3 no truths."""
    gts, dts = [], []
    for image in range(24):
        for _ in range(rng.integers(0, 7)):
            cls = int(rng.integers(0, 3))
            x, y = rng.uniform(0, 500, 2)
            w, h = rng.uniform(8, 150, 2)
            crowd = bool(rng.uniform() < 0.08)
            gts.append(dict(image=image, cls=cls, box=[x, y, x + w, y + h], crowd=crowd))
            if cls == 2:
                continue
            for _ in range(rng.integers(0, 4)):  # hits of varying quality, duplicates among them
                j = rng.normal(0, 0.12, 4) * [w, h, w, h]
                dts.append(dict(image=image, cls=cls, box=[x + j[0], y + j[1], x + w + j[2], y + h + j[3]],
                                score=float(rng.uniform(0.05, 1))))
        for _ in range(rng.integers(0, 9)):  # false positives, sometimes many in one image
            x, y = rng.uniform(0, 500, 2)
            w, h = rng.uniform(8, 150, 2)
            dts.append(dict(image=image, cls=int(rng.choice([0, 1, 3])), box=[x, y, x + w, y + h],
                            score=float(rng.uniform(0.01, 0.9))))
    # float32 boxes and scores, as the C++ side holds them
    for d in gts + dts:
        d["box"] = [float(np.float32(v)) for v in d["box"]]
    for d in dts:
        d["score"] = float(np.float32(d["score"]))
    return gts, dts


def ious(dt, gt, crowd):
    """maskUtils.iou for boxes: crowd ground truths divide by the detection's area only."""
    out = np.zeros((len(dt), len(gt)))
    for i, d in enumerate(dt):
        for j, g in enumerate(gt):
            w = min(d[2], g[2]) - max(d[0], g[0])
            h = min(d[3], g[3]) - max(d[1], g[1])
            inter = w * h if w > 0 and h > 0 else 0.0
            ad = (d[2] - d[0]) * (d[3] - d[1])
            ag = (g[2] - g[0]) * (g[3] - g[1])
            union = ad if crowd[j] else ad + ag - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out


def evaluate_img(dt, gt):
    """COCOeval.evaluateImg with aRng 'all'."""
    if not gt and not dt:
        return None
    gt_ig = np.array([g["crowd"] for g in gt], dtype=int)
    gtind = np.argsort(gt_ig, kind="mergesort")
    gt = [gt[i] for i in gtind]
    gt_ig = gt_ig[gtind]
    dtind = np.argsort([-d["score"] for d in dt], kind="mergesort")
    dt = [dt[i] for i in dtind[0:MAX_DETS]]
    iscrowd = [int(g["crowd"]) for g in gt]
    iou = ious([d["box"] for d in dt], [g["box"] for g in gt], iscrowd) if dt and gt else []
    T, G, D = len(IOU_THRS), len(gt), len(dt)
    gtm = np.zeros((T, G))
    dtm = np.zeros((T, D))
    dt_ig = np.zeros((T, D))
    for tind, t in enumerate(IOU_THRS):
        for dind in range(D):
            best = min([t, 1 - 1e-10])
            m = -1
            for gind in range(G):
                if gtm[tind, gind] > 0 and not iscrowd[gind]:
                    continue
                if m > -1 and gt_ig[m] == 0 and gt_ig[gind] == 1:
                    break
                if iou[dind, gind] < best:
                    continue
                best = iou[dind, gind]
                m = gind
            if m == -1:
                continue
            dt_ig[tind, dind] = gt_ig[m]
            dtm[tind, dind] = dind + 1  # COCO stores the matched ids (> 0)
            gtm[tind, m] = dind + 1
    return dict(dtMatches=dtm, dtScores=[d["score"] for d in dt], gtIgnore=gt_ig, dtIgnore=dt_ig)


def accumulate(evals):
    """COCOeval.accumulate for one category: precision [T, R] or None without positives."""
    E = [e for e in evals if e is not None]
    if not E:
        return None, None
    dt_scores = np.concatenate([e["dtScores"][0:MAX_DETS] for e in E])
    inds = np.argsort(-dt_scores, kind="mergesort")
    dtm = np.concatenate([e["dtMatches"][:, 0:MAX_DETS] for e in E], axis=1)[:, inds]
    dt_ig = np.concatenate([e["dtIgnore"][:, 0:MAX_DETS] for e in E], axis=1)[:, inds]
    gt_ig = np.concatenate([e["gtIgnore"] for e in E])
    npig = np.count_nonzero(gt_ig == 0)
    if npig == 0:
        return None, None
    tps = np.logical_and(dtm, np.logical_not(dt_ig))
    fps = np.logical_and(np.logical_not(dtm), np.logical_not(dt_ig))
    tp_sum = np.cumsum(tps, axis=1).astype(dtype=float)
    fp_sum = np.cumsum(fps, axis=1).astype(dtype=float)
    precision = np.zeros((len(IOU_THRS), len(REC_THRS)))
    for t, (tp, fp) in enumerate(zip(tp_sum, fp_sum)):
        tp = np.array(tp)
        fp = np.array(fp)
        nd = len(tp)
        rc = tp / npig
        pr = tp / (fp + tp + np.spacing(1))
        q = np.zeros((len(REC_THRS),))
        pr = pr.tolist()
        q = q.tolist()
        for i in range(nd - 1, 0, -1):
            if pr[i] > pr[i - 1]:
                pr[i - 1] = pr[i]
        inds_r = np.searchsorted(rc, REC_THRS, side="left")
        try:
            for ri, pi in enumerate(inds_r):
                q[ri] = pr[pi]
        except IndexError:
            pass
        precision[t] = np.array(q)
    return precision, (dt_scores[inds], dtm[0] > 0, dt_ig[0] > 0, npig)


def smooth(y, f=0.05):
    nf = round(len(y) * f * 2) // 2 + 1
    p = np.ones(nf // 2)
    yp = np.concatenate((p * y[0], y, p * y[-1]), 0)
    return np.convolve(yp, np.ones(nf) / nf, mode="valid")


def main():
    out_path = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else (
        pathlib.Path(__file__).resolve().parents[1] / "data" / "detect" / "map_golden.json")
    gts, dts = make_set(np.random.default_rng(20261207))
    classes = sorted({g["cls"] for g in gts} | {d["cls"] for d in dts})
    images = sorted({g["image"] for g in gts} | {d["image"] for d in dts})
    px = np.linspace(0, 1, 1000)
    per_class, curves_p, curves_r = [], [], []
    for k in classes:
        evals = [evaluate_img([d for d in dts if d["image"] == i and d["cls"] == k],
                              [g for g in gts if g["image"] == i and g["cls"] == k]) for i in images]
        precision, matched = accumulate(evals)
        if precision is None:
            continue
        ap = precision.mean(axis=1)
        scores, tp, ignored, npig = matched
        conf = scores[~ignored]
        tp = tp[~ignored].astype(float)
        p = np.zeros(1000)
        r = np.zeros(1000)
        if len(conf):  # Ultralytics' ap_per_class curves at IoU 0.5
            tpc = tp.cumsum()
            fpc = (1 - tp).cumsum()
            recall = tpc / (npig + 1e-16)
            prec = tpc / (tpc + fpc)
            r = np.interp(-px, -conf, recall, left=0)
            p = np.interp(-px, -conf, prec, left=1)
        curves_p.append(p)
        curves_r.append(r)
        per_class.append(dict(cls=k, ground_truths=int(npig), ap=ap.tolist(), ap50=float(ap[0]),
                              ap50_95=float(ap.mean()), pr_curve=precision[0].tolist()))
    P, R = np.array(curves_p), np.array(curves_r)
    f1 = 2 * P * R / (P + R + 1e-16)
    best = int(smooth(f1.mean(0), 0.1).argmax())
    for c, p, r in zip(per_class, P, R):
        c["precision"], c["recall"] = float(p[best]), float(r[best])
    golden = dict(
        generator="tests/scripts/detection_map_reference.py", max_detections=MAX_DETS,
        detections=[dict(image=d["image"], cls=d["cls"], box=d["box"], score=d["score"]) for d in dts],
        truths=[dict(image=g["image"], cls=g["cls"], box=g["box"], crowd=g["crowd"]) for g in gts],
        classes=per_class,
        map50=float(np.mean([c["ap50"] for c in per_class])),
        map50_95=float(np.mean([c["ap50_95"] for c in per_class])),
        precision=float(np.mean([c["precision"] for c in per_class])),
        recall=float(np.mean([c["recall"] for c in per_class])),
        confidence=float(px[best]),
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(golden, indent=None, separators=(",", ":")) + "\n")
    print(f"{out_path}: {len(dts)} detections, {len(gts)} truths, mAP50 {golden['map50']:.6f} "
          f"mAP50-95 {golden['map50_95']:.6f} P {golden['precision']:.6f} R {golden['recall']:.6f}")


if __name__ == "__main__":
    main()
