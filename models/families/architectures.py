"""The architectures of the model families (models/families/make_families.py): torchvision's
own classes at reduced width/depth where torchvision has the family, our own modules where it
does not. The operators and their arrangement are the family's; only sizes are cut so the
committed files stay small.
"""
from functools import partial

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import importlib

from torchvision.models import (convnext, densenet, efficientnet, mnasnet, mobilenetv3, regnet, shufflenetv2,
                                swin_transformer,
                                vision_transformer)
from torchvision.models.segmentation.deeplabv3 import ASPP

googlenet = importlib.import_module("torchvision.models.googlenet")  # the package exports a function of that name


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


def mnasnet_small():
    """torchvision's MNASNet at alpha 0.25, cut after its fifth stack (kernel-5 inverted
    residuals with and without skip) and ending in a 64-channel 1x1 conv instead of 1280."""
    model = mnasnet.MNASNet(0.25, num_classes=10, dropout=0.0)
    model.layers = nn.Sequential(*list(model.layers)[:12], nn.Conv2d(24, 64, 1, bias=False),
                                 nn.BatchNorm2d(64, momentum=1 - 0.9997), nn.ReLU(inplace=True))
    model.classifier = nn.Sequential(nn.Dropout(0.0), nn.Linear(64, 10))
    return model


class GoogLeNetSmall(nn.Module):
    """GoogLeNet's stem and Inception blocks (four branches, ceil-mode max pools, the
    branch pool's stride-1 ceil-mode pool) from torchvision's own classes, narrower."""

    def __init__(self, classes=10):
        super().__init__()
        conv, inception = googlenet.BasicConv2d, googlenet.Inception
        self.stem = nn.Sequential(conv(3, 16, kernel_size=7, stride=2, padding=3), nn.MaxPool2d(3, stride=2, ceil_mode=True),
                                  conv(16, 16, kernel_size=1), conv(16, 32, kernel_size=3, padding=1),
                                  nn.MaxPool2d(3, stride=2, ceil_mode=True))
        self.blocks = nn.Sequential(inception(32, 8, 8, 16, 4, 8, 8), inception(40, 16, 8, 16, 4, 8, 8),
                                    nn.MaxPool2d(3, stride=2, ceil_mode=True), inception(48, 16, 8, 16, 4, 8, 8))
        self.fc = nn.Linear(48, classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))


class ConvBnSiLU(nn.Sequential):
    def __init__(self, cin, cout, k=1, s=1):
        super().__init__(nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.03),
                         nn.SiLU())


class Bottleneck(nn.Module):
    def __init__(self, c, shortcut=True):
        super().__init__()
        self.cv1, self.cv2, self.add = ConvBnSiLU(c, c, 1), ConvBnSiLU(c, c, 3), shortcut

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """The CSP block of YOLOv5: half the channels through bottlenecks, half around them."""

    def __init__(self, cin, cout, n=1, shortcut=True):
        super().__init__()
        c = cout // 2
        self.cv1, self.cv2, self.cv3 = ConvBnSiLU(cin, c), ConvBnSiLU(cin, c), ConvBnSiLU(2 * c, cout)
        self.m = nn.Sequential(*(Bottleneck(c, shortcut) for _ in range(n)))

    def forward(self, x):
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class SPPF(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.cv1, self.cv2 = ConvBnSiLU(cin, cin // 2), ConvBnSiLU(cin * 2, cout)
        self.pool = nn.MaxPool2d(5, 1, 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.pool(x)
        y2 = self.pool(y1)
        return self.cv2(torch.cat((x, y1, y2, self.pool(y2)), 1))


class TinyYolo(nn.Module):
    """A YOLOv5-style detector of our own: CSP backbone, SPPF, a PAN neck (nearest upsampling,
    concatenation, strided downsampling) and three anchor-based heads at strides 8, 16, 32,
    each output raw [N, A*(5+C), H, W]."""

    def __init__(self, classes=3, anchors=3, w=8):
        super().__init__()
        no = anchors * (5 + classes)
        self.b1 = nn.Sequential(ConvBnSiLU(3, w, 3, 2), ConvBnSiLU(w, 2 * w, 3, 2), C3(2 * w, 2 * w))       # /4
        self.b2 = nn.Sequential(ConvBnSiLU(2 * w, 4 * w, 3, 2), C3(4 * w, 4 * w))                            # /8
        self.b3 = nn.Sequential(ConvBnSiLU(4 * w, 8 * w, 3, 2), C3(8 * w, 8 * w))                            # /16
        self.b4 = nn.Sequential(ConvBnSiLU(8 * w, 8 * w, 3, 2), C3(8 * w, 8 * w), SPPF(8 * w, 8 * w))        # /32
        self.lat5, self.top4 = ConvBnSiLU(8 * w, 4 * w), C3(12 * w, 4 * w, shortcut=False)
        self.lat4, self.top3 = ConvBnSiLU(4 * w, 2 * w), C3(6 * w, 2 * w, shortcut=False)
        self.down3, self.bot4 = ConvBnSiLU(2 * w, 2 * w, 3, 2), C3(4 * w, 4 * w, shortcut=False)
        self.down4, self.bot5 = ConvBnSiLU(4 * w, 4 * w, 3, 2), C3(8 * w, 8 * w, shortcut=False)
        self.heads = nn.ModuleList(nn.Conv2d(c, no, 1) for c in (2 * w, 4 * w, 8 * w))

    def forward(self, x):
        up = partial(F.interpolate, scale_factor=2, mode="nearest")
        c3 = self.b2(self.b1(x))
        c4 = self.b3(c3)
        c5 = self.b4(c4)
        l5 = self.lat5(c5)
        t4 = self.top4(torch.cat((up(l5), c4), 1))
        l4 = self.lat4(t4)
        p3 = self.top3(torch.cat((up(l4), c3), 1))
        p4 = self.bot4(torch.cat((self.down3(p3), l4), 1))
        p5 = self.bot5(torch.cat((self.down4(p4), l5), 1))
        return tuple(head(p) for head, p in zip(self.heads, (p3, p4, p5)))
