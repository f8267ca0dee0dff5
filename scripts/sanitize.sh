#!/usr/bin/env bash
# Builds onnxtrain with AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer comes
# with ASan on Linux) into build-asan/ (or $BUILD_DIR) and runs the whole suite there but
# the install label: an ASan-built package only links into applications built with
# -fsanitize=address (its static library) or with libasan loaded first, which the install
# tests' examples, built as a plain application would be, are not; the README's test
# command checks the package uninstrumented. Extra arguments go to ctest, e.g. -L unit.
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD_DIR=${BUILD_DIR:-build-asan}
./scripts/build.sh -DONNXTRAIN_SANITIZE=ON
source scripts/sanitize_env.sh
cd "$BUILD_DIR"
ctest --output-on-failure -j"$(nproc)" -LE '^install$' "$@"
