#!/usr/bin/env python3
"""A small but non-trivial detection dataset in the YOLO layout: circles, squares and
triangles of random colours and sizes, 1-5 per image and often overlapping, on textured
backgrounds (noise, stripes, strokes of every colour). Deterministic for a seed.

    make_shapes.py OUT [--train 160] [--val 48] [--size 96] [--seed 0]

writes OUT/data.yaml, OUT/images/{train,val}/*.jpg and OUT/labels/{train,val}/*.txt
(`class cx cy w h`, normalised). Needs numpy and PIL only."""
import argparse
import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

NAMES = ["circle", "square", "triangle"]


def background(rng, size):
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    img = np.empty((size, size, 3), np.float32)
    angle, freq = rng.uniform(0, math.pi), rng.uniform(0.05, 0.4)
    stripes = 0.5 + 0.5 * np.sin(freq * (x * math.cos(angle) + y * math.sin(angle)))
    for c in range(3):
        img[..., c] = rng.uniform(0.2, 0.8) + rng.uniform(-0.25, 0.25) * stripes
    img += rng.normal(0, rng.uniform(0.03, 0.12), img.shape)
    pil = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for _ in range(rng.integers(2, 6)):  # strokes: distractors without a label
        x0, y0, x1, y1 = rng.uniform(0, size, 4).tolist()
        draw.line([x0, y0, x1, y1], fill=tuple(rng.integers(0, 256, 3).tolist()), width=int(rng.integers(1, 4)))
    return pil.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))


def draw_shape(draw, rng, cls, size):
    s = rng.uniform(0.12, 0.42) * size
    cx, cy = rng.uniform(s / 2, size - s / 2, 2)
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    if cls == 0:
        box = [cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2]
        draw.ellipse(box, fill=colour)
    elif cls == 1:
        a = rng.uniform(0, math.pi / 2)  # rotated square: the box is its rotated extent
        pts = [(cx + s / 2 * math.cos(a + k * math.pi / 2) * math.sqrt(2) * 0.7,
                cy + s / 2 * math.sin(a + k * math.pi / 2) * math.sqrt(2) * 0.7) for k in range(4)]
        draw.polygon(pts, fill=colour)
        box = [min(p[0] for p in pts), min(p[1] for p in pts), max(p[0] for p in pts), max(p[1] for p in pts)]
    else:
        a = rng.uniform(0, 2 * math.pi)
        pts = [(cx + s / 2 * math.cos(a + k * 2 * math.pi / 3), cy + s / 2 * math.sin(a + k * 2 * math.pi / 3))
               for k in range(3)]
        draw.polygon(pts, fill=colour)
        box = [min(p[0] for p in pts), min(p[1] for p in pts), max(p[0] for p in pts), max(p[1] for p in pts)]
    x1, y1, x2, y2 = (min(max(v, 0), size) for v in box)
    return cls, (x1 + x2) / 2 / size, (y1 + y2) / 2 / size, (x2 - x1) / size, (y2 - y1) / size


def write_split(out, split, count, size, rng):
    os.makedirs(os.path.join(out, "images", split), exist_ok=True)
    os.makedirs(os.path.join(out, "labels", split), exist_ok=True)
    for i in range(count):
        img = background(rng, size)
        draw = ImageDraw.Draw(img)
        lines = []
        for _ in range(rng.integers(1, 6)):
            lines.append("%d %.6f %.6f %.6f %.6f" % draw_shape(draw, rng, int(rng.integers(0, 3)), size))
        name = "%s_%04d" % (split, i)
        img.save(os.path.join(out, "images", split, name + ".jpg"), quality=92)
        with open(os.path.join(out, "labels", split, name + ".txt"), "w") as f:
            f.write("\n".join(lines) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("--train", type=int, default=160)
    p.add_argument("--val", type=int, default=48)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    write_split(a.out, "train", a.train, a.size, rng)
    write_split(a.out, "val", a.val, a.size, rng)
    with open(os.path.join(a.out, "data.yaml"), "w") as f:
        f.write("# make_shapes.py --train %d --val %d --size %d --seed %d\n" % (a.train, a.val, a.size, a.seed))
        f.write("train: images/train\nval: images/val\nnc: 3\nnames: [%s]\n" % ", ".join(NAMES))


if __name__ == "__main__":
    main()
