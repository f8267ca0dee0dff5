#!/usr/bin/python3
"""Expected values for the ai.onnxtrain optimizer ops, from torch.optim itself.

Runs 5 steps of each torch.optim configuration in CASES on two small fixed parameters
(shapes [3, 4] and [5]) with fixed per-step gradients, and writes optim.npz next to this
script. The two parameters are stored flattened and concatenated (17 values):

  x0                  [17]     initial parameters
  g                   [5, 17]  gradient of step 1..5
  <case>.lr           [5]      learning rate of each step (some cases change it per step)
  <case>.x            [5, 17]  parameters after step 1..5
  <case>.<state>      [5, 17]  optimizer state after step 1..5 (torch's state names)

in float64 (the C++ test also runs float32 from the same values). Usage:
  /usr/bin/python3 tests/data/optim/make_optim.py   (Debian python3-torch, 1.13)
"""
import os

import numpy as np
import torch

torch.manual_seed(0)
STEPS = 5
SHAPES = [(3, 4), (5,)]

# case name -> (optimizer class, kwargs, lr schedule per step, state names in op input order)
CASES = {
    "sgd": (torch.optim.SGD, dict(lr=0.1), None, []),
    "sgd_wd": (torch.optim.SGD, dict(lr=0.1, weight_decay=0.05), None, []),
    "sgd_momentum": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
                     [0.1, 0.05, 0.2, 0.1, 0.03], ["momentum_buffer"]),
    "sgd_nesterov": (torch.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.02), None,
                     ["momentum_buffer"]),
    "sgd_maximize": (torch.optim.SGD, dict(lr=0.05, momentum=0.5, maximize=True), None, ["momentum_buffer"]),
    "adam": (torch.optim.Adam, dict(lr=0.01), None, ["exp_avg", "exp_avg_sq"]),
    "adam_wd": (torch.optim.Adam, dict(lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
                [0.02, 0.01, 0.03, 0.02, 0.005], ["exp_avg", "exp_avg_sq"]),
    "adam_amsgrad": (torch.optim.Adam, dict(lr=0.05, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.01, amsgrad=True),
                     None, ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]),
    "adamw": (torch.optim.AdamW, dict(lr=0.01), None, ["exp_avg", "exp_avg_sq"]),
    "adamw_amsgrad": (torch.optim.AdamW, dict(lr=0.03, betas=(0.7, 0.99), eps=1e-4, weight_decay=0.2, amsgrad=True),
                      [0.03, 0.06, 0.01, 0.03, 0.02], ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]),
    "adagrad": (torch.optim.Adagrad, dict(lr=0.1), None, ["sum"]),
    "adagrad_full": (torch.optim.Adagrad, dict(lr=0.2, lr_decay=0.3, weight_decay=0.05, initial_accumulator_value=0.4,
                                               eps=1e-4), None, ["sum"]),
    "rmsprop": (torch.optim.RMSprop, dict(lr=0.01), None, ["square_avg"]),
    "rmsprop_momentum": (torch.optim.RMSprop, dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.03, momentum=0.7),
                         [0.01, 0.02, 0.005, 0.01, 0.01], ["square_avg", "momentum_buffer"]),
    "rmsprop_centered": (torch.optim.RMSprop, dict(lr=0.02, alpha=0.8, eps=1e-5, centered=True), None,
                         ["square_avg", "grad_avg"]),
    "rmsprop_centered_momentum": (torch.optim.RMSprop, dict(lr=0.01, alpha=0.95, eps=1e-4, weight_decay=0.01,
                                                            momentum=0.5, centered=True, maximize=True),
                                  None, ["square_avg", "grad_avg", "momentum_buffer"]),
}


def flat(tensors):
    return np.concatenate([t.detach().numpy().reshape(-1) for t in tensors])


def main():
    x0 = [torch.randn(s, dtype=torch.float64) for s in SHAPES]
    grads = [[torch.randn(s, dtype=torch.float64) for s in SHAPES] for _ in range(STEPS)]
    out = {"x0": flat(x0), "g": np.stack([flat(g) for g in grads])}
    for name, (cls, kwargs, schedule, states) in CASES.items():
        params = [x.clone().requires_grad_(True) for x in x0]
        opt = cls(params, **kwargs)
        lrs, xs, st = [], [], {s: [] for s in states}
        for step in range(1, STEPS + 1):
            if schedule:
                for group in opt.param_groups:
                    group["lr"] = schedule[step - 1]
            lrs.append(opt.param_groups[0]["lr"])
            for j, p in enumerate(params):
                p.grad = grads[step - 1][j].clone()
            opt.step()
            xs.append(flat(params))
            for s in states:
                st[s].append(flat([opt.state[p][s] for p in params]))
        out[f"{name}.lr"] = np.array(lrs, dtype=np.float64)
        out[f"{name}.x"] = np.stack(xs)
        for s in states:
            out[f"{name}.{s}"] = np.stack(st[s])
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim.npz")
    np.savez_compressed(path, **out)
    print(f"wrote {len(out)} arrays to {path} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
