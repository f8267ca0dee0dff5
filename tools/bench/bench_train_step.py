#!/usr/bin/env python3
"""Training-step benchmark: one forward + backward (cross-entropy loss, every parameter
gradient) of the same model, batch and thread count in onnxtrain and PyTorch; with
--optimizer adam|adamw|sgd the whole training step including the parameter update
(torch.optim with foreach, its default on CPU).

    /usr/bin/python3 tools/bench/bench_train_step.py [--model resnet] [--threads 2] [--repeat 10] [--rounds 3] [--optimizer adam]

Reports the best step time of each (fresh processes, interleaved rounds) and memory: for
onnxtrain the peak bytes of activations + gradients its executor held and the process's
peak RSS; for PyTorch the peak RSS and its growth over the step (RSS before the first step
is the baseline). Needs Debian's python3-torch and a build in build/ (target
onnxtrain_bench_grad).
"""
import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TORCH_SNIPPET = r"""
import resource, sys, time, numpy as np, torch, torch.nn.functional as F
sys.path.insert(0, {models!r})
import make_models
torch.set_num_threads({threads})
torch.manual_seed(0)
model = make_models.MODELS[{name!r}]().train()
optimizer = {{"": None, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}}[{optimizer!r}]
optimizer = optimizer(model.parameters(), lr=1e-4) if optimizer else None
x = torch.from_numpy(np.load({data!r})["input"])
label = torch.from_numpy(np.random.default_rng(0).integers(0, 10, x.shape[0]).astype(np.int64))
def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
base = rss_mib()
best = 1e300
for _ in range({repeat}):
    model.zero_grad(set_to_none=True)
    t = time.perf_counter()
    F.cross_entropy(model(x), label).backward()
    if optimizer:
        optimizer.step()
    best = min(best, time.perf_counter() - t)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(best * 1e3, peak, peak - base)
"""


def run_onnxtrain(args, model, data):
    out = subprocess.run([os.path.join(ROOT, "build", "onnxtrain_bench_grad"), model, data, "--repeat",
                          str(args.repeat), "--threads", str(args.threads)] +
                         (["--optimizer", args.optimizer] if args.optimizer else []),
                         check=True, capture_output=True, text=True).stdout
    num = lambda key: float(re.search(key + r" ([0-9.]+)", out).group(1))
    return num("best step"), num("peak activations\\+gradients"), num("peak RSS")


def run_torch(args, data):
    code = TORCH_SNIPPET.format(models=os.path.join(ROOT, "models"), threads=args.threads, name=args.model,
                                data=data, repeat=args.repeat, optimizer=args.optimizer)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    out = subprocess.run(["/usr/bin/python3", "-c", code], check=True, capture_output=True, text=True, env=env)
    return tuple(float(v) for v in out.stdout.split())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--optimizer", default="", choices=["", "adam", "adamw", "sgd"])
    args = p.parse_args()
    model = os.path.join(ROOT, "models", args.model, f"{args.model}_op17_train.onnx")
    data = os.path.join(ROOT, "models", args.model, "batch32.npz")
    ours, theirs = [], []
    for _ in range(args.rounds):
        ours.append(run_onnxtrain(args, model, data))
        theirs.append(run_torch(args, data))
    o, t = min(ours), min(theirs)
    print(f"model {args.model} (TRAINING export, BatchNorm in training mode), batch 32, {args.threads} thread(s), "
          f"best of {args.rounds}x{args.repeat}")
    what = f"step with {args.optimizer}" if args.optimizer else "forward+backward"
    print(f"onnxtrain {what}: {o[0]:.2f} ms   activations+gradients peak {o[1]:.1f} MiB   process peak RSS {o[2]:.1f} MiB")
    print(f"pytorch   {what}: {t[0]:.2f} ms   step RSS growth {t[2]:.1f} MiB   process peak RSS {t[1]:.1f} MiB")
    print(f"time ratio onnxtrain/pytorch: {o[0] / t[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
