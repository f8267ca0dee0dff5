#!/usr/bin/env python3
"""Exports the sample models and PyTorch goldens that onnxtrain's tests compare against.

Run with Debian's python3 (python3-torch 1.13, python3-torchvision, python3-onnx):
    /usr/bin/python3 models/make_models.py
Writes models/<name>/<name>_op<13|17>_<train|eval>.onnx and models/<name>/golden.npz.
golden.npz holds, per model: the fixed input(s) `input.<name>` and, per export variant,
the outputs `<variant>.<output>` (train variants: module in train() mode, so BatchNorm
uses batch statistics; eval variants: eval() mode). Everything is seeded; re-running gives
the same files.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.abspath(__file__))
OPSETS = (13, 17)
BATCH = 4


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(20, 64)
        self.fc2 = nn.Linear(64, 32)
        self.fc3 = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc3(torch.tanh(self.fc2(F.relu(self.fc1(x)))))


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.avg_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetSmall(nn.Module):
    """A CIFAR-style ResNet: 3x32x32 input, three stages of basic blocks."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.layer1 = BasicBlock(16, 16, 1)
        self.layer2 = BasicBlock(16, 32, 2)
        self.layer3 = BasicBlock(32, 64, 2)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class TransformerClassifier(nn.Module):
    def __init__(self, vocab=50, d_model=32, classes=4, seq=12):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.Parameter(torch.randn(1, seq, d_model) * 0.1)
        layer = nn.TransformerEncoderLayer(d_model, nhead=4, dim_feedforward=64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, classes)

    def forward(self, tokens):
        x = self.embed(tokens) + self.pos
        x = self.norm(self.encoder(x))
        return self.head(x.mean(dim=1))


class GRUClassifier(nn.Module):
    def __init__(self, features=8, hidden=24, classes=5):
        super().__init__()
        self.gru = nn.GRU(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        out, h = self.gru(x)
        return self.head(out[:, -1, :])


class UNetSmall(nn.Module):
    """Two-level UNet: strided conv down, ConvTranspose up, skip connection by Concat."""

    def __init__(self):
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.dec = nn.Sequential(nn.Conv2d(16, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 1))

    def forward(self, x):
        e = self.enc1(x)
        u = self.up(self.down(e))
        return self.dec(torch.cat([u, e], dim=1))


def sample_inputs(name, rng):
    if name == "mlp":
        return {"input": rng.standard_normal((BATCH, 20)).astype(np.float32)}
    if name == "lenet":
        return {"input": rng.standard_normal((BATCH, 1, 28, 28)).astype(np.float32)}
    if name == "resnet":
        return {"input": rng.standard_normal((BATCH, 3, 32, 32)).astype(np.float32)}
    if name == "transformer":
        return {"input": rng.integers(0, 50, (BATCH, 12)).astype(np.int64)}
    if name == "gru":
        return {"input": rng.standard_normal((BATCH, 10, 8)).astype(np.float32)}
    if name == "unet":
        return {"input": rng.standard_normal((BATCH, 1, 16, 16)).astype(np.float32)}
    raise ValueError(name)


def sample_targets(name, rng, output):
    """Labels for cross-entropy, or a regression target (UNet, MSE)."""
    if name == "unet":
        return rng.standard_normal(output.shape).astype(np.float32)
    return rng.integers(0, output.shape[1], (output.shape[0],)).astype(np.int64)


def loss_of(name, output, target):
    if name == "unet":
        return F.mse_loss(output, target)
    return F.cross_entropy(output, target)


MODELS = {
    "mlp": MLP,
    "lenet": LeNet,
    "resnet": ResNetSmall,
    "transformer": TransformerClassifier,
    "gru": GRUClassifier,
    "unet": UNetSmall,
}


def export(model, inputs, path, opset, training):
    args = tuple(torch.from_numpy(v) for v in inputs.values())
    mode = torch.onnx.TrainingMode.TRAINING if training else torch.onnx.TrainingMode.EVAL
    model.train(training)
    torch.onnx.export(
        model, args, path, opset_version=opset, training=mode, do_constant_folding=not training,
        input_names=list(inputs), output_names=["output"],
        dynamic_axes={**{k: {0: "batch"} for k in inputs}, "output": {0: "batch"}})


def write_gradients(name, model, state, inputs, rng, out_dir):
    """grads.npz: one training-mode forward + backward on the golden input: `target`, `loss`
    and `grad.<parameter>` for every trainable parameter (state_dict names, which are the
    initializer names of the TRAINING export)."""
    model.load_state_dict(state)
    model.train()
    model.zero_grad()
    args = [torch.from_numpy(v) for v in inputs.values()]
    with torch.no_grad():
        probe = model(*args)
    model.load_state_dict(state)  # undo the probe's BatchNorm statistics update
    target = sample_targets(name, rng, probe)
    # The TRAINING export stores running statistics after its own tracing pass, so the
    # values this step starts from are saved too.
    before = {f"buffer_before.{b}": v.numpy().copy() for b, v in model.named_buffers() if "running_" in b}
    loss = loss_of(name, model(*args), torch.from_numpy(target))
    loss.backward()
    out = {"target": target, "loss": np.array(loss.item(), dtype=np.float32), **before}
    for pname, p in model.named_parameters():
        out[f"grad.{pname}"] = p.grad.numpy()
    # BatchNorm running statistics after this one training-mode forward (PyTorch's update:
    # unbiased batch variance).
    for bname, buf in model.named_buffers():
        if bname.endswith("running_mean") or bname.endswith("running_var"):
            out[f"buffer.{bname}"] = buf.numpy()
    np.savez_compressed(os.path.join(out_dir, "grads.npz"), **out)


def make(name):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = MODELS[name]()
    inputs = sample_inputs(name, rng)
    # A few training-mode passes so BatchNorm running statistics are not the trivial 0/1.
    with torch.no_grad():
        model.train()
        for _ in range(3):
            warm = sample_inputs(name, rng)
            model(*[torch.from_numpy(v) for v in warm.values()])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    out_dir = os.path.join(ROOT, name)
    os.makedirs(out_dir, exist_ok=True)
    golden = {f"input.{k}": v for k, v in inputs.items()}
    for training in (False, True):
        variant_mode = "train" if training else "eval"
        model.load_state_dict(state)
        model.train(training)
        with torch.no_grad():
            out = model(*[torch.from_numpy(v) for v in inputs.values()])
        for opset in OPSETS:
            model.load_state_dict(state)
            variant = f"{name}_op{opset}_{variant_mode}"
            export(model, inputs, os.path.join(out_dir, variant + ".onnx"), opset, training)
            golden[f"{variant}.output"] = out.numpy()
    np.savez_compressed(os.path.join(out_dir, "golden.npz"), **golden)
    write_gradients(name, model, state, inputs, rng, out_dir)
    if name == "resnet":
        # The input of the README's `onnxtrain run` example and the forward benchmark.
        batch = rng.standard_normal((32, 3, 32, 32)).astype(np.float32)
        np.savez(os.path.join(out_dir, "batch32.npz"), input=batch)
    print(name, "ok")


if __name__ == "__main__":
    for name in sys.argv[1:] or MODELS:
        make(name)
