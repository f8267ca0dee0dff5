#!/usr/bin/python3
"""Writes schedule_goldens.inc, clipping_goldens.inc and clipping_large_goldens.inc next to this script: learning-rate
sequences of torch.optim.lr_scheduler and results of torch.nn.utils.clip_grad_norm_ /
clip_grad_value_, as C++ initializer lists for tests/unit/schedule_test.cpp and
tests/unit/clipping_test.cpp (which do not need torch).

Run with Debian's python3-torch (PyTorch 1.13):  /usr/bin/python3 make_schedule_goldens.py
"""
import math
import os
import warnings

import torch
from torch.optim import SGD
from torch.optim import lr_scheduler as S

warnings.filterwarnings("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))


def num(v):
    v = float(v)
    if math.isnan(v):
        return "kNaN"
    if math.isinf(v):
        return "kInf" if v > 0 else "-kInf"
    return repr(v)


def nums(values, per_line=4, indent="      "):
    lines = []
    for i in range(0, len(values), per_line):
        lines.append(indent + ", ".join(num(v) for v in values[i:i + per_line]))
    return "{\n" + ",\n".join(lines) + "}"


# ----------------------------------------------------------------------------------------
# Schedules: (our spec string, base lr, total steps, steps to record, torch description,
# factory(optimizer) -> scheduler or None).

def warmup_then(w, s, make_main):
    def make(opt):
        return S.SequentialLR(opt, [S.LinearLR(opt, start_factor=s, end_factor=1.0, total_iters=w), make_main(opt)],
                              milestones=[w])
    return make


SCHEDULES = [
    ("constant", 0.1, 20, 20, "no scheduler", None),
    ("constant:warmup_steps=5", 0.1, 20, 20, "LinearLR(start_factor=1/3, total_iters=5)",
     lambda o: S.LinearLR(o, start_factor=1.0 / 3.0, end_factor=1.0, total_iters=5)),
    ("constant:warmup_steps=10:warmup_start_factor=0.01", 0.5, 30, 30, "LinearLR(start_factor=0.01, total_iters=10)",
     lambda o: S.LinearLR(o, start_factor=0.01, end_factor=1.0, total_iters=10)),
    ("step:30:0.1", 0.1, 100, 100, "StepLR(step_size=30, gamma=0.1)", lambda o: S.StepLR(o, 30, 0.1)),
    ("step:7:0.5", 0.05, 40, 40, "StepLR(step_size=7, gamma=0.5)", lambda o: S.StepLR(o, 7, 0.5)),
    ("step:10:0.5:warmup_steps=5", 0.1, 40, 40, "SequentialLR([LinearLR(1/3, 1, 5), StepLR(10, 0.5)], [5])",
     warmup_then(5, 1.0 / 3.0, lambda o: S.StepLR(o, 10, 0.5))),
    ("multistep:30,60:0.1", 0.1, 100, 100, "MultiStepLR(milestones=[30, 60], gamma=0.1)",
     lambda o: S.MultiStepLR(o, [30, 60], 0.1)),
    ("multistep:12,5,5,30:0.7", 0.3, 40, 40, "MultiStepLR(milestones=[12, 5, 5, 30], gamma=0.7)",
     lambda o: S.MultiStepLR(o, [12, 5, 5, 30], 0.7)),
    ("multistep:10,20:0.5:warmup_steps=4:warmup_start_factor=0.25", 0.1, 40, 40,
     "SequentialLR([LinearLR(0.25, 1, 4), MultiStepLR([10, 20], 0.5)], [4])",
     warmup_then(4, 0.25, lambda o: S.MultiStepLR(o, [10, 20], 0.5))),
    ("exponential:0.95", 0.1, 60, 60, "ExponentialLR(gamma=0.95)", lambda o: S.ExponentialLR(o, 0.95)),
    ("exponential:0.8", 1.0, 30, 30, "ExponentialLR(gamma=0.8)", lambda o: S.ExponentialLR(o, 0.8)),
    ("exponential:0.9:warmup_steps=3", 0.2, 25, 25, "SequentialLR([LinearLR(1/3, 1, 3), ExponentialLR(0.9)], [3])",
     warmup_then(3, 1.0 / 3.0, lambda o: S.ExponentialLR(o, 0.9))),
    ("cosine", 0.1, 50, 51, "CosineAnnealingLR(T_max=50)", lambda o: S.CosineAnnealingLR(o, 50)),
    ("cosine:1e-4", 0.01, 100, 101, "CosineAnnealingLR(T_max=100, eta_min=1e-4)",
     lambda o: S.CosineAnnealingLR(o, 100, eta_min=1e-4)),
    ("cosine:0.001:warmup_steps=10", 0.1, 60, 61,
     "SequentialLR([LinearLR(1/3, 1, 10), CosineAnnealingLR(T_max=50, eta_min=0.001)], [10])",
     warmup_then(10, 1.0 / 3.0, lambda o: S.CosineAnnealingLR(o, 50, eta_min=0.001))),
    ("cosine:warmup_steps=5:warmup_start_factor=0.1", 3e-4, 37, 38,
     "SequentialLR([LinearLR(0.1, 1, 5), CosineAnnealingLR(T_max=32)], [5])",
     warmup_then(5, 0.1, lambda o: S.CosineAnnealingLR(o, 32))),
    ("linear", 0.1, 50, 51, "LinearLR(start_factor=1, end_factor=0, total_iters=50)",
     lambda o: S.LinearLR(o, start_factor=1.0, end_factor=0.0, total_iters=50)),
    ("linear:0.1", 0.02, 40, 41, "LinearLR(start_factor=1, end_factor=0.1, total_iters=40)",
     lambda o: S.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=40)),
    ("linear:0.05:warmup_steps=8:warmup_start_factor=0.01", 0.1, 64, 65,
     "SequentialLR([LinearLR(0.01, 1, 8), LinearLR(1, 0.05, 56)], [8])",
     warmup_then(8, 0.01, lambda o: S.LinearLR(o, start_factor=1.0, end_factor=0.05, total_iters=56))),
    ("onecycle", 0.1, 100, 100, "OneCycleLR(max_lr=0.1, total_steps=100)",
     lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=100)),
    ("onecycle:0.5:pct_start=0.25:anneal=linear", 0.1, 80, 80,
     "OneCycleLR(max_lr=0.5, total_steps=80, pct_start=0.25, anneal_strategy='linear')",
     lambda o: S.OneCycleLR(o, max_lr=0.5, total_steps=80, pct_start=0.25, anneal_strategy="linear")),
    ("onecycle:0.01:three_phase=true", 0.1, 60, 60, "OneCycleLR(max_lr=0.01, total_steps=60, three_phase=True)",
     lambda o: S.OneCycleLR(o, max_lr=0.01, total_steps=60, three_phase=True)),
    ("onecycle:0.2:pct_start=0.4:div_factor=10:final_div_factor=100", 0.1, 33, 33,
     "OneCycleLR(max_lr=0.2, total_steps=33, pct_start=0.4, div_factor=10, final_div_factor=100)",
     lambda o: S.OneCycleLR(o, max_lr=0.2, total_steps=33, pct_start=0.4, div_factor=10, final_div_factor=100)),
    ("onecycle:pct_start=0.35:anneal=linear:three_phase=true", 0.05, 50, 50,
     "OneCycleLR(max_lr=0.05, total_steps=50, pct_start=0.35, anneal_strategy='linear', three_phase=True)",
     lambda o: S.OneCycleLR(o, max_lr=0.05, total_steps=50, pct_start=0.35, anneal_strategy="linear",
                            three_phase=True)),
]


def lr_sequence(base, steps, make):
    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = SGD([param], lr=base, momentum=0.9)
    sched = make(opt) if make else None
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched:
            sched.step()
    return lrs


def write_schedules(path):
    out = [f"// Generated by tests/data/optim/make_schedule_goldens.py with torch {torch.__version__}; do not edit.",
           "// {spec, base lr, total steps, torch scheduler, lr of steps 0, 1, ...}"]
    for spec, base, total, steps, desc, make in SCHEDULES:
        lrs = lr_sequence(base, steps, make)
        out.append(f"{{\"{spec}\", {num(base)}, {total}, \"{desc}\",\n     {nums(lrs)}}},")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


# ----------------------------------------------------------------------------------------
# Clipping.

def clip_case(name, mode, dtype, inputs, bound, norm_type=2.0):
    grads = [torch.tensor(v, dtype=dtype) for v in inputs]
    params = []
    for g in grads:
        p = torch.nn.Parameter(torch.zeros_like(g))
        p.grad = g.clone()
        params.append(p)
    if mode == "norm":
        total = float(torch.nn.utils.clip_grad_norm_(params, bound, norm_type))
    else:
        torch.nn.utils.clip_grad_value_(params, bound)
        total = 0.0
    return dict(name=name, mode=mode, is_double=dtype == torch.float64, bound=bound, norm_type=norm_type,
                inputs=[g.tolist() for g in grads], total=total, outputs=[p.grad.tolist() for p in params])


def small_inputs(dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, generator=gen, dtype=torch.float64).to(dtype).tolist() for n in (7, 15, 8)]


def large_values(size, k, scale):
    # Reproduced in clipping_test.cpp: std::sin(0.37 * i + k) * scale, in double.
    return [math.sin(0.37 * i + k) * scale for i in range(size)]


def write_clipping(path, large_path):
    cases = []
    for dtype, tag in ((torch.float64, "double"), (torch.float32, "float")):
        x = small_inputs(dtype, 3 if tag == "double" else 4)
        cases.append(clip_case(f"{tag}_l2_clipped", "norm", dtype, x, 1.0))
        cases.append(clip_case(f"{tag}_l2_unclipped", "norm", dtype, x, 100.0))
        cases.append(clip_case(f"{tag}_l1", "norm", dtype, x, 2.5, 1.0))
        cases.append(clip_case(f"{tag}_inf", "norm", dtype, x, 0.5, math.inf))
        cases.append(clip_case(f"{tag}_p3", "norm", dtype, x, 0.75, 3.0))
        cases.append(clip_case(f"{tag}_p0.5", "norm", dtype, x, 10.0, 0.5))
        cases.append(clip_case(f"{tag}_value", "value", dtype, x, 0.6))
        cases.append(clip_case(f"{tag}_inf_gradient", "norm", dtype, [[0.5, -2.0, math.inf], [-1.0, 3.0]], 1.0))
        cases.append(clip_case(f"{tag}_nan_gradient", "norm", dtype, [[0.5, -2.0, math.nan], [-1.0, 3.0]], 1.0))
        cases.append(clip_case(f"{tag}_nan_inf_norm", "norm", dtype, [[0.5, math.nan], [-1.0, 3.0]], 1.0, math.inf))
    out = [f"// Generated by tests/data/optim/make_schedule_goldens.py with torch {torch.__version__}; do not edit.",
           "// {name, mode, double?, max_norm or clip_value, norm_type, inputs, total norm, outputs}"]
    for c in cases:
        ins = ", ".join(nums(v, 4, "        ") for v in c["inputs"])
        outs = ", ".join(nums(v, 4, "        ") for v in c["outputs"])
        out.append(f"{{\"{c['name']}\", \"{c['mode']}\", {'true' if c['is_double'] else 'false'}, {num(c['bound'])}, "
                   f"{num(c['norm_type'])},\n     {{{ins}}},\n     {num(c['total'])},\n     {{{outs}}}}},")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    out = [f"// Generated by tests/data/optim/make_schedule_goldens.py with torch {torch.__version__}; do not edit.",
           "// {name, double?, sizes, scale, max_norm, norm_type, total norm, sum and sum of squares of the outputs",
           "// (in double)}; gradient k holds sin(0.37 * i + k) * scale."]
    for dtype, tag in ((torch.float64, "double"), (torch.float32, "float")):
        for norm_type, max_norm in ((2.0, 1.0), (1.0, 10.0), (math.inf, 0.005), (3.0, 0.2)):
            sizes, scale = (20000, 30001, 5, 70000), 0.01
            grads = [torch.tensor(large_values(n, k, scale), dtype=torch.float64).to(dtype) for k, n in enumerate(sizes)]
            params = []
            for g in grads:
                p = torch.nn.Parameter(torch.zeros_like(g))
                p.grad = g.clone()
                params.append(p)
            total = float(torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type))
            flat = torch.cat([p.grad.double() for p in params])
            out.append(f"{{\"{tag}_large_p{norm_type}\", {'true' if tag == 'double' else 'false'}, "
                       f"{{{', '.join(map(str, sizes))}}}, {num(scale)}, {num(max_norm)}, {num(norm_type)}, "
                       f"{num(total)}, {num(flat.sum())}, {num((flat * flat).sum())}}},")
    with open(large_path, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    write_schedules(os.path.join(HERE, "schedule_goldens.inc"))
    write_clipping(os.path.join(HERE, "clipping_goldens.inc"), os.path.join(HERE, "clipping_large_goldens.inc"))
