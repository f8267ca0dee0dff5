"""The architectures tools/bench/compare.py times, written once in PyTorch: the sample
models of models/make_models.py, torchvision's resnet18, mobilenet_v2 and squeezenet1_1
(3x64x64), and a ViT-tiny (torchvision's VisionTransformer, 64x64 images, 8x8 patches).

Each entry makes the module (seeded, so every process gets the same weights), one batch of
inputs and targets, and names its loss. `prepare` writes what the three runners read: the
TRAINING-mode ONNX export (onnxtrain), a TorchScript trace of the same module in train()
mode (libtorch) and the batch as .npz (all three).
"""
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "models"))
import make_models  # noqa: E402

BATCH = 32


def _vit_tiny():
    from torchvision.models.vision_transformer import VisionTransformer
    return VisionTransformer(image_size=64, patch_size=8, num_layers=12, num_heads=3, hidden_dim=192, mlp_dim=768,
                             num_classes=1000)


def _torchvision(name):
    def make():
        import torchvision
        return getattr(torchvision.models, name)(num_classes=1000)
    return make


# name -> (constructor, input shape without the batch, input dtype, id bound for int inputs, loss)
MODELS = {
    "mlp": (make_models.MLP, (20,), "float32", 0, "cross_entropy"),
    "lenet": (make_models.LeNet, (1, 28, 28), "float32", 0, "cross_entropy"),
    "resnet": (make_models.ResNetSmall, (3, 32, 32), "float32", 0, "cross_entropy"),
    "transformer": (make_models.TransformerClassifier, (12,), "int64", 50, "cross_entropy"),
    "gru": (make_models.GRUClassifier, (10, 8), "float32", 0, "cross_entropy"),
    "unet": (make_models.UNetSmall, (1, 16, 16), "float32", 0, "mse"),
    "resnet18": (_torchvision("resnet18"), (3, 64, 64), "float32", 0, "cross_entropy"),
    "mobilenet_v2": (_torchvision("mobilenet_v2"), (3, 64, 64), "float32", 0, "cross_entropy"),
    "squeezenet1_1": (_torchvision("squeezenet1_1"), (3, 64, 64), "float32", 0, "cross_entropy"),
    "vit_tiny": (_vit_tiny, (3, 64, 64), "float32", 0, "cross_entropy"),
}
# Convolution-heavy models, whose throughput is compared with oneDNN's convolution peak.
CONV_MODELS = {"lenet", "resnet", "unet", "resnet18", "mobilenet_v2", "squeezenet1_1"}


def make_module(name):
    torch.manual_seed(0)
    return MODELS[name][0]().train()


def make_batch(name, module, batch=BATCH):
    _, shape, dtype, ids, loss = MODELS[name]
    rng = np.random.default_rng(0)
    if dtype == "int64":
        x = rng.integers(0, ids, (batch, *shape)).astype(np.int64)
    else:
        x = rng.standard_normal((batch, *shape)).astype(np.float32)
    with torch.no_grad():
        out = module(torch.from_numpy(x))
    if loss == "mse":
        label = rng.standard_normal(tuple(out.shape)).astype(np.float32)
    else:
        label = rng.integers(0, out.shape[1], (batch,)).astype(np.int64)
    return x, label


def loss_fn(name):
    import torch.nn.functional as F
    return F.mse_loss if MODELS[name][4] == "mse" else F.cross_entropy


def prepare(name, out_dir):
    """Writes <out_dir>/<name>.onnx, <name>.pt and <name>.npz (arrays `input`, `label`)
    unless they exist; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {ext: os.path.join(out_dir, f"{name}.{ext}") for ext in ("onnx", "pt", "npz")}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
    module = make_module(name)
    x, label = make_batch(name, module)
    module = make_module(name)  # weights as made: the probe above moved BatchNorm statistics
    example = torch.from_numpy(x)
    torch.onnx.export(module, (example,), paths["onnx"], opset_version=17, training=torch.onnx.TrainingMode.TRAINING,
                      do_constant_folding=False, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    module = make_module(name)
    traced = torch.jit.trace(module, (example,), check_trace=False)
    traced.save(paths["pt"])
    np.savez(paths["npz"], input=x, label=label)
    return paths
