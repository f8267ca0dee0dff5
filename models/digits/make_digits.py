#!/usr/bin/env python3
"""The bundled demo data and model: the 1,797 8x8 handwritten digits that Debian's
python3-sklearn ships (UCI "Optical Recognition of Handwritten Digits", E. Alpaydin and
C. Kaynak, 1998; CC BY 4.0), and a small CNN exported from PyTorch for it.

    /usr/bin/python3 models/digits/make_digits.py

Writes train.npz / val.npz (arrays `input` float32 [N,1,8,8] scaled to [0,1], `label`
int64), the same split as CSV (64 pixel columns + `label`), and digits_cnn.onnx (random
initialization, exported in TRAINING mode at opset 17 with a dynamic batch).
"""
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits

HERE = os.path.dirname(os.path.abspath(__file__))


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(32 * 2 * 2, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(self.dropout(torch.flatten(x, 1)))


def main():
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    n_val = 360
    val, train = order[:n_val], order[n_val:]
    for name, idx in (("train", train), ("val", val)):
        np.savez_compressed(os.path.join(HERE, f"{name}.npz"), input=x[idx], label=y[idx])
        header = ",".join([f"p{i}" for i in range(64)] + ["label"])
        rows = np.concatenate([digits.data[idx], y[idx, None]], axis=1).astype(np.int64)
        np.savetxt(os.path.join(HERE, f"{name}.csv"), rows, fmt="%d", delimiter=",", header=header, comments="")
    torch.manual_seed(0)
    model = DigitsCNN()
    model.train()
    torch.onnx.export(model, (torch.from_numpy(x[:8]),), os.path.join(HERE, "digits_cnn.onnx"), opset_version=17,
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    # The EVAL export (BatchNorm folded into the convolutions, Dropout removed): what the
    # README's fine-tuning demo trains, since its graph is the same in training and inference.
    model.eval()
    torch.onnx.export(model, (torch.from_numpy(x[:8]),), os.path.join(HERE, "digits_cnn_eval.onnx"), opset_version=17,
                      training=torch.onnx.TrainingMode.EVAL, do_constant_folding=True,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    print("train", len(train), "val", len(val))


if __name__ == "__main__":
    main()
