#!/usr/bin/env bash
# The main job on bundled data: build onnxtrain, inspect the bundled ResNet-style model and
# run it forward on a batch of 32 images, writing the logits to runs/demo/logits.npz.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
mkdir -p runs/demo
./build/onnxtrain info models/resnet/resnet_op17_train.onnx
./build/onnxtrain run models/resnet/resnet_op17_eval.onnx --data models/resnet/batch32.npz --out runs/demo/logits.npz
