#!/usr/bin/env bash
# The main job on bundled data: build onnxtrain, fine-tune the bundled digits CNN (exported
# from PyTorch in training mode, with BatchNorm and Dropout) on the 8x8 handwritten digits,
# export the trained ONNX model and evaluate the exported file. Output goes to runs/demo/:
# metrics.csv, results.svg (loss and accuracy per epoch), confusion_matrix.svg, best.onnx,
# last.onnx, checkpoint.npz and digits_trained.onnx. Then a detection run: the bundled
# YOLO-style detector (models/detect, briefly pre-trained) fine-tuned on the synthetic shapes
# dataset (runs/demo-detect: mAP per epoch, pr_curve.svg, val_predictions.png), and
# `predict` on the validation images (runs/demo-predict: boxes as JSON/CSV, drawn images).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
rm -rf runs/demo
./build/onnxtrain info models/digits/digits_cnn.onnx
./build/onnxtrain train models/digits/digits_cnn.onnx --data models/digits/train.npz --val models/digits/val.npz \
  --optimizer adam --lr 3e-3 --epochs 8 --batch-size 32 --seed 0 --run-dir runs/demo --out runs/demo/digits_trained.onnx
./build/onnxtrain eval runs/demo/digits_trained.onnx --data models/digits/val.npz --metric accuracy --metric top5
rm -rf runs/demo-detect runs/demo-predict
./build/onnxtrain train models/detect/tiny_yolo.onnx --task detect --data models/detect/shapes/data.yaml \
  --optimizer adam --lr 2e-3 --epochs 16 --batch-size 16 --obj-gain 0.0225 --cls-gain 0.01875 \
  --mosaic 0 --fliplr 0 --hsv-h 0 --hsv-s 0 --hsv-v 0 --translate 0 --scale 0 --seed 1 --run-dir runs/demo-detect
./build/onnxtrain predict runs/demo-detect/best.onnx --source models/detect/shapes/images/val --conf 0.25 \
  --out runs/demo-predict -q
tail -n 1 runs/demo-detect/class_ap.csv | awk -F, '{printf "detection, last epoch: mAP@0.5 %.3f, mAP@0.5:0.95 %.3f on validation; boxes in runs/demo-predict/predictions.json\n", $6, $7}'
