#!/usr/bin/env python3
"""Goldens for the training-step parity test: 10 optimizer steps of PyTorch on a fixed batch.

    /usr/bin/python3 tests/data/optim/make_train_goldens.py [model ...]

For each sample model (models/make_models.py), starting from the initializers of
models/<m>/<m>_op17_train.onnx and the batch in models/<m>/golden.npz (`input.input`) and
grads.npz (`target`), runs the optimizer configurations below in train() mode and writes
tests/data/optim/train_<m>.npz with
  `<config>.loss`           the loss of each of the 10 steps (before its update), float64;
  `<config>.param.<name>`   every parameter after the 10 steps;
  `<config>.buffer.<name>`  every BatchNorm running statistic after the 10 steps (ResNet).
Losses: MSE for the UNet, cross-entropy for the classifiers.

The TRAINING exports' initializers are the state_dict entries under the same names (the
GRU export reorders gates with graph ops, not in its initializers), so loading them into
the PyTorch module starts both from the same point. `num_batches_tracked` is not exported;
it does not matter because BatchNorm uses its fixed momentum 0.1.

The transformer's TRAINING export has Dropout nodes with training_mode=True, but the model
is built with dropout=0.0, so their ratio is 0: they are identities in both frameworks and
no random numbers are involved.

Sizes: a trained parameter's low-order float bits are incompressible, so each config costs
about 4 bytes per parameter. The larger models (transformer 19k parameters, LeNet 27k,
ResNet 76k) get the five basic configurations, the small ones all nine: the optimizer
formulas do not depend on the model, so more configurations there would add bytes, not
coverage (2.8 MB in total, 1.5 MB of it ResNet).
"""
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "models"))
import make_models  # noqa: E402

STEPS = 10
CONFIGS = {
    "sgd": dict(kind="sgd", lr=0.1),
    "sgd_momentum": dict(kind="sgd", lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-3),
    "sgd_nesterov": dict(kind="sgd", lr=0.05, momentum=0.9, nesterov=True),
    "adam": dict(kind="adam", lr=1e-2),
    "adam_amsgrad": dict(kind="adam", lr=1e-2, weight_decay=1e-3, amsgrad=True),
    "adamw": dict(kind="adamw", lr=1e-2, weight_decay=0.05),
    "adagrad": dict(kind="adagrad", lr=0.05, lr_decay=0.01),
    "rmsprop": dict(kind="rmsprop", lr=1e-3, momentum=0.5, centered=True),
    "adam_cosine_clip": dict(kind="adam", lr=1e-2, schedule="cosine", clip=0.5),
}
BASIC = ("sgd", "sgd_momentum", "sgd_nesterov", "adam", "adamw")
# Keep in sync with cases() in tests/parity/train_parity_test.cpp.
MODEL_CONFIGS = {
    "mlp": tuple(CONFIGS),
    "unet": tuple(CONFIGS),
    "gru": tuple(CONFIGS),
    "transformer": BASIC,
    "lenet": BASIC,
    "resnet": BASIC,
}


def optimizer(params, c):
    k = c["kind"]
    if k == "sgd":
        return torch.optim.SGD(params, lr=c["lr"], momentum=c.get("momentum", 0), dampening=c.get("dampening", 0),
                               nesterov=c.get("nesterov", False), weight_decay=c.get("weight_decay", 0))
    if k == "adam":
        return torch.optim.Adam(params, lr=c["lr"], weight_decay=c.get("weight_decay", 0), amsgrad=c.get("amsgrad", False))
    if k == "adamw":
        return torch.optim.AdamW(params, lr=c["lr"], weight_decay=c["weight_decay"])
    if k == "adagrad":
        return torch.optim.Adagrad(params, lr=c["lr"], lr_decay=c.get("lr_decay", 0))
    if k == "rmsprop":
        return torch.optim.RMSprop(params, lr=c["lr"], momentum=c.get("momentum", 0), centered=c.get("centered", False))
    raise ValueError(k)


def initial_state(model, init):
    """The module's state_dict with every entry taken from the export's initializers."""
    state = model.state_dict()
    missing = [k for k in state if k not in init and not k.endswith("num_batches_tracked")]
    unused = [k for k in init if k not in state]
    if missing or unused:
        raise SystemExit(f"export and module disagree: missing {missing}, unused {unused}")
    return {k: torch.from_numpy(init[k].copy()) if k in init else v for k, v in state.items()}


def run(name):
    onnx_model = onnx.load(os.path.join(ROOT, "models", name, f"{name}_op17_train.onnx"))
    init = {t.name: numpy_helper.to_array(t) for t in onnx_model.graph.initializer}
    golden = np.load(os.path.join(ROOT, "models", name, "golden.npz"))
    target = torch.from_numpy(np.load(os.path.join(ROOT, "models", name, "grads.npz"))["target"])
    x = torch.from_numpy(golden["input.input"])
    out = {}
    for cname in MODEL_CONFIGS[name]:
        c = CONFIGS[cname]
        model = make_models.MODELS[name]()
        model.load_state_dict(initial_state(model, init))
        model.train()
        opt = optimizer(model.parameters(), c)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, STEPS) if c.get("schedule") == "cosine" else None
        losses = []
        for _ in range(STEPS):
            opt.zero_grad()
            y = model(x)
            loss = F.mse_loss(y, target) if name == "unet" else F.cross_entropy(y, target)
            loss.backward()
            if "clip" in c:
                torch.nn.utils.clip_grad_norm_(model.parameters(), c["clip"])
            opt.step()
            if sched:
                sched.step()
            losses.append(loss.item())
        out[f"{cname}.loss"] = np.array(losses, dtype=np.float64)
        for pname, p in model.named_parameters():
            out[f"{cname}.param.{pname}"] = p.detach().numpy()
        for bname, b in model.named_buffers():
            if "running_" in bname:
                out[f"{cname}.buffer.{bname}"] = b.numpy()
    path = os.path.join(HERE, f"train_{name}.npz")
    np.savez_compressed(path, **out)
    print(f"{name}: {len(MODEL_CONFIGS[name])} configs, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    torch.set_num_threads(1)
    for name in sys.argv[1:] or MODEL_CONFIGS:
        run(name)
