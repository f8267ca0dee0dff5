#!/usr/bin/env bash
# Installs the Debian packages (if missing) and builds onnxtrain into build/ (or $BUILD_DIR).
# Extra arguments go to CMake, e.g. -DONNXTRAIN_SANITIZE=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
build_dir=${BUILD_DIR:-build}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
