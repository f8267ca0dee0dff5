#!/usr/bin/env python3
"""A small segmentation net of ours and the synthetic shapes dataset it is trained on.

    /usr/bin/python3 models/segnet/make_segnet.py data OUT_DIR   # the dataset (numpy only)
    /usr/bin/python3 models/segnet/make_segnet.py export         # models/segnet/segnet.onnx (torch)
    /usr/bin/python3 models/segnet/make_segnet.py reference DIR  # the PyTorch run of the recipe below

Dataset: 64x64 RGB images of 2-4 overlapping shapes on textured backgrounds; masks are 8-bit
PNGs of class ids: 0 background, 1 disc, 2 square, 3 triangle. Backgrounds are stripes of
two random greyish colours at a random angle and period, plus noise; each shape's colour is
drawn around its class's hue (+-0.08) with random saturation and value, plus noise; later
shapes cover earlier ones. 200 training and 50 validation images, fully determined by the
seed (PNGs written with zlib, no imaging library).

Model (SegNetSmall, 21k parameters): conv3x3 16 -> conv3x3/2 32 -> conv3x3 32 ->
ConvTranspose2x2/2 16 -> concat with the first features -> conv3x3 16 -> conv1x1 4 classes;
ReLU between, no BatchNorm. Exported at opset 13 with torch.manual_seed(0) weights:
training starts from scratch.

Recipe (tests/cli/segment_cli_test.cpp runs it with onnxtrain): Adam lr 5e-3, batch 16,
4 epochs, shuffled, no augmentation, cross_entropy. PyTorch 1.13 (Debian), same data and
initial weights, `reference` (val mIoU as our metric: classes in neither truth nor
prediction left out of the mean):
    start 0.0108, epochs 1-4: 0.1898 0.5267 0.8615 0.9429  (REFERENCE_MIOU below)
onnxtrain with the same recipe, for comparison (different shuffling):
    epochs 1-4: 0.1898 0.4741 0.9319 0.9345
"""
import os
import struct
import sys
import zlib

import numpy as np

SIZE = 64
CLASSES = 4
TRAIN, VAL = 200, 50
SEED = 20261207
REFERENCE_MIOU = 0.9429
EPOCHS, BATCH, LR = 4, 16, 5e-3
HERE = os.path.dirname(os.path.abspath(__file__))


def write_png(path, a):
    """8-bit grey (H, W) or RGB (H, W, 3) PNG."""
    h, w = a.shape[:2]
    raw = b"".join(b"\x00" + a[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 0 if a.ndim == 2 else 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def hsv_rgb(h, s, v):
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


def sample(rng):
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    # Background: stripes of a random colour pair, angle and period, plus noise.
    angle, period = rng.uniform(0, np.pi), rng.uniform(4, 16)
    stripes = (np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period) > 0)[..., None]
    c1, c2 = rng.uniform(0.15, 0.85) + rng.uniform(-0.08, 0.08, 3), rng.uniform(0.15, 0.85) + rng.uniform(-0.08, 0.08, 3)
    image = np.where(stripes, c1, c2) + rng.normal(0, 0.06, (SIZE, SIZE, 3))
    mask = np.zeros((SIZE, SIZE), np.uint8)
    hue_centre = {1: 0.0, 2: 0.33, 3: 0.66}
    for _ in range(rng.integers(2, 5)):
        cls = int(rng.integers(1, 4))
        r = rng.uniform(8, 16)
        cx, cy = rng.uniform(r, SIZE - r), rng.uniform(r, SIZE - r)
        if cls == 1:
            inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        elif cls == 2:
            inside = (np.abs(xx - cx) <= r * 0.85) & (np.abs(yy - cy) <= r * 0.85)
        else:  # an upward triangle
            inside = (yy <= cy + r * 0.8) & (yy - (cy - r) >= 1.7 * np.abs(xx - cx))
        hue = (hue_centre[cls] + rng.uniform(-0.08, 0.08)) % 1.0
        color = np.array(hsv_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0)))
        image[inside] = color + rng.normal(0, 0.06, (int(inside.sum()), 3))
        mask[inside] = cls
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), mask


def make_data(out):
    rng = np.random.default_rng(SEED)
    for split, count in (("train", TRAIN), ("val", VAL)):
        for sub in ("images", "masks"):
            os.makedirs(os.path.join(out, split, sub), exist_ok=True)
        for i in range(count):
            image, mask = sample(rng)
            write_png(os.path.join(out, split, "images", f"{i:04d}.png"), image)
            write_png(os.path.join(out, split, "masks", f"{i:04d}.png"), mask)


def model():
    import torch
    from torch import nn

    class SegNetSmall(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU())
            self.down = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(32, 32, 3, padding=1), nn.ReLU())
            self.up = nn.Sequential(nn.ConvTranspose2d(32, 16, 2, stride=2), nn.ReLU())
            self.head = nn.Sequential(nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, CLASSES, 1))

        def forward(self, x):
            e = self.enc(x)
            return self.head(torch.cat([self.up(self.down(e)), e], dim=1))

    torch.manual_seed(0)
    return SegNetSmall()


def export(net):
    import torch
    net = net.eval()
    path = os.path.join(HERE, "segnet.onnx")
    torch.onnx.export(net, torch.zeros(1, 3, SIZE, SIZE), path, opset_version=13, input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    print("wrote", path)


def load(split_dir):
    import zlib as z
    names = sorted(os.listdir(os.path.join(split_dir, "images")))

    def read_png(path):
        data = open(path, "rb").read()
        w, h, _, ct = struct.unpack(">IIBB", data[16:26])
        idat, pos = b"", 8
        while pos < len(data):
            n = struct.unpack(">I", data[pos:pos + 4])[0]
            if data[pos + 4:pos + 8] == b"IDAT":
                idat += data[pos + 8:pos + 8 + n]
            pos += 12 + n
        c = 3 if ct == 2 else 1
        raw = np.frombuffer(z.decompress(idat), np.uint8).reshape(h, 1 + w * c)[:, 1:]  # filter 0 rows (ours)
        return raw.reshape(h, w, c) if c == 3 else raw.reshape(h, w)

    x = np.stack([read_png(os.path.join(split_dir, "images", n)) for n in names]).astype(np.float32) / 255
    y = np.stack([read_png(os.path.join(split_dir, "masks", n)) for n in names]).astype(np.int64)
    return x.transpose(0, 3, 1, 2).copy(), y


def miou(pred, truth):
    cm = np.bincount(truth.ravel() * CLASSES + pred.ravel(), minlength=CLASSES * CLASSES).reshape(CLASSES, CLASSES)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    return float(np.mean(tp[union > 0] / union[union > 0]))


def train(net, x, y, epochs, lr, batch, seed, report=None):
    import torch
    import torch.nn.functional as F
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(batch):
            loss = F.cross_entropy(net(torch.tensor(x[idx.numpy()])), torch.tensor(y[idx.numpy()]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        if report:
            report(epoch, loss.item())


def reference(data):
    import onnx
    import torch
    from onnx import numpy_helper
    torch.set_num_threads(2)
    xt, yt = load(os.path.join(data, "train"))
    xv, yv = load(os.path.join(data, "val"))
    net = model()
    weights = {t.name: torch.tensor(numpy_helper.to_array(t)) for t in onnx.load(os.path.join(HERE, "segnet.onnx")).graph.initializer}
    net.load_state_dict({k: weights[k] for k in net.state_dict()})
    evaluate = lambda: miou(net(torch.tensor(xv)).argmax(1).numpy(), yv)
    with torch.no_grad():
        print(f"start val mIoU {evaluate():.4f}")

    def report(epoch, loss):
        with torch.no_grad():
            print(f"epoch {epoch + 1} loss {loss:.4f} val mIoU {evaluate():.4f}", flush=True)

    train(net, xt, yt, EPOCHS, LR, BATCH, 0, report)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "data" and len(sys.argv) == 3:
        make_data(sys.argv[2])
    elif sys.argv[1:] == ["export"]:
        export(model())
    elif len(sys.argv) == 3 and sys.argv[1] == "reference":
        reference(sys.argv[2])
    else:
        sys.exit(__doc__)
