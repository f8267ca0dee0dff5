#!/usr/bin/env python3
"""Small members of the model families people fine-tune, exported from PyTorch the way
users do (torch.onnx.export, training mode, opset 17), with float64 goldens of one training
step's loss and gradients for onnxtrain's family parity test (tests/parity/family_test.cpp).

    /usr/bin/python3 models/families/make_families.py [NAME...]

Each model is torchvision's (or, for families torchvision lacks, our own) architecture at a
reduced width/depth so the files stay small; the operators and their arrangement are the
family's. Exported in float64 so the test judges the kernels and gradient rules without
float32 rounding (float32 behaviour against PyTorch is reported by tools, not pass/fail).
Writes models/families/<name>.onnx and <name>.npz (input, label, loss, grad.<parameter>).
Seeded: re-running gives the same files.
"""
import copy
import os
import sys
from functools import partial

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import (convnext, densenet, efficientnet, mobilenetv3, regnet, shufflenetv2, swin_transformer,
                                vision_transformer)
from torchvision.models.segmentation.deeplabv3 import ASPP

ROOT = os.path.dirname(os.path.abspath(__file__))


def efficientnet_small():
    conf = partial(efficientnet.MBConvConfig, width_mult=0.25, depth_mult=0.5)
    setting = [conf(1, 3, 1, 32, 16, 1), conf(6, 3, 2, 16, 24, 2), conf(6, 5, 2, 24, 40, 2)]
    return efficientnet.EfficientNet(setting, dropout=0.0, stochastic_depth_prob=0.0, num_classes=10)


def convnext_small():
    setting = [convnext.CNBlockConfig(16, 32, 1), convnext.CNBlockConfig(32, None, 1)]
    return convnext.ConvNeXt(setting, stochastic_depth_prob=0.0, num_classes=10)


def vit_small():
    return vision_transformer.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
                                                mlp_dim=64, num_classes=10)


def densenet_small():
    return densenet.DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16, bn_size=2, num_classes=10)


def shufflenet_small():
    return shufflenetv2.ShuffleNetV2([2, 2, 2], [8, 16, 32, 64, 128], num_classes=10)


def regnet_small():
    params = regnet.BlockParams.from_init_params(depth=3, w_0=8, w_a=8.0, w_m=2.0, group_width=8, se_ratio=0.25)
    return regnet.RegNet(params, num_classes=10)


def swin_small():
    return swin_transformer.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 2],
                                            window_size=[4, 4], stochastic_depth_prob=0.0, num_classes=10)


class DeepLabV3Small(nn.Module):
    """torchvision's DeepLabV3 arrangement on a dilated mobilenet_v3_small backbone (Hardswish,
    Hardsigmoid squeeze-excitation, dilated depthwise convs), an ASPP head of 16 channels and
    the bilinear upsampling to the input size; per-pixel class logits [N, C, H, W]."""

    def __init__(self, classes=4):
        super().__init__()
        self.backbone = mobilenetv3.mobilenet_v3_small(width_mult=0.25, dilated=True).features
        channels = self.backbone[-1].out_channels
        aspp = ASPP(channels, [12, 24, 36], 16)
        aspp.project[-1].p = 0.0  # its Dropout(0.5): random draws cannot be compared with PyTorch's
        self.head = nn.Sequential(aspp, nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                                  nn.Conv2d(16, classes, 1))

    def forward(self, x):
        y = self.head(self.backbone(x))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


class BiLSTMClassifier(nn.Module):
    """2-layer bidirectional LSTM over 12 steps of 8 features, classifying the last step."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.head(y[:, -1])


class TinyGPT(nn.Module):
    """Causal decoder, 2 blocks, LM head tied to the token embedding."""

    def __init__(self, vocab=40, d=32, seq=10):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(seq, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, 2, 64, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, 2)
        self.norm = nn.LayerNorm(d)
        self.register_buffer("mask", torch.triu(torch.full((seq, seq), float("-inf")), 1))

    def forward(self, tokens):
        h = self.blocks(self.embed(tokens) + self.pos, mask=self.mask)
        # [N, vocab, seq]: the class axis second, as cross-entropy over tokens takes it.
        return (self.norm(h) @ self.embed.weight.t()).transpose(1, 2)


class Conv3dNet(nn.Module):
    """Volumes 1x16x32x32 as in medical imaging: Conv3d, BatchNorm3d, MaxPool3d."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(), nn.MaxPool3d(2),
                                      nn.Conv3d(4, 8, 3, padding=1), nn.BatchNorm3d(8), nn.ReLU(), nn.MaxPool3d(2))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3, 4)))


class WaveNet1d(nn.Module):
    """Raw waveforms of 256 samples: strided and dilated Conv1d, BatchNorm1d, pooling."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv1d(1, 8, 9, stride=4, padding=4), nn.BatchNorm1d(8), nn.ReLU(),
                                      nn.Conv1d(8, 16, 3, dilation=2, padding=2), nn.BatchNorm1d(16), nn.ReLU(),
                                      nn.MaxPool1d(2), nn.Conv1d(16, 16, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(F.adaptive_avg_pool1d(self.features(x), 1).flatten(1))


# name -> (constructor, input shape, classes; "tokens" models take int64 ids)
FAMILIES = {
    "efficientnet": (efficientnet_small, (4, 3, 32, 32), 10),
    "convnext": (convnext_small, (4, 3, 32, 32), 10),
    "vit": (vit_small, (4, 3, 32, 32), 10),
    "densenet": (densenet_small, (4, 3, 32, 32), 10),
    "shufflenet_v2": (shufflenet_small, (4, 3, 64, 64), 10),
    "regnet": (regnet_small, (4, 3, 32, 32), 10),
    "swin": (swin_small, (4, 3, 32, 32), 10),
    "deeplabv3": (DeepLabV3Small, (2, 3, 64, 64), 4),
    "bilstm": (BiLSTMClassifier, (4, 12, 8), 5),
    "gpt_tied": (TinyGPT, (4, 10), 40),
    "conv3d": (Conv3dNet, (2, 1, 16, 32, 32), 3),
    "conv1d": (WaveNet1d, (4, 1, 256), 4),
}


def make(name):
    make_model, shape, classes = FAMILIES[name]
    torch.manual_seed(0)
    model = make_model().double().train()
    rng = np.random.default_rng(1)
    if name == "gpt_tied":
        x = torch.from_numpy(rng.integers(0, classes, shape).astype(np.int64))
        label = torch.from_numpy(rng.integers(0, classes, shape).astype(np.int64))
    elif name == "deeplabv3":  # a class per pixel
        x = torch.from_numpy(rng.standard_normal(shape))
        label = torch.from_numpy(rng.integers(0, classes, (shape[0],) + shape[2:]).astype(np.int64))
    else:
        x = torch.from_numpy(rng.standard_normal(shape))
        label = torch.from_numpy(rng.integers(0, classes, shape[0]).astype(np.int64))
    # Exported from a copy: the export runs forward passes that move BatchNorm statistics.
    torch.onnx.export(copy.deepcopy(model), x, os.path.join(ROOT, name + ".onnx"), input_names=["input"], output_names=["output"],
                      opset_version=17, training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
                      dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    out = model(x)
    loss = F.cross_entropy(out, label)
    loss.backward()
    arrays = {"input": x.numpy(), "label": label.numpy(), "loss": np.array(loss.item())}
    for k, p in model.named_parameters():
        if p.grad is not None:
            arrays["grad." + k] = p.grad.numpy()
    np.savez_compressed(os.path.join(ROOT, name + ".npz"), **arrays)
    params = sum(p.numel() for p in model.parameters())
    print(f"{name}: {params} parameters, loss {loss.item():.6f}")


if __name__ == "__main__":
    for name in sys.argv[1:] or FAMILIES:
        make(name)
