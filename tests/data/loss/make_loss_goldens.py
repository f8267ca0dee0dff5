#!/usr/bin/env python3
"""Goldens for tests/unit/loss_test.cpp: every built-in loss kind of onnxtrain, computed by
torch.nn.functional, with the gradient w.r.t. the model output.

    /usr/bin/python3 tests/data/loss/make_loss_goldens.py

Writes tests/data/loss/loss_goldens.npz. For each case <c> it holds
  <c>.options  uint8 text "kind=...;reduction=...;key=value;..." with the LossOptions fields
               to set (vectors comma-separated), parsed by the test;
  <c>.input    the model output (float32, or float64 for the *_f64 cases);
  <c>.target   the targets (int64 class indices or the input's dtype);
  <c>.loss     float64 scalar; <c>.grad  dL/d(input) in the input's dtype.
torch runs in float64 on the stored values, so the goldens are exact to float64 and the
test's tolerance measures onnxtrain's float32 arithmetic alone.
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20240613)
cases = {}


def fmt(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(repr(float(v)) for v in value)
    return str(value)


def add(name, options, x, target, fn):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tt = torch.tensor(target, dtype=torch.int64 if target.dtype == np.int64 else torch.float64)
    loss = fn(xt, tt)
    loss.backward()
    assert torch.isfinite(loss), name
    text = ";".join(f"{k}={fmt(v)}" for k, v in options.items())
    cases[name + ".options"] = np.frombuffer(text.encode(), dtype=np.uint8)
    cases[name + ".input"] = x
    cases[name + ".target"] = target
    cases[name + ".loss"] = np.array(loss.item(), dtype=np.float64)
    cases[name + ".grad"] = xt.grad.numpy().astype(x.dtype)


def logits(*shape, scale=2.0, dtype=np.float32):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def classes(shape, c, ignore=None, count=0):
    t = rng.integers(0, c, size=shape).astype(np.int64)
    if ignore is not None:  # `count` targets get the ignored value
        flat = t.reshape(-1)
        flat[rng.choice(flat.size, size=count, replace=False)] = ignore
    return t


# cross_entropy / nll: [N, C] and a spatial [N, C, d] case; weights, ignore_index,
# label smoothing and their combinations (torch's weighted mean excludes ignored targets).
C = 4
weights = [0.5, 2.0, 1.0, 3.0]
variants = {
    "plain": {},
    "weights": {"class_weights": weights},
    "ignore": {"ignore": -100},
    "ignore2": {"ignore_index": 2},
    "weights_ignore": {"class_weights": weights, "ignore": -100},
}
smoothing = {
    "smooth": {"label_smoothing": 0.1},
    "smooth_weights": {"label_smoothing": 0.2, "class_weights": weights},
    "smooth_ignore": {"label_smoothing": 0.15, "ignore": -100},
    "smooth_weights_ignore2": {"label_smoothing": 0.3, "class_weights": weights, "ignore_index": 2},
}
for kind in ["cross_entropy", "nll"]:
    for reduction in ["mean", "sum"]:
        for vname, v in {**variants, **(smoothing if kind == "cross_entropy" else {})}.items():
            # The spatial form ([N, C, d]) for the plain and the most combined variants.
            spatial = vname in ("plain", "weights_ignore", "smooth_weights_ignore2")
            for shape in [(6, C)] + ([(3, C, 5)] if spatial else []):
                opts = {k: val for k, val in v.items() if k != "ignore"}
                ignore = v.get("ignore", opts.get("ignore_index"))
                x = logits(*shape)
                if kind == "nll":
                    x = torch.log_softmax(torch.tensor(x), 1).numpy()
                tshape = (shape[0],) + shape[2:]
                t = classes(tshape, C, ignore, 2)
                w = torch.tensor(opts["class_weights"], dtype=torch.float64) if "class_weights" in opts else None
                ii = opts.get("ignore_index", -100)
                ls = opts.get("label_smoothing", 0.0)
                if kind == "cross_entropy":
                    fn = lambda a, b, w=w, ii=ii, ls=ls, r=reduction: F.cross_entropy(
                        a, b, weight=w, ignore_index=ii, reduction=r, label_smoothing=ls)
                else:
                    fn = lambda a, b, w=w, ii=ii, r=reduction: F.nll_loss(a, b, weight=w, ignore_index=ii, reduction=r)
                name = f"{kind}.{reduction}.{vname}.{'x'.join(map(str, shape))}"
                add(name, {"kind": kind, "reduction": reduction, **opts}, x, t, fn)

# Elementwise regression losses on [4, 3] (plus one float64 case each for mse/huber).
for reduction in ["mean", "sum"]:
    def reg(name, kind, fn, dtype=np.float32, **opts):
        x, t = logits(4, 3, dtype=dtype), logits(4, 3, dtype=dtype)
        add(f"{name}.{reduction}", {"kind": kind, "reduction": reduction, **opts}, x, t, fn)

    reg("mse", "mse", lambda a, b, r=reduction: F.mse_loss(a, b, reduction=r))
    reg("mse_f64", "mse", lambda a, b, r=reduction: F.mse_loss(a, b, reduction=r), dtype=np.float64)
    reg("l1", "l1", lambda a, b, r=reduction: F.l1_loss(a, b, reduction=r))
    for beta in [1.0, 0.5, 2.5, 0.0]:
        reg(f"smooth_l1_beta{beta}", "smooth_l1",
            lambda a, b, r=reduction, beta=beta: F.smooth_l1_loss(a, b, reduction=r, beta=beta), beta=beta)
    for delta in [1.0, 0.3, 2.5]:
        reg(f"huber_delta{delta}", "huber",
            lambda a, b, r=reduction, d=delta: F.huber_loss(a, b, reduction=r, delta=d), delta=delta)
    reg("huber_f64", "huber", lambda a, b, r=reduction: F.huber_loss(a, b, reduction=r, delta=0.7),
        dtype=np.float64, delta=0.7)

    # bce_with_logits: multi-label [5, 3] targets in {0, 1} plus soft targets; logits up
    # to +-40 check the stable form (exp(40) overflows nothing, log(sigmoid(-40)) is -40).
    pos_weight = [0.5, 3.0, 1.5]
    for pname, pw in [("plain", None), ("pos_weight", pos_weight)]:
        x = logits(5, 3, scale=3.0)
        x[0] = [40.0, -40.0, 25.0]
        t = (rng.random((5, 3)) > 0.5).astype(np.float32)
        t[4] = [0.25, 0.5, 0.9]
        pwt = torch.tensor(pw, dtype=torch.float64) if pw else None
        opts = {"pos_weight": pw} if pw else {}
        add(f"bce_with_logits.{reduction}.{pname}", {"kind": "bce_with_logits", "reduction": reduction, **opts}, x, t,
            lambda a, b, r=reduction, p=pwt: F.binary_cross_entropy_with_logits(a, b, reduction=r, pos_weight=p))

# kl_div: log-probability inputs; probability targets (some exactly 0) or log-targets.
for reduction in ["mean", "sum", "batchmean"]:
    for log_target in [False, True]:
        x = torch.log_softmax(torch.tensor(logits(4, 5)), 1).numpy()
        p = torch.softmax(torch.tensor(logits(4, 5)), 1).numpy()
        if log_target:
            t = np.log(p).astype(np.float32)
        else:
            p[1, 2] = 0.0
            p[3, 0] = 0.0
            t = p.astype(np.float32)
        add(f"kl_div.{reduction}.{'log_target' if log_target else 'prob'}",
            {"kind": "kl_div", "reduction": reduction, "log_target": log_target}, x, t,
            lambda a, b, r=reduction, lt=log_target: F.kl_div(a, b, reduction=r, log_target=lt))

out = os.path.join(HERE, "loss_goldens.npz")
np.savez_compressed(out, **cases)
print(f"wrote {out}: {len(cases) // 5} cases")
