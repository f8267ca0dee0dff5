#!/usr/bin/env bash
# The main job on bundled data: build onnxtrain, fine-tune the bundled digits CNN (exported
# from PyTorch in training mode, with BatchNorm and Dropout) on the 8x8 handwritten digits,
# export the trained ONNX model and evaluate the exported file. Output goes to runs/demo/:
# metrics.csv, results.svg (loss and accuracy per epoch), confusion_matrix.svg, best.onnx,
# last.onnx, checkpoint.npz and digits_trained.onnx.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
rm -rf runs/demo
./build/onnxtrain info models/digits/digits_cnn.onnx
./build/onnxtrain train models/digits/digits_cnn.onnx --data models/digits/train.npz --val models/digits/val.npz \
  --optimizer adam --lr 3e-3 --epochs 8 --batch-size 32 --seed 0 --run-dir runs/demo --out runs/demo/digits_trained.onnx
./build/onnxtrain eval runs/demo/digits_trained.onnx --data models/digits/val.npz --metric accuracy --metric top5
