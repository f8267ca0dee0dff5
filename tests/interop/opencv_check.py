#!/usr/bin/env python3
"""Models trained by onnxtrain, read by an independent consumer: OpenCV's dnn module.

    /usr/bin/python3 tests/interop/opencv_check.py BUILD/onnxtrain SOURCE_DIR

(CTest runs it as `interop.opencv`.) Needs Debian's python3-opencv, python3-onnx and
python3-numpy; a missing module is a failure, not a skip.

For each sample model's EVAL export (models/<m>/<m>_op13_eval.onnx and _op17_eval.onnx)
and for models/digits/digits_cnn_eval.onnx (trained on the first 64 samples of
models/digits/train.npz, compared on the first 64 of val.npz):
  1. fine-tune it with the CLI: `onnxtrain train` on the model's golden batch
     (models/<m>/golden.npz `input.<name>`, models/<m>/grads.npz `target` as `label`),
     Adam, lr 1e-2, 2 epochs of batches of 4;
  2. check that the trained file's parameters differ from the original's and that it passes
     onnx.checker (full check, i.e. with strict shape inference);
  3. run it with `onnxtrain run` and with cv2.dnn.readNetFromONNX(...).forward() on the same
     inputs; the outputs must agree to 1e-4 of their scale (max |a - b| / max |b|).

OpenCV 4.6 cannot import some exports; they are listed in OPENCV_CANNOT_LOAD with its
error. Those models are still trained and checked (steps 1-2), and OpenCV must still refuse
them with that error: when an OpenCV upgrade loads one, the test fails until it moves to the
checked models. Exit status 0 when every check holds, 1 otherwise.
"""
import os
import subprocess
import sys
import tempfile

try:
    import cv2
    import numpy as np
    import onnx
    from onnx import numpy_helper
except ImportError as e:
    sys.exit(f"FAIL: {e} (install python3-opencv, python3-onnx and python3-numpy: scripts/install-deps.sh)")

TOLERANCE = 1e-4
SAMPLE_MODELS = ("mlp", "lenet", "resnet", "unet", "transformer", "gru")
# Model -> the part of OpenCV 4.6's import error that names the cause.
OPENCV_CANNOT_LOAD = {
    # torch's EVAL export deduplicates initializers with equal values (the two encoder layers
    # start as copies, every LayerNorm weight is ones) into Identity nodes reading one
    # initializer; OpenCV's Identity layer expects a computed input: "(-215:Assertion failed)
    # inputs.size() in function 'getMemoryShapes'" for node Identity_0.
    "transformer": "inputs.size() in function 'getMemoryShapes'",
    # Squeeze takes its axes as a second input since opset 13; OpenCV 4.6 only parses the
    # single-input form: "(-215:Assertion failed) node_proto.input_size() == 1 in function
    # 'parseSqueeze'" for node /gru/Squeeze.
    "gru": "node_proto.input_size() == 1 in function 'parseSqueeze'",
}


class Checker:
    def __init__(self, cli, tmp):
        self.cli, self.tmp, self.failures = cli, tmp, []

    def fail(self, case, message):
        self.failures.append(f"{case}: {message}")
        print(f"FAIL {case}: {message}")
        return False

    def onnxtrain(self, case, *args):
        done = subprocess.run([self.cli, *args], capture_output=True, text=True)
        if done.returncode != 0:
            self.fail(case, f"onnxtrain {args[0]} exited with {done.returncode}:\n{done.stdout}{done.stderr}")
            return False
        return True

    def check(self, case, model_path, train_arrays, inputs, loss):
        """Steps 1-3 of the module docstring for one model file; False when any fails."""
        base = os.path.join(self.tmp, case)
        data, trained, feed, out = (base + s for s in ("_data.npz", "_trained.onnx", "_in.npz", "_out.npz"))
        np.savez(data, **train_arrays)
        if not self.onnxtrain(case, "train", model_path, "--data", data, "--loss", loss, "--optimizer", "adam",
                              "--lr", "1e-2", "--epochs", "2", "--batch-size", "4", "--out", trained):
            return False
        changed = changed_parameters(model_path, trained)
        if not changed:
            return self.fail(case, "training left every parameter unchanged")
        try:
            onnx.checker.check_model(onnx.load(trained), full_check=True)
        except Exception as e:  # the checker raises several exception types
            return self.fail(case, f"onnx.checker rejects the trained model: {e}")
        model_name = case.split("_op")[0]
        if model_name in OPENCV_CANNOT_LOAD:
            return self.expect_opencv_refusal(case, trained, OPENCV_CANNOT_LOAD[model_name])
        np.savez(feed, **inputs)
        if not self.onnxtrain(case, "run", trained, "--data", feed, "--out", out):
            return False
        ours = np.load(out)
        try:
            net = cv2.dnn.readNetFromONNX(trained)
            for name, value in inputs.items():
                net.setInput(value, name)
            names = [o.name for o in onnx.load(trained).graph.output]
            theirs = dict(zip(names, net.forward(names)))
        except cv2.error as e:
            return self.fail(case, f"OpenCV cannot run the trained model: {e}")
        worst = 0.0
        for name in names:
            a, b = ours[name], theirs[name]
            if a.size != b.size:
                return self.fail(case, f"output {name}: onnxtrain shape {a.shape}, OpenCV {b.shape}")
            err = float(np.max(np.abs(a.reshape(b.shape) - b)) / max(np.max(np.abs(b)), 1e-30))
            worst = max(worst, err)
            if not err <= TOLERANCE:
                return self.fail(case, f"output {name}: scaled error {err:.3g} vs OpenCV (limit {TOLERANCE})")
        print(f"ok   {case}: {changed} parameter tensors changed, checker ok, onnxtrain vs OpenCV {worst:.2g}")
        return True

    def expect_opencv_refusal(self, case, trained, reason):
        try:
            cv2.dnn.readNetFromONNX(trained)
        except cv2.error as e:
            if reason in str(e):
                print(f"ok   {case}: trained, checker ok; OpenCV {cv2.__version__} cannot import it ({reason})")
                return True
            return self.fail(case, f"OpenCV refuses it for another reason than the listed one: {e}")
        return self.fail(case, f"OpenCV {cv2.__version__} now imports it: move it out of OPENCV_CANNOT_LOAD")


def changed_parameters(original, trained):
    """Number of float initializers whose values differ between the two files."""
    def floats(path):
        return {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer
                if t.data_type == onnx.TensorProto.FLOAT}
    before, after = floats(original), floats(trained)
    if before.keys() != after.keys():
        raise SystemExit(f"FAIL: {trained} has other initializers than {original}")
    return sum(not np.array_equal(before[k], after[k]) for k in before)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    cli, src = sys.argv[1], sys.argv[2]
    cv2.setNumThreads(2)
    with tempfile.TemporaryDirectory() as tmp:
        checker = Checker(cli, tmp)
        for m in SAMPLE_MODELS:
            golden = np.load(os.path.join(src, "models", m, "golden.npz"))
            inputs = {k[len("input."):]: v for k, v in golden.items() if k.startswith("input.")}
            target = np.load(os.path.join(src, "models", m, "grads.npz"))["target"]
            for opset in (13, 17):
                path = os.path.join(src, "models", m, f"{m}_op{opset}_eval.onnx")
                checker.check(f"{m}_op{opset}", path, {**inputs, "label": target}, inputs,
                              "mse" if m == "unet" else "cross_entropy")
        digits = os.path.join(src, "models", "digits")
        # The first 64 samples: enough to move every parameter, and the test stays fast.
        train = {k: v[:64] for k, v in np.load(os.path.join(digits, "train.npz")).items()}
        val = np.load(os.path.join(digits, "val.npz"))
        checker.check("digits_cnn", os.path.join(digits, "digits_cnn_eval.onnx"), train,
                      {"input": val["input"][:64]}, "cross_entropy")
    if checker.failures:
        print(f"{len(checker.failures)} failure(s)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
