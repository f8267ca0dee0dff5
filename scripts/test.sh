#!/usr/bin/env bash
# Builds onnxtrain and runs the whole test suite (unit, ops, gradcheck, onnx_backend,
# parity, cli, interop, install, and mpi when built with MPI). Extra arguments go to ctest, e.g. -L ops.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j"$(nproc)" "$@"
