#!/usr/bin/env python3
"""Fails when a source file includes a header from a layer above its own.

The layers (docs/architecture.md), lowest first:
  include/onnxtrain  public API: plain types, used by every layer
  graph/ (IR)        graph/*.{h,cpp} outside graph/passes: IR, importer, exporter, losses
  ops/               registry, kernels, gradient rules: IR and ops/ only
  graph/passes/      passes over the IR: IR, passes and ops' public interface only
  src/               sessions, executor, data, checkpoints: anything but tools/
  tools/, examples/  clients: the public API (and their own tool headers) only
Usage: check_layers.py <source root>
"""
import pathlib
import re
import sys

# ops/ headers a pass may use: the registry and rule lookup, not kernel internals.
OPS_INTERFACE = {"ops/registry.h", "ops/rules.h", "ops/gradient.h", "ops/batch_norm.h"}

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def layer_of(rel):
    if rel.startswith("include/onnxtrain/"):
        return "api"
    if rel.startswith("graph/passes/"):
        return "passes"
    if rel.startswith("graph/"):
        return "ir"
    for top in ("ops", "src", "tools", "examples"):
        if rel.startswith(top + "/"):
            return top
    return None


def target_of(include):
    """The repository path an include names ("onnxtrain/x.h" is include/onnxtrain/x.h)."""
    if include.startswith("onnxtrain/"):
        return "include/" + include
    return include


def allowed(layer, target):
    t = layer_of(target)
    if t == "api":
        return True
    if layer == "api":
        return False
    if layer == "ir":
        return t == "ir"
    if layer == "ops":
        return t in ("ir", "ops")
    if layer == "passes":
        return t in ("ir", "passes") or target in OPS_INTERFACE
    if layer == "src":
        return t in ("ir", "ops", "passes", "src")
    if layer == "tools":
        return t == "tools"
    if layer == "examples":
        return False
    return True


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    problems = []
    checked = 0
    for top in ("include/onnxtrain", "graph", "ops", "src", "tools", "examples"):
        for path in sorted((root / top).rglob("*")):
            if path.suffix not in (".h", ".cpp"):
                continue
            rel = path.relative_to(root).as_posix()
            layer = layer_of(rel)
            checked += 1
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                target = target_of(m.group(1))
                if layer_of(target) is None:
                    # Relative to the including file ("kernel.h" next to it).
                    target = (path.parent / m.group(1)).resolve().relative_to(root).as_posix()
                if not allowed(layer, target):
                    problems.append(f"{rel}:{number}: {layer} layer must not include \"{m.group(1)}\"")
    if checked == 0:
        print(f"no sources found under {root}", file=sys.stderr)
        return 2
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} include(s) point up the layers (see docs/architecture.md)", file=sys.stderr)
        return 1
    print(f"{checked} files: every include points down the layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
