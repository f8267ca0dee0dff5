#!/usr/bin/python3
"""The detection proof: a YOLOv5-style detector of ours (models/families/architectures.py
TinyYolo) on the synthetic shapes dataset (make_shapes.py), briefly pre-trained in PyTorch
and exported for onnxtrain to fine-tune; then the same fine-tuning recipe run in PyTorch,
whose mAP@0.5 sets the bar tests/cli/detect_cli_test.cpp holds onnxtrain to.

    make_detector.py            # writes shapes/ (if missing), tiny_yolo.onnx, recipe.json

Needs python3-torch (1.13) and numpy/PIL. The loss is tests/scripts/yolo_loss_reference.py's
(our PyTorch YOLOv5 loss, float64 there; float32 here) and mAP is
tests/scripts/detection_map_reference.py's COCOeval transcription with 100 detections per
image, after class-aware NMS (IoU 0.7, confidence 0.001) as onnxtrain validates.
"""
import json
import pathlib
import subprocess
import sys

import numpy as np
import torch
import torchvision
from PIL import Image

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT / "models" / "families"), str(ROOT / "tests" / "scripts")]
import architectures as arch  # noqa: E402
import detection_map_reference as mapref  # noqa: E402
import yolo_loss_reference as lossref  # noqa: E402

SIZE, CLASSES, NAMES = 96, 3, ["circle", "square", "triangle"]
# Objects span 11-40 px: three anchors per level around the sizes each stride sees best.
ANCHORS = [[10, 10, 14, 14, 18, 18], [22, 22, 26, 26, 30, 30], [34, 34, 38, 38, 44, 44]]
# Ultralytics scales its gains by the image size, classes and levels (hyp obj *= (imgsz/640)^2,
# cls *= nc/80): at 96 px and 3 classes objectness would otherwise drown the box loss.
GAINS = dict(box=0.05, obj=1.0 * (SIZE / 640) ** 2, cls=0.5 * CLASSES / 80)
PRETRAIN = dict(epochs=4, lr=2e-3, batch=16, seed=0)
# The fine-tuning recipe the test runs with `onnxtrain train --task detect` (no augmentation,
# so both runs see the same images; the batch order differs).
FINETUNE = dict(epochs=16, lr=2e-3, batch=16, seed=1, optimizer="adam")


def load_split(split):
    files = sorted((HERE / "shapes" / "images" / split).glob("*.jpg"))
    images = np.stack([np.asarray(Image.open(f).convert("RGB"), np.float32).transpose(2, 0, 1) / 255 for f in files])
    boxes = []
    for f in files:
        label = HERE / "shapes" / "labels" / split / (f.stem + ".txt")
        boxes.append(np.loadtxt(label, ndmin=2) if label.stat().st_size else np.zeros((0, 5)))
    return torch.tensor(images), boxes


def targets_of(boxes, index):
    rows = [[i, *b] for i, k in enumerate(index) for b in boxes[k]]
    return torch.tensor(rows, dtype=torch.float32).view(-1, 6)


def heads(outputs):
    n = outputs[0].shape[0]
    return [o.view(n, 3, 5 + CLASSES, o.shape[2], o.shape[3]).permute(0, 1, 3, 4, 2).contiguous() for o in outputs]


def train(model, images, boxes, recipe, opt=None):
    torch.manual_seed(recipe["seed"])
    loss_fn = lossref.YoloV5Loss(CLASSES, ANCHORS, (SIZE, SIZE), **GAINS)
    opt = opt or torch.optim.Adam(model.parameters(), lr=recipe["lr"])
    model.train()
    for _ in range(recipe["epochs"]):
        order = torch.randperm(len(images))
        for s in range(0, len(images), recipe["batch"]):
            index = order[s:s + recipe["batch"]].tolist()
            loss, _ = loss_fn(heads(model(images[index])), targets_of(boxes, index))
            opt.zero_grad()
            loss.backward()
            opt.step()


@torch.no_grad()
def map50(model, images, boxes):
    """Validation as onnxtrain does it: decode, class-aware NMS (IoU 0.7, conf 0.001, at
    most 300), COCO mAP with 100 detections per image; boxes in input pixels."""
    model.eval()
    mapref.MAX_DETS = 100
    dts, gts = [], []
    for i in range(len(images)):
        found = []
        for level, p in enumerate(heads(model(images[i:i + 1]))):
            _, a, h, w, _ = p.shape
            stride = SIZE / h
            gy, gx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
            s = p[0].sigmoid()
            anchors = torch.tensor(ANCHORS[level], dtype=torch.float32).view(a, 1, 1, 2)
            xy = (s[..., :2] * 2 - 0.5 + torch.stack((gx, gy), -1)) * stride
            wh = (s[..., 2:4] * 2) ** 2 * anchors
            score = s[..., 4:5] * s[..., 5:]
            xyxy = torch.cat((xy - wh / 2, xy + wh / 2), -1).view(-1, 4)
            score = score.reshape(-1, CLASSES)
            cell, cls = (score > 0.001).nonzero(as_tuple=True)
            found.append((xyxy[cell], score[cell, cls], cls))
        xyxy, score, cls = (torch.cat(t) for t in zip(*found))
        keep = torchvision.ops.batched_nms(xyxy, score, cls, 0.7)[:300]
        dts += [dict(image=i, cls=int(cls[k]), box=xyxy[k].tolist(), score=float(score[k])) for k in keep]
        gts += [dict(image=i, cls=int(c), crowd=False, box=[(x - bw / 2) * SIZE, (y - bh / 2) * SIZE, (x + bw / 2) * SIZE,
                                                           (y + bh / 2) * SIZE]) for c, x, y, bw, bh in boxes[i]]
    aps = []
    for k in range(CLASSES):
        evals = [mapref.evaluate_img([d for d in dts if d["image"] == i and d["cls"] == k],
                                     [g for g in gts if g["image"] == i and g["cls"] == k]) for i in range(len(images))]
        precision, _ = mapref.accumulate(evals)
        if precision is not None:
            aps.append(precision[0].mean())
    return float(np.mean(aps))


def main():
    if not (HERE / "shapes" / "data.yaml").exists():
        subprocess.run([sys.executable, str(HERE / "make_shapes.py"), str(HERE / "shapes")], check=True)
    train_images, train_boxes = load_split("train")
    val_images, val_boxes = load_split("val")
    torch.manual_seed(PRETRAIN["seed"])
    model = arch.TinyYolo(classes=CLASSES, anchors=3, w=8)
    train(model, train_images, train_boxes, PRETRAIN)
    start = map50(model, val_images, val_boxes)
    path = HERE / "tiny_yolo.onnx"
    model.train()
    torch.onnx.export(model, val_images[:2], str(path), opset_version=17, training=torch.onnx.TrainingMode.TRAINING,
                      do_constant_folding=False, input_names=["images"], output_names=["p3", "p4", "p5"],
                      dynamic_axes={n: {0: "batch"} for n in ["images", "p3", "p4", "p5"]})
    import onnx
    m = onnx.load(str(path))
    for key, value in dict(anchors=json.dumps(ANCHORS), names=json.dumps(NAMES), stride="[8, 16, 32]").items():
        m.metadata_props.add(key=key, value=value)
    onnx.save(m, str(path))
    trace = []
    opt = torch.optim.Adam(model.parameters(), lr=FINETUNE["lr"])
    for e in range(FINETUNE["epochs"]):
        train(model, train_images, train_boxes, dict(FINETUNE, epochs=1, seed=FINETUNE["seed"] + e), opt)
        trace.append(round(map50(model, val_images, val_boxes), 4))
        print("epoch", e + 1, trace[-1], flush=True)
    end = trace[-1]
    recipe = dict(generator="models/detect/make_detector.py", pretrain=PRETRAIN, finetune=FINETUNE, anchors=ANCHORS, gains=GAINS,
                  pytorch_map50_start=start, pytorch_map50_end=end, pytorch_map50_per_epoch=trace)
    (HERE / "recipe.json").write_text(json.dumps(recipe, indent=1) + "\n")
    print(json.dumps(recipe, indent=1))


if __name__ == "__main__":
    main()
