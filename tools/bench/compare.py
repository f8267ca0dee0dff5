#!/usr/bin/env python3
"""Training-step throughput of the same architectures in onnxtrain, PyTorch (eager, Debian's
python3-torch) and libtorch (the C++ frontend of Debian's libtorch-dev: no Python overhead).

    /usr/bin/python3 tools/bench/compare.py [--models resnet18,gru] [--threads 1,2] [--rounds 3]
                                            [--steps 10] [--warmup 3] [--markdown] [--no-libtorch]

Debian's libtorch (which python3-torch also uses) links the reference netlib BLAS, so its
Linear/MatMul/RNN layers are several times slower than they need be. That is no win for
onnxtrain: the libtorch runner therefore runs on Debian's OpenBLAS (unpacked into
build/bench-openblas, put first with LD_LIBRARY_PATH; --reference-blas to turn it off),
while the PyTorch column is python3-torch as Debian ships it.

Same module weights (bench_models.py, seeded), same batch (one .npz, 32 samples), same loss
(cross-entropy; MSE for the UNet), same optimizer (Adam, lr 1e-4) and thread count in all
three. Every measurement is a fresh process, started when other processes leave the CPUs
idle (--max-wait); rounds interleave the runners and models, and each runner's best
per-process median step time is kept. Needs a build in build/ (targets onnxtrain and
onnxtrain_machine_peak); builds tools/bench/libtorch into build/bench-libtorch/ when
libtorch-dev is installed and skips libtorch with a message when it is not.
Raw results go to build/bench-results.json.

--clock cpu ranks and reports by each process's CPU time per step (all threads) instead of
wall time: on a machine shared with other work a step's CPU time hardly moves while its wall
time may double. At 1 thread the two measure the same thing on an idle machine; at 2 threads
CPU time counts both threads' work (and spinning), so its ratios compare work, not speed.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(ROOT, "build")
sys.path.insert(0, HERE)
import bench_models  # noqa: E402

TORCH_CONFIG = "/usr/lib/x86_64-linux-gnu/cmake/Torch/TorchConfig.cmake"
OPENBLAS_DIR = os.path.join(BUILD, "bench-openblas")
OPENBLAS_LIB = os.path.join(OPENBLAS_DIR, "usr/lib/x86_64-linux-gnu/openblas-pthread")
RUNNERS = ("onnxtrain", "pytorch", "libtorch")


def last_json(text):
    lines = [l for l in text.strip().splitlines() if l.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def cpu_busy(seconds=0.5):
    """Fraction of the machine's CPU time used by other processes over `seconds` (we are idle)."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3] + v[4], sum(v)  # idle + iowait, total
    i0, t0 = sample()
    time.sleep(seconds)
    i1, t1 = sample()
    return 1 - (i1 - i0) / max(t1 - t0, 1)


def wait_for_quiet(max_wait, threshold=0.1):
    """Waits (up to max_wait s) until other processes use under `threshold` of the CPUs:
    on 2 cores, a compile job next to a 2-thread run makes OpenMP barriers wait for
    descheduled threads and steps 10-1000x slower. Returns the last busy fraction seen."""
    deadline = time.time() + max_wait
    busy = cpu_busy()
    while busy > threshold and time.time() < deadline:
        busy = cpu_busy(1.0)
    return busy


def run(cmd, threads, timeout=900, blas_dir=None):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), PYTHONPATH=HERE)
    if blas_dir:
        env["LD_LIBRARY_PATH"] = blas_dir + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    result = last_json(p.stdout) if p.returncode == 0 else None
    if result is None:
        err = (p.stderr.strip().splitlines() or ["exit code %d" % p.returncode])[-1]
        return {"error": err}
    return result


def build_libtorch():
    if not os.path.exists(TORCH_CONFIG):
        print(f"libtorch: skipped ({TORCH_CONFIG} not found; apt-get install libtorch-dev)", file=sys.stderr)
        return None
    out = os.path.join(BUILD, "bench-libtorch")
    subprocess.run(["cmake", "-S", os.path.join(HERE, "libtorch"), "-B", out, "-G", "Ninja",
                    "-DCMAKE_BUILD_TYPE=Release"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", out, "-j2"], check=True)
    return os.path.join(out, "libtorch_step")


def openblas():
    """Debian's OpenBLAS, unpacked (not installed: installing it would switch the machine's
    libblas.so.3 for every program) into build/bench-openblas; None when unavailable."""
    if not os.path.exists(os.path.join(OPENBLAS_LIB, "libblas.so.3")):
        os.makedirs(OPENBLAS_DIR, exist_ok=True)
        got = subprocess.run(["apt-get", "download", "libopenblas0-pthread"], cwd=OPENBLAS_DIR, capture_output=True)
        debs = [f for f in os.listdir(OPENBLAS_DIR) if f.endswith(".deb")]
        if got.returncode != 0 or not debs:
            print("libtorch: OpenBLAS not available, running with Debian's reference BLAS", file=sys.stderr)
            return None
        subprocess.run(["dpkg", "-x", os.path.join(OPENBLAS_DIR, debs[0]), OPENBLAS_DIR], check=True)
    return OPENBLAS_LIB


def raw_arrays(npz_path):
    """The batch as raw files for libtorch_step: (input spec, label spec)."""
    import numpy as np
    data = np.load(npz_path)
    specs = []
    for key in ("input", "label"):
        a = np.ascontiguousarray(data[key])
        path = npz_path[:-4] + f".{key}.bin"
        a.tofile(path)
        specs.append(f"{a.dtype}:{','.join(map(str, a.shape))}:{path}")
    return specs


def machine_peak(threads, max_wait):
    exe = os.path.join(BUILD, "onnxtrain_machine_peak")
    wait_for_quiet(max_wait)
    r = run([exe, "--threads", str(threads), "--seconds", "0.3", "--json"], threads)
    return r if "error" not in r else {}


def command(runner, name, paths, threads, args, libtorch):
    loss = bench_models.MODELS[name][4]
    common = ["--threads", str(threads), "--steps", str(args.steps),
              "--warmup-steps" if runner == "onnxtrain" else "--warmup", str(args.warmup)]
    if runner == "onnxtrain":
        return [os.path.join(BUILD, "onnxtrain"), "bench", paths["onnx"], "--data", paths["npz"], "--loss", loss,
                "--optimizer", "adam", "--lr", "1e-4", "--json", "-q"] + common
    if runner == "pytorch":
        return ["/usr/bin/python3", os.path.join(HERE, "torch_step.py"), name, paths["npz"]] + common
    inp, label = paths["raw"]
    return [libtorch, paths["pt"], "--input", inp, "--label", label, "--loss", loss] + common


def cpu_description():
    """The CPU's model name and the features that decide oneDNN's kernels (the workplace's
    machines differ between sessions, and ratios from different CPUs do not compare)."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return "unknown CPU"
    name = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name")), "unknown CPU")
    flags = next((l.split(":", 1)[1].split() for l in info.splitlines() if l.startswith("flags")), [])
    wanted = ["avx512f", "avx512_bf16", "amx_bf16", "avx512_fp16"]
    have = [f for f in wanted if f in flags]
    return f"{name}, {os.cpu_count()} CPUs, " + (" ".join(have) if have else "no AVX-512")


def peak_for(name, peaks):
    """oneDNN's f32 limit for the model's dominant kernel: the mean of the 3x3 convolution's
    three passes for conv models, the matmul for the others."""
    if not peaks:
        return None
    if name in bench_models.CONV_MODELS:
        keys = [f"conv3x3 32x64x56x56 f32 {p}" for p in ("fwd", "bwd-data", "bwd-weights")]
        return sum(peaks[k] for k in keys) / 3 if all(k in peaks for k in keys) else None
    return peaks.get("matmul 1024^3 f32")


METRIC = "median_ms"  # or "median_cpu_ms" (--clock cpu)


def step_ms(r):
    return r[METRIC]


def table(results, models, threads_list, peaks, markdown):
    head = ["model", "thr", "onnxtrain samples/s", "PyTorch", "libtorch", "÷PyTorch", "÷libtorch",
            "peak RSS MiB ours / PyTorch (−import) / libtorch", "GFLOP/s", "% of oneDNN peak"]
    rows = []
    for name in models:
        for t in threads_list:
            r = {k: results.get((name, t, k)) for k in RUNNERS}
            sps = {k: (bench_models.BATCH * 1e3 / step_ms(v) if v and "error" not in v else None) for k, v in r.items()}
            fmt = lambda v, f="{:.0f}": f.format(v) if v is not None else "—"
            ratio = lambda k: fmt(sps["onnxtrain"] / sps[k], "{:.2f}") if sps["onnxtrain"] and sps[k] else "—"
            rss = lambda k, sub=0: fmt(r[k]["peak_rss_mb"] - sub) if sps[k] else "—"
            pt_rss = "—"
            if sps["pytorch"]:
                pt_rss = f"{r['pytorch']['peak_rss_mb']:.0f} ({r['pytorch']['peak_rss_mb'] - r['pytorch']['import_rss_mb']:.0f})"
            gflops = frac = "—"
            if sps["onnxtrain"] and "train_gflop_per_step" in r["onnxtrain"]:
                g = r["onnxtrain"]["train_gflop_per_step"] / (step_ms(r["onnxtrain"]) / 1e3)
                gflops = f"{g:.1f}"
                peak = peak_for(name, peaks.get(t))
                frac = f"{100 * g / peak:.0f}%" if peak else "—"
            rows.append([name, str(t), fmt(sps["onnxtrain"]), fmt(sps["pytorch"]), fmt(sps["libtorch"]),
                         ratio("pytorch"), ratio("libtorch"), f"{rss('onnxtrain')} / {pt_rss} / {rss('libtorch')}",
                         gflops, frac])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    else:
        widths = [max(len(x[i]) for x in [head] + rows) for i in range(len(head))]
        lines = ["  ".join(x[i].ljust(widths[i]) for i in range(len(head))) for x in [head] + rows]
    errors = [f"{k[0]} {k[2]} ({k[1]} thr): {v['error']}" for k, v in results.items() if v and "error" in v]
    return "\n".join(lines + ([""] + ["failed: " + e for e in sorted(set(errors))] if errors else []))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default=",".join(bench_models.MODELS))
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--no-libtorch", action="store_true")
    p.add_argument("--reference-blas", action="store_true",
                   help="run libtorch on Debian's reference BLAS (default: OpenBLAS, unpacked into build/)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="rank and report by wall time per step, or by the process's CPU time per step")
    p.add_argument("--max-wait", type=float, default=60,
                   help="seconds to wait before each run for other processes to leave the CPUs idle")
    args = p.parse_args()
    global METRIC
    METRIC = "median_cpu_ms" if args.clock == "cpu" else "median_ms"
    models = args.models.split(",")
    threads_list = [int(t) for t in args.threads.split(",")]
    if not os.path.exists(os.path.join(BUILD, "onnxtrain")):
        sys.exit("build/onnxtrain not found: build first (cmake --build build)")
    libtorch = None if args.no_libtorch else build_libtorch()
    blas_dir = openblas() if libtorch and not args.reference_blas else None
    runners = [r for r in RUNNERS if r != "libtorch" or libtorch]
    prepared = {}
    for name in models:
        try:
            prepared[name] = bench_models.prepare(name, os.path.join(BUILD, "bench-models"))
            prepared[name]["raw"] = raw_arrays(prepared[name]["npz"])
        except Exception as e:  # an architecture that does not export is reported, not fatal
            print(f"{name}: cannot prepare: {e}", file=sys.stderr)
    peaks = {t: machine_peak(t, args.max_wait) for t in threads_list}
    results = {}
    busy_seen = []
    for round_ in range(args.rounds):
        for name in prepared:
            for t in threads_list:
                for runner in runners:
                    busy = wait_for_quiet(args.max_wait)
                    r = run(command(runner, name, prepared[name], t, args, libtorch), t,
                            blas_dir=blas_dir if runner == "libtorch" else None)
                    r["busy_before"] = busy
                    busy_seen.append(busy)
                    key = (name, t, runner)
                    best = results.get(key)
                    if best is None or "error" in best or ("error" not in r and step_ms(r) < step_ms(best)):
                        results[key] = r
                    print(f"round {round_ + 1}: {name} {runner} {t} thr: "
                          + (r["error"] if "error" in r else f"{r['median_ms']:.2f} ms wall, {r['median_cpu_ms']:.2f} ms CPU"),
                          file=sys.stderr)
    with open(os.path.join(BUILD, "bench-results.json"), "w") as f:
        json.dump({"cpu": cpu_description(), "peaks": peaks, "results": [{**v, "model": k[0], "threads": k[1], "runner": k[2]}
                                               for k, v in results.items()]}, f, indent=1)
    print(f"CPU: {cpu_description()}")
    for t, pk in peaks.items():
        if pk:
            print(f"oneDNN peak, {t} thread(s): " + ", ".join(f"{k} {v:.0f}" for k, v in pk.items() if k != "threads"))
    busy_seen.sort()
    print(f"batch {bench_models.BATCH}, Adam, best per-process median {args.clock} time per step of {args.rounds} "
          f"rounds x {args.steps} steps "
          f"(samples/s; ÷ = onnxtrain / other); libtorch on {'OpenBLAS' if blas_dir else 'reference BLAS'}; "
          f"CPU used by other processes before the runs: median {100 * busy_seen[len(busy_seen) // 2]:.0f}%, "
          f"max {100 * busy_seen[-1]:.0f}%")
    print(table(results, list(prepared), threads_list, peaks, args.markdown))


if __name__ == "__main__":
    main()
