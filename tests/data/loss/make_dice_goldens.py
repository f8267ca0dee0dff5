#!/usr/bin/env python3
"""Goldens for tests/unit/loss_dice_test.cpp: the segmentation losses of onnxtrain (dice,
cross_entropy_dice, and cross_entropy on [N, C, H, W] with ignore 255) computed by PyTorch,
with the gradient w.r.t. the logits.

    /usr/bin/python3 tests/data/loss/make_dice_goldens.py

Writes tests/data/loss/dice_goldens.npz in the format of make_loss_goldens.py: per case <c>
  <c>.options uint8 text "kind=...;key=value;...", <c>.input float32 logits [N, C, d...],
  <c>.target int64 [N, d...], <c>.loss float64, <c>.grad float32.
torch runs in float64 on the stored float32 values.

The Dice reference (the formula docs/segmentation.md states): p = softmax over C, t = one-hot
targets, both zeroed at ignored pixels; per class over the whole batch
D_c = (2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth); loss = mean_c (1 - D_c), or the
class_weights-weighted mean; cross_entropy_dice = F.cross_entropy + dice_weight * dice.
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20261207)
cases = {}
IGNORE = 255


def dice(x, t, smooth=1.0, weights=None, ignore=IGNORE):
    c = x.shape[1]
    keep = t != ignore
    safe = torch.where(keep, t, torch.zeros_like(t))
    hot = F.one_hot(safe, c).movedim(-1, 1).to(x.dtype)
    k = keep.unsqueeze(1).to(x.dtype)
    p = torch.softmax(x, 1) * k
    hot = hot * k
    dims = (0,) + tuple(range(2, x.dim()))
    d = (2 * (p * hot).sum(dims) + smooth) / (p.sum(dims) + hot.sum(dims) + smooth)
    per_class = 1 - d
    if weights is None:
        return per_class.mean()
    w = torch.tensor(weights, dtype=x.dtype)
    return (per_class * w).sum() / w.sum()


def add(name, options, x, target, fn):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    loss = fn(xt, torch.tensor(target))
    loss.backward()
    assert torch.isfinite(loss), name
    text = ";".join(f"{k}={','.join(repr(float(v)) for v in val) if isinstance(val, list) else val}"
                    for k, val in options.items())
    cases[name + ".options"] = np.frombuffer(text.encode(), dtype=np.uint8)
    cases[name + ".input"] = x
    cases[name + ".target"] = target
    cases[name + ".loss"] = np.array(loss.item(), dtype=np.float64)
    cases[name + ".grad"] = xt.grad.numpy().astype(np.float32)


def case(shape, c, ignored=0, absent=None):
    x = (rng.standard_normal(shape) * 2).astype(np.float32)
    t = rng.integers(0, c, size=(shape[0],) + shape[2:]).astype(np.int64)
    if absent is not None:  # a class no target holds
        t[t == absent] = (absent + 1) % c
    if ignored:
        flat = t.reshape(-1)
        flat[rng.choice(flat.size, size=ignored, replace=False)] = IGNORE
    return x, t


W = [0.5, 2.0, 1.0, 1.5]
x, t = case((2, 4, 5, 6), 4)
add("dice.plain", {"kind": "dice"}, x, t, lambda a, b: dice(a, b))
x, t = case((2, 4, 5, 6), 4, ignored=13)
add("dice.ignore", {"kind": "dice", "ignore_index": IGNORE}, x, t, lambda a, b: dice(a, b))
x, t = case((2, 4, 5, 6), 4, ignored=7, absent=2)
add("dice.absent_class", {"kind": "dice", "ignore_index": IGNORE}, x, t, lambda a, b: dice(a, b))
x, t = case((2, 4, 5, 6), 4)
add("dice.smooth0", {"kind": "dice", "dice_smooth": 0.0}, x, t, lambda a, b: dice(a, b, smooth=0.0))
x, t = case((3, 4, 7), 4, ignored=4)
add("dice.weights_rank3", {"kind": "dice", "ignore_index": IGNORE, "class_weights": W, "dice_smooth": 0.5}, x, t,
    lambda a, b: dice(a, b, smooth=0.5, weights=W))
x, t = case((2, 4, 5, 6), 4, ignored=9)
add("cross_entropy_dice.plain", {"kind": "cross_entropy_dice", "ignore_index": IGNORE}, x, t,
    lambda a, b: F.cross_entropy(a, b, ignore_index=IGNORE) + dice(a, b))
x, t = case((2, 4, 5, 6), 4, ignored=9)
add("cross_entropy_dice.weighted", {"kind": "cross_entropy_dice", "ignore_index": IGNORE, "class_weights": W,
                                    "dice_weight": 0.5, "dice_smooth": 2.0}, x, t,
    lambda a, b: F.cross_entropy(a, b, weight=torch.tensor(W, dtype=a.dtype), ignore_index=IGNORE)
    + 0.5 * dice(a, b, smooth=2.0, weights=W))
# The existing cross_entropy on segmentation-shaped logits, weights and ignore 255.
x, t = case((2, 3, 6, 7), 3, ignored=11)
add("cross_entropy.nchw", {"kind": "cross_entropy", "ignore_index": IGNORE, "class_weights": W[:3]}, x, t,
    lambda a, b: F.cross_entropy(a, b, weight=torch.tensor(W[:3], dtype=a.dtype), ignore_index=IGNORE))

out = os.path.join(HERE, "dice_goldens.npz")
np.savez_compressed(out, **cases)
print(f"wrote {out}: {len(cases) // 5} cases")
