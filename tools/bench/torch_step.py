#!/usr/bin/env python3
"""One PyTorch (eager, Debian's python3-torch) training-step benchmark process for
compare.py: the module of bench_models.py, the batch from its .npz, Adam, warm-up steps,
then timed steps. Prints one JSON object: median_ms, min_ms, samples_per_s, peak_rss_mb
(VmHWM) and import_rss_mb (resident memory after importing torch, before the model).

    torch_step.py MODEL DATA.npz --threads N [--steps 10] [--warmup 3] [--lr 1e-4]
"""
import argparse
import json
import time


def rss_mb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-4)
    args = p.parse_args()
    import numpy as np
    import torch
    import torchvision  # noqa: F401  (imported by every run alike, so import_rss_mb is comparable)
    import bench_models
    import_rss = rss_mb("VmRSS")
    torch.set_num_threads(args.threads)
    module = bench_models.make_module(args.model)
    data = np.load(args.data)
    x, label = torch.from_numpy(data["input"]), torch.from_numpy(data["label"])
    loss_fn = bench_models.loss_fn(args.model)
    optimizer = torch.optim.Adam(module.parameters(), lr=args.lr)
    times, cpu_times = [], []
    for i in range(args.warmup + args.steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(module(x), label).backward()
        optimizer.step()
        if i >= args.warmup:
            times.append((time.perf_counter() - start) * 1e3)
            cpu_times.append((time.process_time() - cpu_start) * 1e3)
    times.sort()
    cpu_times.sort()
    median = lambda v: v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
    print(json.dumps({"median_ms": median(times), "min_ms": times[0], "samples_per_s": x.shape[0] * 1e3 / median(times),
                      "median_cpu_ms": median(cpu_times), "min_cpu_ms": cpu_times[0],
                      "peak_rss_mb": rss_mb("VmHWM"), "import_rss_mb": import_rss}))


if __name__ == "__main__":
    main()
