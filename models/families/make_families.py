#!/usr/bin/env python3
"""Small members of the model families people fine-tune (architectures.py), exported from
PyTorch the way users do (torch.onnx.export, training mode, opset 17), with the goldens of
onnxtrain's family parity tests (tests/parity/family_test.cpp).

    /usr/bin/python3 models/families/make_families.py [--out DIR] [NAME...]

For each family it writes <name>.onnx (float64), <name>.f32.onnx (the same model in float32)
and <name>.npz:
  feed.<name>            the batch (inputs and targets; the same batch every step)
  loss, grad.<param>     float64 loss and gradients of the first training step
  loss10, param10.<p>    float64 losses of 10 optimizer steps and the parameters after them
  opt                    [adam?, lr, momentum] of those steps
  f32err.grad.<p>, f32err.param10.<p>, f32err.loss, f32err.loss10
                         PyTorch float32's own distance from float64 (max abs), the largest
                         over eight float32 runs that differ only in rounding (1 or 2
                         threads, half the parameters nudged by one ulp): the scale that
                         separates rounding from bugs. Where it is large, float32 training
                         is chaotic there (see RUNS32).
Families whose loss is not a built-in kind also get <name>.loss.onnx and <name>.loss.f32.onnx
(a custom loss model in each float type).
Seeded: re-running gives the same files.
"""
import argparse
import copy
import os
from functools import partial

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper

import architectures as arch

ROOT = os.path.dirname(os.path.abspath(__file__))
STEPS = 10
SGD = (0, 0.02, 0.9)    # [adam?, lr, momentum]
ADAM = (1, 1e-3, 0.0)
# Small conv nets with BatchNorm and ReLU on tiny images amplify float32 rounding to 1e-2 in
# the loss within ten SGD steps (ReLU masks and max-pool winners flip; BatchNorm over the few
# values of a 2x2 level): a test could judge nothing there. A small Adam step keeps most of
# their tensors below 1e-3 of their scale (measured with RUNS32).
GENTLE = (1, 1e-4, 0.0)
# Except the detector: its gradients have many elements near zero, where Adam's update
# g / (|g| + eps) is decided by float32 rounding; plain small SGD steps are linear in g.
DETECTOR = (0, 1e-3, 0.0)

# name -> (constructor, input shape, classes, optimizer of the 10-step run); "tokens"
# models take int64 ids.
FAMILIES = {
    "efficientnet": (arch.efficientnet_small, (4, 3, 32, 32), 10, SGD),
    "convnext": (arch.convnext_small, (4, 3, 32, 32), 10, ADAM),
    "vit": (arch.vit_small, (4, 3, 32, 32), 10, ADAM),
    "densenet": (arch.densenet_small, (4, 3, 32, 32), 10, SGD),
    "shufflenet_v2": (arch.shufflenet_small, (4, 3, 64, 64), 10, GENTLE),
    "regnet": (arch.regnet_small, (4, 3, 32, 32), 10, SGD),
    "mnasnet": (arch.mnasnet_small, (4, 3, 32, 32), 10, GENTLE),
    "googlenet": (arch.GoogLeNetSmall, (4, 3, 64, 64), 10, GENTLE),
    "swin": (arch.swin_small, (4, 3, 32, 32), 10, ADAM),
    "deeplabv3": (arch.DeepLabV3Small, (2, 3, 64, 64), 4, GENTLE),
    "yolo": (partial(arch.TinyYolo, classes=3, anchors=3, w=4), (4, 3, 64, 64), 3, DETECTOR),
    "bilstm": (arch.BiLSTMClassifier, (4, 12, 8), 5, ADAM),
    "gpt_tied": (arch.TinyGPT, (4, 10), 40, ADAM),
    "conv3d": (arch.Conv3dNet, (2, 1, 16, 32, 32), 3, SGD),
    "conv1d": (arch.WaveNet1d, (4, 1, 256), 4, SGD),
}


def squeezenet_full():
    from torchvision.models import squeezenet1_1
    model = squeezenet1_1(num_classes=10)
    model.classifier[0].p = 0.0  # random draws cannot be compared with PyTorch's
    return model


def resnet18_full():
    from torchvision.models import resnet18
    return resnet18(num_classes=10)


# Full-size models for the same checks, not committed (make them with --out DIR and point
# ONNXTRAIN_FAMILY_DIR / ONNXTRAIN_FAMILIES at them): the squeezenet case of issue 12;
# resnet18, whose first stage runs Conv's Winograd algorithm (64 channels, 128 output tiles
# at batch 8).
FULL_SIZE = {
    "squeezenet1_1_sgd": (squeezenet_full, (8, 3, 64, 64), 10, (0, 0.01, 0.0)),
    "squeezenet1_1_adam": (squeezenet_full, (8, 3, 64, 64), 10, (1, 1e-3, 0.0)),
    "resnet18_sgd": (resnet18_full, (8, 3, 64, 64), 10, (0, 0.01, 0.0)),
    "resnet18_adam": (resnet18_full, (8, 3, 64, 64), 10, (1, 1e-3, 0.0)),
}


def make_batch(name, shape, classes, model):
    """Model inputs and loss targets, keyed by feed name."""
    rng = np.random.default_rng(1)
    if name == "gpt_tied":
        return {"input": rng.integers(0, classes, shape).astype(np.int64),
                "label": rng.integers(0, classes, shape).astype(np.int64)}
    x = rng.standard_normal(shape)
    if name == "deeplabv3":  # a class per pixel
        return {"input": x, "label": rng.integers(0, classes, (shape[0],) + shape[2:]).astype(np.int64)}
    if name == "yolo":  # a target map per head output
        with torch.no_grad():
            outs = model(torch.from_numpy(x))
        return {"input": x, **{f"target{i}": rng.uniform(0, 1, o.shape) for i, o in enumerate(outs)}}
    return {"input": x, "label": rng.integers(0, classes, shape[0]).astype(np.int64)}


def loss_of(name, out, batch):
    if name == "yolo":  # summed mean squared error of each head: the custom loss model below
        return sum(F.mse_loss(o, batch[f"target{i}"]) for i, o in enumerate(out))
    return F.cross_entropy(out, batch["label"])


def yolo_loss_model(path, outputs, shapes, elem_type):
    """sum_i ReduceMean((output_i - target_i)^2), the loss loss_of computes for the detector."""
    nodes, inputs, terms = [], [], []
    for i, (out, shape) in enumerate(zip(outputs, shapes)):
        t = f"target{i}"
        dims = ["N"] + list(shape[1:])
        inputs += [helper.make_tensor_value_info(out, elem_type, dims), helper.make_tensor_value_info(t, elem_type, dims)]
        nodes += [helper.make_node("Sub", [out, t], [f"d{i}"]), helper.make_node("Mul", [f"d{i}", f"d{i}"], [f"s{i}"]),
                  helper.make_node("ReduceMean", [f"s{i}"], [f"m{i}"], keepdims=0)]
        terms.append(f"m{i}")
    nodes += [helper.make_node("Sum", terms, ["loss"])]
    graph = helper.make_graph(nodes, "yolo_mse", inputs, [helper.make_tensor_value_info("loss", elem_type, [])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


# The float32 runs: (threads, None or (direction, seed) of a one-ulp nudge of a random half of
# the parameters). Discrete events (a ReLU mask or max-pool winner flipping) make float32
# training chaotic in places; eight runs sample where.
RUNS32 = [(t, n) for t in (2, 1) for n in (None, (1, 1), (-1, 2), (1, 3))]


def nudge_parameters(model, direction, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            step = torch.nextafter(p, torch.full_like(p, direction * float("inf")))
            p.copy_(torch.where(torch.rand(p.shape, generator=gen) < 0.5, step, p))


def train(name, model, batch, opt, dtype, steps):
    """Runs `steps` optimizer steps on the batch; returns first-step grads, losses, params."""
    feeds = {k: torch.from_numpy(v).to(dtype) if v.dtype == np.float64 else torch.from_numpy(v) for k, v in batch.items()}
    params = dict(model.named_parameters())
    adam, lr, momentum = opt
    optimizer = torch.optim.Adam(params.values(), lr=lr) if adam else torch.optim.SGD(params.values(), lr=lr, momentum=momentum)
    losses, grads = [], None
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_of(name, model(feeds["input"]), feeds)
        loss.backward()
        losses.append(loss.item())
        if grads is None:
            grads = {k: p.grad.double().numpy().copy() for k, p in params.items() if p.grad is not None}
        optimizer.step()
    return grads, np.array(losses), {k: p.detach().double().numpy().copy() for k, p in params.items()}


def export(model, x, path, outputs):
    # Exported from a copy: the export runs forward passes that move BatchNorm statistics.
    torch.onnx.export(copy.deepcopy(model), torch.from_numpy(x) if x.dtype == np.int64 else torch.from_numpy(x).to(
        next(model.parameters()).dtype), path, input_names=["input"], output_names=outputs, opset_version=17,
        training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
        dynamic_axes={n: {0: "N"} for n in ["input"] + outputs})


def make(name, out_dir):
    make_model, shape, classes, opt = {**FAMILIES, **FULL_SIZE}[name]
    torch.manual_seed(0)
    model = make_model().double().train()
    initial = copy.deepcopy(model)
    batch = make_batch(name, shape, classes, copy.deepcopy(model))
    outputs = ["output0", "output1", "output2"] if name == "yolo" else ["output"]
    base = os.path.join(out_dir, name)
    export(model, batch["input"], base + ".onnx", outputs)
    export(copy.deepcopy(initial).float(), batch["input"], base + ".f32.onnx", outputs)
    if name == "yolo":
        shapes = [batch[f"target{i}"].shape for i in range(len(outputs))]
        yolo_loss_model(base + ".loss.onnx", outputs, shapes, TensorProto.DOUBLE)
        yolo_loss_model(base + ".loss.f32.onnx", outputs, shapes, TensorProto.FLOAT)

    torch.set_num_threads(2)
    grads, losses, params = train(name, model, batch, opt, torch.float64, STEPS)
    arrays = {"feed." + k: v for k, v in batch.items()}
    arrays.update({"loss": np.array(losses[0]), "loss10": losses, "opt": np.array(opt, dtype=np.float64)})
    arrays.update({"grad." + k: v for k, v in grads.items()})
    arrays.update({"param10." + k: v for k, v in params.items()})

    # PyTorch float32's distance from float64, over runs that differ only in rounding.
    errors = {}
    for threads, nudge in RUNS32:
        torch.set_num_threads(threads)
        m32 = copy.deepcopy(initial).float()
        if nudge:
            nudge_parameters(m32, *nudge)
        g32, l32, p32 = train(name, m32, batch, opt, torch.float32, STEPS)
        run = {"loss": abs(l32[0] - losses[0]), "loss10": np.abs(l32 - losses).max()}
        run.update({"grad." + k: np.abs(v - grads[k]).max() for k, v in g32.items()})
        run.update({"param10." + k: np.abs(v - params[k]).max() for k, v in p32.items()})
        for k, v in run.items():
            errors[k] = max(errors.get(k, 0.0), float(v))
    torch.set_num_threads(2)
    arrays.update({"f32err." + k: np.array(v) for k, v in errors.items()})
    np.savez_compressed(base + ".npz", **arrays)
    count = sum(p.numel() for p in initial.parameters())
    print(f"{name}: {count} parameters, loss {losses[0]:.6f} -> {losses[-1]:.6f} after {STEPS} steps, "
          f"float32 loss error {errors['loss']:.1e} / {errors['loss10']:.1e}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=ROOT)
    parser.add_argument("names", nargs="*", choices=list(FAMILIES) + list(FULL_SIZE) + [[]], default=[])
    args = parser.parse_args()
    for name in args.names or FAMILIES:
        make(name, args.out)
