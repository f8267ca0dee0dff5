#!/usr/bin/env python3
"""Forward-pass benchmark: onnxtrain vs PyTorch on the same model, batch and thread count.

    /usr/bin/python3 tools/bench/bench_forward.py [--model resnet] [--threads 2] [--repeat 30] [--rounds 3]

Each round starts fresh processes for both, interleaved (timings on this machine vary between
processes); the best time of each is reported with the ratio onnxtrain / PyTorch.
Needs Debian's python3-torch (ONNXTRAIN_WITH_TORCH=1 scripts/install-deps.sh) and a build
in build/.
"""
import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TORCH_SNIPPET = r"""
import sys, time, numpy as np, torch
sys.path.insert(0, {models!r})
import make_models
torch.set_num_threads({threads})
torch.manual_seed(0)
model = make_models.MODELS[{name!r}]().eval()
x = torch.from_numpy(np.load({data!r})["input"])
best = 1e300
with torch.no_grad():
    for _ in range({repeat}):
        t = time.perf_counter(); model(x); best = min(best, time.perf_counter() - t)
print(best * 1e3)
"""


def run_onnxtrain(args, model, data):
    out = subprocess.run(
        [os.path.join(ROOT, "build", "onnxtrain"), "run", model, "--data", data, "--threads", str(args.threads),
         "--repeat", str(args.repeat)], check=True, capture_output=True, text=True).stdout
    return float(re.search(r"best of \d+: ([0-9.]+) ms", out).group(1))


def run_torch(args, data):
    code = TORCH_SNIPPET.format(models=os.path.join(ROOT, "models"), threads=args.threads, name=args.model,
                                data=data, repeat=args.repeat)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    out = subprocess.run(["/usr/bin/python3", "-c", code], check=True, capture_output=True, text=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    model = os.path.join(ROOT, "models", args.model, f"{args.model}_op17_eval.onnx")
    data = os.path.join(ROOT, "models", args.model, "batch32.npz")
    ours, theirs = [], []
    for _ in range(args.rounds):
        ours.append(run_onnxtrain(args, model, data))
        theirs.append(run_torch(args, data))
    o, t = min(ours), min(theirs)
    print(f"model {args.model}, batch 32, {args.threads} thread(s), best of {args.rounds}x{args.repeat}")
    print(f"onnxtrain forward: {o:.3f} ms")
    print(f"pytorch   forward: {t:.3f} ms")
    print(f"ratio onnxtrain/pytorch: {o / t:.2f}")


if __name__ == "__main__":
    sys.exit(main())
